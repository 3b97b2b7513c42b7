// Connect a client: ready-to-paste configuration for one token, built from
// this instance's public URL and the models the token may use. The OpenClaw
// block has the shape its config file takes (`models.providers.<name>`).

import { html } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { useSession } from '../context.js';
import { freshKey } from '../fresh-keys.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, StatusBadge } from '../components/ui.js';
import { CodeBlock } from '../components/copy.js';

const PLACEHOLDER = 'sk-YOUR-TOKEN-KEY';

/** OpenClaw's provider block, as a whole JSON document that parses. */
export function openClawConfig(baseUrl, apiKey, models) {
  const block = {
    models: {
      mode: 'merge',
      providers: {
        sluice: {
          baseUrl,
          apiKey,
          api: 'openai-completions',
          models: models.map((m) => ({
            id: m, name: m, reasoning: false, input: ['text'], contextWindow: 32768, maxTokens: 8192,
          })),
        },
      },
    },
  };
  return JSON.stringify(block, null, 2);
}

function curl(baseUrl, key, model) {
  return `curl ${baseUrl}/chat/completions \\
  -H "Authorization: Bearer ${key}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello"}]}'`;
}

function python(baseUrl, key, model) {
  return `from openai import OpenAI

client = OpenAI(base_url="${baseUrl}", api_key="${key}")
reply = client.chat.completions.create(
    model="${model}",
    messages=[{"role": "user", "content": "Hello"}],
)
print(reply.choices[0].message.content)`;
}

function javascript(baseUrl, key, model) {
  return `import OpenAI from "openai";

const client = new OpenAI({ baseURL: "${baseUrl}", apiKey: "${key}" });
const reply = await client.chat.completions.create({
  model: "${model}",
  messages: [{ role: "user", content: "Hello" }],
});
console.log(reply.choices[0].message.content);`;
}

function Picker() {
  const tokens = useLoad(() => api('GET', '/api/tokens?limit=500'), []);
  const items = (tokens.data && tokens.data.items) || [];
  return html`<div class="page">
    <p>${t('connect.pick')}</p>
    <${LoadState} load=${tokens} />
    ${tokens.data && !items.length && html`<${Empty}>${t('connect.no_tokens')} <a href="/tokens">${t('connect.create_one')}</a></${Empty}>`}
    <ul class="link-list">
      ${items.map((tok) => html`<li><a href=${`/connect/${tok.id}`}>${tok.name}</a> <code>${tok.key_prefix}</code> <${StatusBadge} status=${tok.status} /></li>`)}
    </ul></div>`;
}

function Snippets({ tokenId }) {
  const session = useSession();
  const load = useLoad(async () => {
    const [token, instance] = await Promise.all([
      api('GET', `/api/tokens/${tokenId}`),
      session.instance ? session.instance : api('GET', '/api/instance'),
    ]);
    return { token, instance };
  }, [tokenId]);
  if (!load.data) return html`<${LoadState} load=${load} />`;
  const { token, instance } = load.data;
  const baseUrl = `${instance.public_url.replace(/\/+$/, '')}/v1`;
  const key = freshKey(token.id);
  const apiKey = key || PLACEHOLDER;
  const models = token.models && token.models.length ? token.models : instance.models;
  const first = models[0] || 'MODEL';
  return html`<div class="page">
    <p>${t('connect.for', { name: token.name })} <${StatusBadge} status=${token.status} /></p>
    ${key
      ? html`<p class="notice notice-warn">${t('connect.key_filled')}</p>`
      : html`<p class="notice">${t('connect.key_placeholder', { placeholder: PLACEHOLDER, prefix: token.key_prefix })}</p>`}
    <dl class="facts">
      <dt>${t('connect.base_url')}</dt><dd><code>${baseUrl}</code></dd>
      <dt>${t('connect.models')}</dt><dd>${models.length ? models.join(', ') : t('connect.no_models')}</dd>
    </dl>
    <${CodeBlock} id="snippet-openclaw" title=${t('connect.openclaw')} code=${openClawConfig(baseUrl, apiKey, models)} />
    <p class="hint">${t('connect.openclaw_hint')}</p>
    <${CodeBlock} id="snippet-curl" title="curl" code=${curl(baseUrl, apiKey, first)} />
    <${CodeBlock} id="snippet-python" title=${t('connect.python')} code=${python(baseUrl, apiKey, first)} />
    <${CodeBlock} id="snippet-js" title=${t('connect.js')} code=${javascript(baseUrl, apiKey, first)} /></div>`;
}

export default function Connect({ rest }) {
  useTitle(t('connect.title'));
  const tokenId = rest[0] && /^\d+$/.test(rest[0]) ? rest[0] : null;
  return html`<div class="page">
    <${PageHead} title=${t('connect.title')}>${tokenId && html`<a href="/connect">${t('connect.other')}</a>`}</${PageHead}>
    ${tokenId ? html`<${Snippets} tokenId=${tokenId} />` : html`<${Picker} />`}</div>`;
}

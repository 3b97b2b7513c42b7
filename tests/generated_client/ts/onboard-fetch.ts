// Onboarding with openapi-fetch over the types openapi-typescript generated
// from openapi/openapi.json (gen/schema.d.ts). Usage, one step per run, each
// printing one JSON object (the Rust test reads the mail in between):
//   node dist/onboard-fetch.js invite BASE_URL ROOT_ACCESS_TOKEN EMAIL
//   node dist/onboard-fetch.js accept BASE_URL INVITE_TOKEN USERNAME
//   node dist/onboard-fetch.js logs BASE_URL ACCESS_TOKEN
import createClient from "openapi-fetch";
import type { components, paths } from "./gen/schema";
import { events } from "./sse";

type Chunk = components["schemas"]["CreateChatCompletionStreamResponse"];

const [step, baseUrl, ...rest] = process.argv.slice(2);
// Answers as JSON; a stream is read from the response body.
const api = createClient<paths, "application/json">({ baseUrl });
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function invite(root: string, email: string) {
  const { response } = await api.POST("/api/invites", { body: { email }, headers: bearer(root) });
  return { status: response.status };
}

async function accept(token: string, username: string) {
  const password = `${username}-password-1`;
  const accepted = await api.POST("/api/invites/accept", { body: { token, username, password } });
  if (!accepted.data) throw new Error(`accept: ${JSON.stringify(accepted.error)}`);
  const session = await api.POST("/api/auth/login", { body: { username, password } });
  if (!session.data?.access_token) throw new Error(`login: ${JSON.stringify(session.error)}`);
  const jwt = session.data.access_token;
  const me = await api.GET("/api/users/me", { headers: bearer(jwt) });
  const created = await api.POST("/api/tokens", { body: { name: "typescript" }, headers: bearer(jwt) });
  if (!created.data) throw new Error(`token: ${JSON.stringify(created.error)}`);
  const key = created.data.key;
  const models = await api.GET("/v1/models", { headers: bearer(key) });

  const chat = await api.POST("/v1/chat/completions", {
    body: { model: "llama", messages: [{ role: "user", content: "hello from openapi-fetch" }] },
    headers: bearer(key),
  });
  if (!chat.data) throw new Error(`chat: ${JSON.stringify(chat.error)}`);
  const reply = chat.data.choices[0].message.content;

  const streamed = await api.POST("/v1/chat/completions", {
    body: { model: "llama", stream: true, messages: [{ role: "user", content: "stream to openapi-fetch" }] },
    headers: bearer(key),
    parseAs: "stream",
  });
  if (!streamed.response.ok || !streamed.response.body) throw new Error(`stream: ${streamed.response.status}`);
  let streamedText = "";
  for await (const chunk of events<Chunk>(streamed.response.body)) {
    streamedText += chunk.choices.map((c) => c.delta.content ?? "").join("");
  }

  return {
    access_token: jwt,
    username: me.data?.username,
    role: me.data?.role,
    models: models.data?.data.map((m) => m.id),
    reply,
    streamed: streamedText,
  };
}

async function logs(jwt: string) {
  const logs = await api.GET("/api/logs", { params: { query: { limit: 10 } }, headers: bearer(jwt) });
  if (!logs.data) throw new Error(`logs: ${JSON.stringify(logs.error)}`);
  return { models: logs.data.items.map((row) => row.model), statuses: logs.data.items.map((row) => row.status) };
}

const steps: Record<string, () => Promise<object>> = {
  invite: () => invite(rest[0], rest[1]),
  accept: () => accept(rest[0], rest[1]),
  logs: () => logs(rest[0]),
};
const run = steps[step]();
run.then(
  (out) => console.log(JSON.stringify(out)),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

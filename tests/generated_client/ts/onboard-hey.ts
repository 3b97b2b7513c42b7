// Onboarding with the SDK @hey-api/openapi-ts generated from
// openapi/openapi.json (gen/hey). Same steps and output as onboard-fetch.ts.
import { createClient, createConfig } from "./gen/hey/client";
import * as sdk from "./gen/hey/sdk.gen";
import type { CreateChatCompletionStreamResponse } from "./gen/hey/types.gen";
import { events } from "./sse";

const [step, baseUrl, ...rest] = process.argv.slice(2);
const as = (token?: string) => createClient(createConfig({ baseUrl, auth: token }));

async function invite(root: string, email: string) {
  const { response } = await sdk.createInvite({ client: as(root), body: { email } });
  return { status: response.status };
}

async function accept(token: string, username: string) {
  const password = `${username}-password-1`;
  const anon = as();
  const accepted = await sdk.acceptInvite({ client: anon, body: { token, username, password } });
  if (!accepted.data) throw new Error(`accept: ${JSON.stringify(accepted.error)}`);
  const session = await sdk.login({ client: anon, body: { username, password } });
  if (!session.data?.access_token) throw new Error(`login: ${JSON.stringify(session.error)}`);
  const user = as(session.data.access_token);
  const me = await sdk.getMe({ client: user });
  const created = await sdk.createToken({ client: user, body: { name: "hey-api" } });
  if (!created.data) throw new Error(`token: ${JSON.stringify(created.error)}`);
  const relay = as(created.data.key);
  const models = await sdk.listModels({ client: relay });

  const chat = await sdk.createChatCompletion({
    client: relay,
    body: { model: "llama", messages: [{ role: "user", content: "hello from hey-api" }] },
  });
  if (!chat.data) throw new Error(`chat: ${JSON.stringify(chat.error)}`);
  const reply = chat.data.choices[0].message.content;

  const streamed = await sdk.createChatCompletion({
    client: relay,
    body: { model: "llama", stream: true, messages: [{ role: "user", content: "stream to hey-api" }] },
    parseAs: "stream",
  });
  if (!streamed.response.ok || !streamed.response.body) throw new Error(`stream: ${streamed.response.status}`);
  let streamedText = "";
  for await (const chunk of events<CreateChatCompletionStreamResponse>(streamed.response.body)) {
    streamedText += chunk.choices.map((c) => c.delta.content ?? "").join("");
  }

  return {
    access_token: session.data.access_token,
    username: me.data?.username,
    role: me.data?.role,
    models: models.data?.data.map((m) => m.id),
    reply,
    streamed: streamedText,
  };
}

async function logs(jwt: string) {
  const logs = await sdk.listLogs({ client: as(jwt), query: { limit: 10 } });
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

// The whole invite journey: root sets up a channel and a price and invites
// Ada; the mail's link signs her up; she creates a token, copies OpenClaw's
// configuration, a chat call with it succeeds, and the usage page shows it
// with its cost.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, context, guard, signIn, openSection, until, mails, chat, apiLogin, Api, rootApi,
  ROOT_PASSWORD, MOCK_BASE_URL, MODEL, SLUICE_URL,
} from './lib.mjs';

const ADA = { email: 'ada@example.com', username: 'ada', password: 'ada-lovelace-1815' };
// 1 unit per prompt token and 2 per completion token: the cost is exact.
const PRICE = { input: 1000000, output: 2000000 };

let browser;
before(async () => {
  browser = await launch();
  await rootApi(); // the forced first change, through the API
});
after(async () => {
  await browser?.close();
});

test('an invited person signs up from the mail, connects OpenClaw with a new token, and sees the request and its cost', async () => {
  // Root: a channel with two pasted keys, a price, an invite.
  const admin = await context(browser);
  const page = await admin.newPage();
  const watchAdmin = await guard(page);
  await signIn(page, 'root', ROOT_PASSWORD);

  await page.getByRole('link', { name: 'Channels' }).click();
  await page.getByRole('heading', { name: 'Channels', level: 1 }).waitFor();
  await openSection(page, 'New channel');
  await page.getByLabel('Channel name').fill('nvidia-nim');
  await page.getByLabel('Base URL').fill(MOCK_BASE_URL);
  await page.getByLabel('Models', { exact: true }).fill(MODEL);
  await page.getByLabel('Provider keys').fill('nvapi-first-account-key\nnvapi-second-account-key\n');
  await page.getByRole('button', { name: 'Create channel' }).click();
  await page.getByRole('status').filter({ hasText: '2 keys added' }).waitFor();
  await page.getByRole('link', { name: 'nvidia-nim' }).click();
  await page.getByRole('heading', { name: 'nvidia-nim' }).waitFor();
  assert.equal(await page.locator('tbody tr[data-key-id]').count(), 2, 'both pasted keys are in the channel');

  await page.getByRole('link', { name: 'Prices' }).click();
  await page.getByLabel('Model', { exact: true }).fill(MODEL);
  await page.getByLabel('Input price (units per million tokens)').fill(String(PRICE.input));
  await page.getByLabel('Output price (units per million tokens)').fill(String(PRICE.output));
  await page.getByRole('button', { name: 'Set price' }).click();
  await page.getByRole('row', { name: new RegExp(MODEL) }).waitFor();

  await page.getByRole('link', { name: 'Invites' }).click();
  await page.getByLabel('Email address').fill(ADA.email);
  await page.getByLabel('Quota (units)').fill('5000000');
  await page.getByRole('button', { name: 'Send invite' }).click();
  await page.getByRole('status').filter({ hasText: `Invite sent to ${ADA.email}` }).waitFor();
  await page.getByRole('row', { name: new RegExp(ADA.email) }).getByText('pending').waitFor();
  await watchAdmin.check('admin');

  // The mail arrives on the loopback SMTP server with the link.
  const [mail] = await mails(ADA.email);
  const link = mail.links.find((l) => l.includes('/invite?token='));
  assert.ok(link, `the invite mail has a link: ${JSON.stringify(mail)}`);
  assert.ok(link.startsWith(SLUICE_URL), 'the link points at this instance');

  // Ada, in her own browser: the link greets her, she picks a name and password.
  const ctx = await context(browser, { clipboard: true });
  const ada = await ctx.newPage();
  const watch = await guard(ada);
  await ada.goto(link);
  await ada.getByText(`You are invited as ${ADA.email}`).waitFor();
  await ada.getByLabel('Username').fill(ADA.username);
  await ada.getByLabel('Password', { exact: true }).fill(ADA.password);
  await ada.getByLabel('Confirm password').fill(ADA.password);
  await ada.getByRole('button', { name: 'Create account' }).click();
  await ada.waitForURL('**/tokens?welcome=1');
  await ada.getByRole('heading', { name: 'Tokens', level: 1 }).waitFor();
  assert.equal(await ada.getByRole('link', { name: 'Channels' }).count(), 0, 'a plain user sees no admin navigation');

  // She creates a token; its key is shown once; Connect fills it in.
  await openSection(ada, 'New token');
  await ada.getByLabel('Token name').fill('openclaw-laptop');
  await ada.getByRole('button', { name: 'Create token' }).click();
  const key = (await ada.getByLabel('the key', { exact: true }).textContent()).trim();
  assert.match(key, /^sk-/);
  await ada.getByRole('row', { name: /openclaw-laptop/ }).waitFor();
  await ada.getByRole('link', { name: 'Connect a client with it' }).click();
  await ada.waitForURL(/\/connect\/\d+$/);
  await ada.getByRole('heading', { name: 'OpenClaw configuration' }).waitFor();
  await ada.getByRole('button', { name: 'Copy OpenClaw configuration' }).click();
  await ada.getByRole('status').filter({ hasText: 'Copied' }).first().waitFor();
  const copied = await ada.evaluate(() => navigator.clipboard.readText());

  // What she pasted is OpenClaw's provider block, and it works.
  const config = JSON.parse(copied);
  assert.equal(config.models.mode, 'merge');
  const provider = config.models.providers.sluice;
  assert.equal(provider.api, 'openai-completions');
  assert.equal(provider.baseUrl, `${SLUICE_URL}/v1`);
  assert.equal(provider.apiKey, key);
  assert.deepEqual(provider.models.map((m) => m.id), [MODEL]);
  assert.deepEqual(Object.keys(provider.models[0]).sort(), ['contextWindow', 'id', 'input', 'maxTokens', 'name', 'reasoning']);
  const reply = await chat(provider.apiKey, { baseUrl: provider.baseUrl, model: provider.models[0].id });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  const { prompt_tokens: inTok, completion_tokens: outTok } = reply.body.usage;
  const expected = (inTok * PRICE.input + outTok * PRICE.output) / 1000000;
  assert.ok(expected > 0);

  // The usage page shows the request with its cost (the ledger writes in batches: look again until it is there).
  const adaApi = new Api((await apiLogin(ADA.username, ADA.password)).access_token);
  const logged = await until(async () => (await adaApi.get('/api/logs')).items[0], { what: 'the request in the log' });
  assert.equal(logged.quota, expected, 'the cost follows the price');
  await ada.getByRole('link', { name: 'Usage logs' }).click();
  await ada.getByRole('heading', { name: 'Usage logs' }).waitFor();
  const row = ada.locator(`tr[data-request-id="${logged.request_id}"]`);
  await until(async () => {
    if (await row.count()) return true;
    await ada.getByRole('button', { name: 'Apply filters' }).click();
    return false;
  }, { what: 'the row on the usage page', every: 500 });
  const text = await row.textContent();
  assert.ok(text.includes(MODEL), text);
  assert.ok(text.includes('openclaw-laptop'), text);
  assert.ok(text.includes(`${expected.toLocaleString('en-US')} units`), `the row shows the cost: ${text}`);
  assert.ok(text.includes('200'), text);

  await watch.check('invitee');
  await ctx.close();
  await admin.close();
});

test('Ada forgets her password, resets it from the mailed link and signs in with the new one', async () => {
  const NEW = 'ada-analytical-engine';
  const ctx = await context(browser);
  const page = await ctx.newPage();
  const watch = await guard(page);
  await page.goto('/login');
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.waitForURL('**/reset');
  await page.getByLabel('Email address').fill(ADA.email);
  await page.getByRole('button', { name: 'Send reset link' }).click();
  await page.getByRole('status').filter({ hasText: 'a mail with a link is on its way' }).waitFor();

  const link = await until(async () => (await mails(ADA.email)).flatMap((m) => m.links).find((l) => l.includes('/reset?token=')),
    { what: 'the reset mail' });
  await page.goto(link);
  await page.getByLabel('New password', { exact: true }).fill(NEW);
  await page.getByLabel('Confirm password', { exact: true }).fill(NEW);
  await page.getByRole('button', { name: 'Set new password' }).click();
  await page.waitForURL('**/login?notice=reset');
  await page.getByRole('status').filter({ hasText: 'Your password was changed' }).waitFor();

  await page.getByLabel('Username').fill(ADA.username);
  await page.getByLabel('Password', { exact: true }).fill(NEW);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname === '/');
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  // Her request from the first story is on her dashboard, with its cost.
  await page.getByRole('region', { name: 'Per model' }).getByRole('row', { name: new RegExp(MODEL) }).waitFor();
  await watch.check('password reset');
  await ctx.close();
});

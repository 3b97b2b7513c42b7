// Every page, with some data in place, at desktop (1280 px) and phone (390 px)
// width: saved as a screenshot, and checked for what a person would notice —
// console errors, CSP violations, requests to other hosts, a heavy first
// load, a page wider than the phone.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, context, guard, rootApi, rootContext, mockChannel, chat, mails, until, screenshot, firstLoadBytes, overflowX,
  openSection, WIDE, PHONE, MODEL,
} from './lib.mjs';

const KB = 1024;
const OTHER_MODEL = 'deepseek-v3.2';
let browser;
const data = {};

before(async () => {
  browser = await launch();
  const api = await rootApi();
  const { channel } = await mockChannel(api, {
    name: 'nvidia-nim', keys: ['nvapi-alpha-0001', 'nvapi-bravo-0002', 'nvapi-charlie-0003'], rpm: 40, models: [MODEL, OTHER_MODEL],
  });
  data.channelId = channel.id;
  await api.put(`/api/prices/${MODEL}`, { input: 1000000, output: 2000000 });
  await api.put(`/api/prices/${OTHER_MODEL}`, { input: 500000, output: 1500000 });
  await api.put('/api/groups/vip', { multiplier_permille: 800 });
  await api.post('/api/fallbacks', { name: 'smart', models: [OTHER_MODEL, MODEL], wait_secs: 5 });
  const grace = await api.post('/api/users', { username: 'grace', password: 'grace-hopper-1906', email: 'grace@example.com', quota: 2000000 });
  await api.patch(`/api/users/${grace.id}`, { group: 'vip', rpm: 30 });
  const created = await api.post('/api/tokens', { name: 'openclaw-desktop', models: [MODEL, OTHER_MODEL] });
  await api.post('/api/tokens', { name: 'scripts', quota: 500000 });
  data.tokenId = created.token.id;
  const replies = await Promise.all([
    ...Array.from({ length: 4 }, (_, i) => chat(created.key, { content: `hello ${i}` })),
    ...Array.from({ length: 2 }, (_, i) => chat(created.key, { model: OTHER_MODEL, content: `hi ${i}` })),
  ]);
  for (const r of replies) assert.equal(r.status, 200, JSON.stringify(r.body));
  await until(async () => (await api.get('/api/logs')).items.length >= 6, { what: 'the requests in the log' });
  await api.post('/api/invites', { email: 'ada@example.com', quota: 1000000 });
  const [mail] = await mails('ada@example.com');
  data.inviteLink = new URL(mail.links.find((l) => l.includes('/invite?token='))).pathname
    + new URL(mail.links.find((l) => l.includes('/invite?token='))).search;
});
after(async () => {
  await browser?.close();
});

/** Wait until a page has drawn its data (no "Loading…" left). */
async function settled(page, name) {
  await page.locator('main h1').first().waitFor();
  await until(async () => (await page.locator('main .loading').count()) === 0, { what: `${name} to load` });
  if (name === 'dashboard') await until(async () => (await page.locator('.chart canvas').count()) === 3, { what: 'three charts' });
  if (name === 'keys') await page.locator('.live-live').waitFor();
  if (name === 'logs') await page.locator('table.logs tbody tr').first().waitFor();
  if (name === 'audit') await page.locator('table.audit tbody tr').first().waitFor();
  if (name === 'fallbacks') await page.locator('table.fallbacks tbody tr').first().waitFor();
}

/** Visit one page: screenshot, and every check of the story. */
async function visit(ctx, name, path, { dark = false, signedOut = false, act } = {}) {
  const page = await ctx.newPage();
  const watch = await guard(page);
  await page.goto(path);
  if (signedOut) await page.locator('main h1').first().waitFor();
  else await settled(page, name);
  const width = page.viewportSize().width;
  const bytes = await firstLoadBytes(page);
  const budget = name === 'dashboard' ? 260 * KB : 200 * KB;
  assert.ok(bytes.decoded <= budget, `${name} at ${width}px loads ${bytes.decoded} bytes of HTML, CSS and JS (budget ${budget}):\n${bytes.files.join('\n')}`);
  assert.ok(bytes.transferred <= budget, `${name} at ${width}px transfers ${bytes.transferred} bytes`);
  if (act) await act(page);
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((e) => e.type !== 'hidden' && !(e.labels && e.labels.length))
    .map((e) => e.outerHTML.slice(0, 120)));
  assert.deepEqual(unlabelled, [], `${name}: every form field has a label`);
  if (width === PHONE.width) {
    const { scroll } = await overflowX(page);
    assert.ok(scroll <= PHONE.width, `${name} is ${scroll}px wide at ${PHONE.width}px`);
  }
  await screenshot(page, name, { dark });
  await watch.check(`${name} at ${width}px${dark ? ' (dark)' : ''}`);
  await page.close();
  return bytes;
}

/** On the channel page: test every key and wait for each result. */
async function testWholeChannel(page) {
  await page.getByRole('button', { name: 'Test whole channel' }).click();
  await until(async () => (await page.getByRole('status').filter({ hasText: /^OK · / }).count()) === 3, { what: 'three test results' });
}

/** On the fallback chains page: start a chain of two models, so the form shows its steps. */
async function startChain(page) {
  const form = await openSection(page, 'New fallback chain');
  await form.getByLabel('Chain name').fill('fast');
  for (const model of [MODEL, OTHER_MODEL]) {
    await form.getByLabel('Add a model').selectOption(model);
    await form.getByRole('button', { name: 'Add', exact: true }).click();
  }
  await form.getByRole('button', { name: `Move ${OTHER_MODEL} up` }).waitFor();
}

function pages() {
  return [
    ['dashboard', '/'],
    ['tokens', '/tokens'],
    ['connect', `/connect/${data.tokenId}`],
    ['logs', '/logs'],
    ['password', '/password'],
    ['keys', '/keys'],
    ['channels', '/channels'],
    ['channel', `/channels/${data.channelId}`, testWholeChannel],
    ['fallbacks', '/fallbacks', startChain],
    ['users', '/users'],
    ['invites', '/invites'],
    ['prices', '/prices'],
    ['audit', '/audit'],
    ['admins', '/admins'],
  ];
}

for (const size of [WIDE, PHONE]) {
  test(`every page at ${size.width}px is light, small, clean and fits the screen`, async (t) => {
    const ctx = await rootContext(browser, { size });
    for (const [name, path, act] of pages()) {
      const bytes = await visit(ctx, name, path, { act });
      t.diagnostic(`${name}-${size.width}: ${bytes.decoded} bytes decoded, ${bytes.transferred} transferred`);
    }
    if (size === PHONE) {
      // The navigation folds behind the menu button and opens from it.
      const page = await ctx.newPage();
      await page.goto('/tokens');
      await page.locator('main h1').waitFor();
      assert.equal(await page.getByRole('link', { name: 'Usage logs' }).isVisible(), false, 'navigation is folded');
      await page.getByRole('button', { name: 'Menu' }).click();
      await page.getByRole('link', { name: 'Usage logs' }).waitFor();
      await screenshot(page, 'menu');
      await page.close();
    }
    await ctx.close();

    const out = await context(browser, { size });
    await visit(out, 'login', '/login', { signedOut: true });
    await visit(out, 'reset', '/reset', { signedOut: true });
    const invite = await out.newPage();
    await invite.goto(data.inviteLink);
    await invite.getByText('You are invited as ada@example.com').waitFor();
    await invite.close();
    await visit(out, 'invite', data.inviteLink, { signedOut: true });
    await out.close();
  });
}

test('the dashboard and the key board in the dark scheme', async () => {
  for (const size of [WIDE, PHONE]) {
    const ctx = await rootContext(browser, { size, colorScheme: 'dark' });
    await visit(ctx, 'dashboard', '/', { dark: true });
    await visit(ctx, 'keys', '/keys', { dark: true });
    await ctx.close();
  }
});

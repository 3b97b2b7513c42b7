// An admin builds a fallback chain from the models the instance serves on the
// Fallback chains page: picks two, reorders them, saves; clients see the
// chain in /v1/models; the admin changes its wait and deletes it. A chain the
// config file declares ("from-file", set by the Rust harness) is shown with
// the reason it cannot be changed here.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, guard, signIn, rootApi, mockChannel, openSection, until, SLUICE_URL, MODEL } from './lib.mjs';

const OTHER_MODEL = 'deepseek-v3.2';
const ALICE = { username: 'alice', password: 'alice-the-admin-1' };
let browser;
let clientKey;

before(async () => {
  browser = await launch();
  const root = await rootApi();
  await mockChannel(root, { models: [MODEL, OTHER_MODEL] });
  await root.post('/api/users', { ...ALICE, role: 'admin' });
  clientKey = (await root.post('/api/tokens', { name: 'client' })).key;
});
after(async () => {
  await browser?.close();
});

/** The model ids `GET /v1/models` lists for the client's key. */
async function listedModels() {
  const res = await fetch(`${SLUICE_URL}/v1/models`, { headers: { Authorization: `Bearer ${clientKey}` } });
  assert.equal(res.status, 200);
  return (await res.json()).data.map((m) => m.id);
}

/** Wait (a page redraws after a click, not during it) until `locator`'s texts are `expected`. */
async function texts(locator, expected, what) {
  let seen;
  try {
    await until(async () => {
      seen = await locator.allInnerTexts();
      return JSON.stringify(seen) === JSON.stringify(expected);
    }, { timeout: 5000, what });
  } catch {
    // The assertion below says what was there instead.
  }
  assert.deepEqual(seen, expected, what);
}

/** The chains the API holds, by name. */
async function chains() {
  const list = await (await rootApi()).get('/api/fallbacks');
  return Object.fromEntries(list.map((c) => [c.name, c]));
}

test('an admin creates, reorders, edits and deletes a fallback chain', async () => {
  const ctx = await context(browser);
  const page = await ctx.newPage();
  const watch = await guard(page);
  await signIn(page, ALICE.username, ALICE.password);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Fallback chains' }).click();
  await page.getByRole('heading', { name: 'Fallback chains', level: 1 }).waitFor();

  // The file's chain: listed, with why it cannot be changed, and no buttons to try.
  const table = page.getByRole('region', { name: 'Fallback chains' });
  const fromFile = table.getByRole('row', { name: /from-file/ });
  await fromFile.getByText('Declared in the config file: change it there and restart.').waitFor();
  assert.equal(await fromFile.getByRole('button').count(), 0, 'a config chain has no edit or delete');

  // Two served models, picked in one order and then swapped.
  const form = await openSection(page, 'New fallback chain');
  await form.getByLabel('Chain name').fill('smart');
  const add = form.getByLabel('Add a model');
  await texts(add.locator('option'), [OTHER_MODEL, MODEL], 'the picker offers the served models');
  await add.selectOption(MODEL);
  await form.getByRole('button', { name: 'Add', exact: true }).click();
  await add.selectOption(OTHER_MODEL);
  await form.getByRole('button', { name: 'Add', exact: true }).click();
  const steps = form.getByRole('list', { name: 'Models of the chain, in the order they are tried' }).locator('code');
  await texts(steps, [MODEL, OTHER_MODEL], 'the models in the order picked');
  assert.equal(await add.isDisabled(), true, 'nothing left to add');
  await form.getByRole('button', { name: `Move ${OTHER_MODEL} up` }).click();
  await texts(steps, [OTHER_MODEL, MODEL], 'the second model moved up');

  // A wait the API refuses: its message beside the wait field, nothing saved.
  const wait = form.getByLabel('Wait per step (seconds)');
  await wait.fill('4000');
  await form.getByRole('button', { name: 'Create chain' }).click();
  const waitError = page.locator(`#${await wait.getAttribute('id')}-error`);
  await waitError.waitFor();
  assert.equal(await waitError.innerText(), 'wait_secs must be at most 3600');
  assert.equal(await wait.getAttribute('aria-invalid'), 'true');
  assert.deepEqual(Object.keys(await chains()), ['from-file']);

  await wait.fill('2');
  await form.getByRole('button', { name: 'Create chain' }).click();
  await page.getByRole('status').filter({ hasText: 'Chain smart created.' }).waitFor();
  const row = table.getByRole('row', { name: /smart/ });
  await texts(row.locator('ol.chain li'), [OTHER_MODEL, MODEL], 'the list shows the models in order');
  await row.getByRole('cell', { name: '2 s', exact: true }).waitFor();
  await row.getByText('API and console').waitFor();
  let smart = (await chains()).smart;
  assert.deepEqual(smart.models, [OTHER_MODEL, MODEL]);
  assert.equal(smart.wait_secs, 2);
  assert.equal(smart.managed_by, 'api');
  assert.ok((await listedModels()).includes('smart'), '/v1/models lists the chain');

  // Edit the wait in the dialog; the row changes without a reload.
  await row.getByRole('button', { name: 'Edit chain smart' }).click();
  const dialog = page.getByRole('dialog', { name: 'Edit chain smart' });
  await texts(dialog.locator('ol code'), [OTHER_MODEL, MODEL], 'the dialog starts from the chain');
  await dialog.getByLabel('Wait per step (seconds)').fill('7');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await row.getByRole('cell', { name: '7 s', exact: true }).waitFor();
  await dialog.waitFor({ state: 'hidden' });
  smart = (await chains()).smart;
  assert.equal(smart.wait_secs, 7);
  assert.deepEqual(smart.models, [OTHER_MODEL, MODEL], 'the order is kept');

  // Delete, confirmed; gone from the page, the API and /v1/models.
  await row.getByRole('button', { name: 'Delete chain smart' }).click();
  await page.getByRole('dialog', { name: 'Delete fallback chain' }).getByRole('button', { name: 'Delete' }).click();
  await until(async () => (await table.getByRole('row', { name: /smart/ }).count()) === 0, { what: 'the row to go' });
  assert.deepEqual(Object.keys(await chains()), ['from-file']);
  assert.equal((await listedModels()).includes('smart'), false, '/v1/models no longer lists it');
  await watch.check('fallbacks');
  await ctx.close();
});

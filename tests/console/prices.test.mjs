// An admin prices a model with an output allowance and sets a group to refuse
// rather than shorten answers, from the Prices page; the gateway then holds
// that allowance and follows that policy.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { launch, rootContext, rootApi, guard, mockChannel, MODEL } from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
  await mockChannel(await rootApi());
});
after(async () => {
  await browser?.close();
});

test('an admin sets a price, its output allowance and a group policy from the Prices page', async () => {
  const ctx = await rootContext(browser);
  const page = await ctx.newPage();
  const watch = await guard(page);
  await page.goto('/prices');
  await page.getByRole('heading', { name: 'Prices', level: 1 }).waitFor();

  const prices = page.getByRole('region', { name: 'Model prices' });
  await page.getByLabel('Model', { exact: true }).fill(MODEL);
  await page.getByLabel('Input price', { exact: false }).fill('1000000');
  await page.getByLabel('Output price', { exact: false }).fill('2000000');
  await page.getByLabel('Output allowance (tokens)').fill('0');
  await page.getByRole('button', { name: 'Set price' }).click();
  // Out of bounds: the field says why and nothing is saved.
  await page.getByText('max_output_tokens must be 1–1000000').waitFor();
  assert.deepEqual((await (await rootApi()).get('/api/prices')).prices, []);

  await page.getByLabel('Output allowance (tokens)').fill('2000');
  await page.getByRole('button', { name: 'Set price' }).click();
  const row = prices.getByRole('row', { name: new RegExp(MODEL) });
  await row.getByRole('cell', { name: '2,000', exact: true }).waitFor();

  await page.getByLabel('Group', { exact: true }).fill('vip');
  await page.getByLabel('Share of a busy pool').fill('3');
  await page.getByLabel('When quota runs short').selectOption('refuse');
  await page.getByRole('button', { name: 'Save group' }).click();
  const vip = page.getByRole('region', { name: 'Groups' }).getByRole('row', { name: /vip/ });
  await vip.getByRole('cell', { name: 'Refuse the request' }).waitFor();
  await vip.getByRole('cell', { name: '3', exact: true }).waitFor();

  const root = await rootApi();
  const saved = (await root.get('/api/prices')).prices.find((p) => p.model === MODEL);
  assert.equal(saved.max_output_tokens, 2000);
  const groups = await root.get('/api/groups');
  assert.equal(groups.quota_policies.vip, 'refuse');
  assert.equal(groups.weights.vip, 3);

  // Reset puts the group back to the defaults.
  await vip.getByRole('button', { name: 'Reset group vip' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Reset' }).click();
  await page.getByRole('region', { name: 'Groups' }).getByText('No group settings').waitFor();
  assert.deepEqual(await root.get('/api/groups'), { groups: {}, weights: {}, quota_policies: {} });
  await watch.check('prices');
  await ctx.close();
});

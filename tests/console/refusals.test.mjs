// Pages are only for the roles that may use them: a plain user sees no admin
// navigation and a clear refusal on every admin page (the API refuses too);
// an admin is refused the root-only page, and reads the audit log of what root did.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, guard, signIn, rootApi, until } from './lib.mjs';

const BOB = { username: 'bob', password: 'bob-the-plain-user' };
const ALICE = { username: 'alice', password: 'alice-the-admin-1' };
const ADMIN_PAGES = ['/users', '/channels', '/fallbacks', '/keys', '/prices', '/invites', '/audit'];
const ADMIN_LINKS = ['Users', 'Channels', 'Fallback chains', 'Key board', 'Prices', 'Invites', 'Audit log', 'Admins'];

let browser;
before(async () => {
  browser = await launch();
  const root = await rootApi();
  const bob = await root.post('/api/users', { ...BOB, role: 'user' });
  await root.post('/api/users', { ...ALICE, role: 'admin' });
  await root.patch(`/api/users/${bob.id}`, { quota: 4321, group: 'vip' });
});
after(async () => {
  await browser?.close();
});

test('a plain user sees no admin navigation and is refused every admin page', async () => {
  const ctx = await context(browser);
  const page = await ctx.newPage();
  const watch = await guard(page);
  await signIn(page, BOB.username, BOB.password);
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: 'Tokens' }).waitFor();
  for (const name of ADMIN_LINKS) {
    assert.equal(await nav.getByRole('link', { name, exact: true }).count(), 0, `no “${name}” link for a plain user`);
  }

  for (const path of [...ADMIN_PAGES, '/channels/1']) {
    await page.goto(path);
    await page.getByRole('alert').filter({ hasText: 'This page needs an admin account.' }).waitFor();
    assert.equal(await page.locator('form').count(), 0, `${path} shows no admin form`);
  }
  await page.goto('/admins');
  await page.getByRole('alert').filter({ hasText: 'This page needs the root account.' }).waitFor();

  // And the API says no as well.
  const statuses = await page.evaluate(async () => {
    const get = (p) => fetch(p, { headers: { 'Sluice-Session': 'cookie' }, credentials: 'same-origin' }).then((r) => r.status);
    return Promise.all(['/api/users', '/api/channels', '/api/fallbacks', '/api/keys/state', '/api/invites', '/api/audit',
      '/api/audit/export'].map(get));
  });
  assert.deepEqual(statuses, [403, 403, 403, 403, 403, 403, 403]);

  // Their own pages still work.
  await page.goto('/tokens');
  await page.getByRole('heading', { name: 'Tokens', level: 1 }).waitFor();
  await watch.check('plain user');
  await ctx.close();
});

test('an admin may use the admin pages but is refused the root-only Admins page', async () => {
  const ctx = await context(browser);
  const page = await ctx.newPage();
  const watch = await guard(page);
  await signIn(page, ALICE.username, ALICE.password);
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: 'Users' }).waitFor();
  assert.equal(await nav.getByRole('link', { name: 'Admins', exact: true }).count(), 0, 'no Admins link for an admin');

  await page.goto('/users');
  await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
  await page.getByRole('row', { name: /bob/ }).waitFor();
  // The audit log: what root did, newest first, a change's fields side by side.
  await nav.getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
  const rows = page.locator('table.audit > tbody > tr');
  await rows.first().waitFor();
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.action)), ['user.update', 'admin.create', 'user.create']);
  const update = rows.first();
  assert.match(await update.innerText(), /root/);
  const quota = update.getByRole('row', { name: /quota/ });
  assert.equal(await quota.locator('del').innerText(), '0');
  assert.equal(await quota.locator('ins').innerText(), '4321');
  const group = update.getByRole('row', { name: /group/ });
  assert.deepEqual([await group.locator('del').innerText(), await group.locator('ins').innerText()], ['default', 'vip']);
  // Filters narrow it; the CSV link carries the same filters.
  await page.getByLabel('Action').selectOption('admin');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await until(async () => (await rows.count()) === 1, { what: 'only the admin.create entry' });
  assert.equal(await rows.first().getAttribute('data-action'), 'admin.create');
  const href = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
  assert.equal(href, '/api/audit/export?action=admin');
  const csv = await page.evaluate((h) => fetch(h, { credentials: 'same-origin' }).then((r) => r.text()), href);
  assert.equal(csv.trim().split('\n').length, 2, `a header and one row: ${csv}`);

  await page.goto('/admins');
  await page.getByRole('alert').filter({ hasText: 'This page needs the root account.' }).waitFor();
  await watch.check('admin');
  await ctx.close();
});

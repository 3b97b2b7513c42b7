// Pages are only for the roles that may use them: a plain user sees no admin
// navigation and a clear refusal on every admin page (the API refuses too);
// an admin is refused the root-only page.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, guard, signIn, rootApi } from './lib.mjs';

const BOB = { username: 'bob', password: 'bob-the-plain-user' };
const ALICE = { username: 'alice', password: 'alice-the-admin-1' };
const ADMIN_PAGES = ['/users', '/channels', '/keys', '/prices', '/invites'];
const ADMIN_LINKS = ['Users', 'Channels', 'Key board', 'Prices', 'Invites', 'Admins'];

let browser;
before(async () => {
  browser = await launch();
  const root = await rootApi();
  await root.post('/api/users', { ...BOB, role: 'user' });
  await root.post('/api/users', { ...ALICE, role: 'admin' });
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
    return Promise.all(['/api/users', '/api/channels', '/api/keys/state', '/api/invites'].map(get));
  });
  assert.deepEqual(statuses, [403, 403, 403, 403]);

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
  await page.goto('/admins');
  await page.getByRole('alert').filter({ hasText: 'This page needs the root account.' }).waitFor();
  await watch.check('admin');
  await ctx.close();
});

// Root's first sign-in: the first password works once, only to choose a new
// one; nothing else is reachable until then. Then sign out and back in.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, guard, signIn, until, ROOT_FIRST_PASSWORD, ROOT_PASSWORD } from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('root is forced to change the first password, lands on the dashboard, and signs in again with the new one', async () => {
  const ctx = await context(browser);
  const page = await ctx.newPage();
  const watch = await guard(page);

  // Signed out, the console sends you to sign in.
  await page.goto('/');
  await page.waitForURL(/\/login\?next=%2F$/);
  await signIn(page, 'root', ROOT_FIRST_PASSWORD);

  // The forced change: its own page, saying why, and no navigation.
  await page.waitForURL('**/password');
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  await page.getByText('still has its first password').waitFor();
  assert.equal(await page.getByRole('link', { name: 'Tokens' }).count(), 0, 'no navigation before the change');
  assert.equal(await page.getByRole('link', { name: 'Dashboard' }).count(), 0);

  // Nothing else is reachable: another page leads back here, and the API refuses too.
  await page.goto('/tokens');
  await page.waitForURL('**/password');
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  const refused = await page.evaluate(async () => {
    const res = await fetch('/api/tokens', { headers: { 'Sluice-Session': 'cookie' }, credentials: 'same-origin' });
    return { status: res.status, body: await res.json() };
  });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, 'password_change_required');

  // A wrong current password is reported next to its field.
  await page.getByLabel('Current password', { exact: true }).fill('not-the-password');
  await page.getByLabel('New password', { exact: true }).fill(ROOT_PASSWORD);
  await page.getByLabel('Confirm password', { exact: true }).fill(ROOT_PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  const current = page.getByLabel('Current password', { exact: true });
  await until(async () => (await current.getAttribute('aria-invalid')) === 'true', { what: 'the current-password error' });
  const errorId = await current.getAttribute('aria-describedby');
  assert.ok(errorId && (await page.locator(`[id="${errorId.split(' ').pop()}"]`).textContent()).length > 0, 'the error text is tied to the field');

  // Two different new passwords never reach the server.
  await page.getByLabel('Current password', { exact: true }).fill(ROOT_FIRST_PASSWORD);
  await page.getByLabel('Confirm password', { exact: true }).fill(`${ROOT_PASSWORD}-typo`);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByText('The two passwords differ.').waitFor();

  // The real change lands on the dashboard, navigation and all.
  await page.getByLabel('Confirm password', { exact: true }).fill(ROOT_PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.waitForURL((url) => url.pathname === '/');
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  await page.getByRole('link', { name: 'Tokens' }).waitFor();
  await page.getByRole('link', { name: 'Admins' }).waitFor();

  // Sign out: the session is gone, pages send you to sign in.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL('**/login');
  await page.goto('/tokens');
  await page.waitForURL(/\/login\?next=%2Ftokens$/);

  // The first password no longer works; the new one does, and returns you where you were going.
  await page.getByLabel('Username').fill('root');
  await page.getByLabel('Password', { exact: true }).fill(ROOT_FIRST_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: /password|credentials|invalid/i }).waitFor();
  await page.getByLabel('Password', { exact: true }).fill(ROOT_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/tokens');
  await page.getByRole('heading', { name: 'Tokens', exact: true }).waitFor();

  // Page script never sees a session token.
  const cookies = await page.evaluate(() => document.cookie);
  assert.equal(cookies, '', 'session cookies are HttpOnly');

  await watch.check('first sign-in');
  await ctx.close();
});

test('a browser that prefers Chinese gets the console in Chinese, and the switch flips it to English and keeps it', async () => {
  const ctx = await context(browser, { locale: 'zh-CN' });
  const page = await ctx.newPage();
  const watch = await guard(page);
  await page.goto('/login');
  await page.getByLabel('用户名').waitFor();
  await page.getByLabel('密码').waitFor();
  await page.getByRole('button', { name: '登录' }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');

  await page.getByRole('button', { name: 'English' }).click();
  await page.getByLabel('Username').waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');

  await page.reload();
  await page.getByLabel('Username').waitFor();
  await page.getByRole('button', { name: '中文' }).click();
  await page.getByLabel('用户名').waitFor();
  await watch.check('language');
  await ctx.close();
});

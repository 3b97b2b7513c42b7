// Shared helpers of the console's browser stories: the browser, contexts at
// a width, signing in (through the page or the API), the API for setup, the
// loopback mailbox, and a guard that records what a page must never do.
//
// Each story file runs against its own fresh Sluice (root still on its first
// password). The Rust harness (`cargo test -p sluice-tests --test console`)
// starts one per file; by hand:
//   cargo run -p sluice-tests --bin console-fixture > /tmp/fixture.env &
//   cd tests/console && npm ci && env $(cat /tmp/fixture.env) node --test key-board.test.mjs

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the stories through the Rust harness or the console fixture`);
  return v;
}

export const SLUICE_URL = need('SLUICE_URL').replace(/\/+$/, '');
export const ORIGIN = new URL(SLUICE_URL).origin;
export const ROOT_FIRST_PASSWORD = need('SLUICE_ROOT_PASSWORD');
export const MAILBOX_URL = need('MAILBOX_URL').replace(/\/+$/, '');
export const MOCK_BASE_URL = need('MOCK_BASE_URL').replace(/\/+$/, '');
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || join(process.cwd(), '..', '..', 'target', 'console-screenshots');
/** Root's password once the forced change is done. */
export const ROOT_PASSWORD = 'root-chose-this-1';
/** The model every story's channel serves (the mock answers any name). */
export const MODEL = 'minimax-m2.1';

export const WIDE = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** Debian's chromium, headless, with nothing calling home. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/** A fresh context (own cookies) at a viewport; English unless `locale` says otherwise. */
export function context(browser, { size = WIDE, colorScheme = 'light', locale = 'en-US', clipboard = false, storageState } = {}) {
  return browser.newContext({
    storageState,
    viewport: size,
    colorScheme,
    locale,
    baseURL: SLUICE_URL,
    permissions: clipboard ? ['clipboard-read', 'clipboard-write'] : [],
  });
}

/**
 * Watch a page for what must never happen: console errors, uncaught
 * exceptions, CSP violations, failed requests, requests to another origin,
 * server errors. `check()` fails the test with everything seen.
 */
export async function guard(page) {
  const problems = [];
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location() && msg.location().url ? msg.location().url : '';
    // Chromium logs every 4xx answer of fetch() as an error: the API's
    // refusals (401 while signed out, 400 on a bad form) are expected answers
    // that the page shows; anything else is a real error.
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text()) && where.startsWith(`${ORIGIN}/api/`)) return;
    problems.push(`console error: ${msg.text()} ${where}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('request', (req) => {
    const url = req.url();
    if (url.startsWith('data:') || url.startsWith('blob:')) return;
    if (new URL(url).origin !== ORIGIN) problems.push(`request to another origin: ${url}`);
  });
  page.on('requestfailed', (req) => {
    const err = req.failure() ? req.failure().errorText : '';
    // Navigation away cancels what is still loading (the key stream, a page's data): not a failure.
    if (err === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${req.method()} ${req.url()} ${err}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 500) problems.push(`server error: ${res.status()} ${res.request().method()} ${res.url()}`);
    if (res.status() === 404 && res.url().startsWith(`${ORIGIN}/assets/`)) problems.push(`missing asset: ${res.url()}`);
  });
  return {
    problems,
    async check(label = '') {
      let csp = [];
      try {
        csp = await page.evaluate(() => window.__csp || []);
      } catch {
        // The page may be closed; what was recorded still counts.
      }
      const all = [...problems, ...csp.map((c) => `CSP violation: ${c}`)];
      assert.deepEqual(all, [], `${label} page problems:\n${all.join('\n')}`);
    },
  };
}

/** Bytes of this page's first load: `decoded` = HTML+CSS+JS uncompressed, `transferred` = everything over the wire. */
export function firstLoadBytes(page) {
  return page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const assets = res.filter((r) => !['fetch', 'xmlhttprequest', 'eventsource', 'beacon'].includes(r.initiatorType));
    return {
      decoded: (nav ? nav.decodedBodySize : 0) + assets.reduce((s, r) => s + r.decodedBodySize, 0),
      transferred: (nav ? nav.transferSize : 0) + res.reduce((s, r) => s + r.transferSize, 0),
      files: assets.map((r) => `${r.name.replace(location.origin, '')} ${r.decodedBodySize}`),
    };
  });
}

/** Wait until `fn` resolves truthy (polling); its last value is returned. */
export async function until(fn, { timeout = 20000, every = 200, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${last && last.message ? last.message : last}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The API with a bearer token, for setting a story up quickly. */
export class Api {
  constructor(token) {
    this.token = token;
  }

  async call(method, path, body) {
    const res = await fetch(`${SLUICE_URL}${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return data;
  }

  get(path) { return this.call('GET', path); }
  post(path, body) { return this.call('POST', path, body ?? {}); }
  put(path, body) { return this.call('PUT', path, body); }
  patch(path, body) { return this.call('PATCH', path, body); }
  delete(path) { return this.call('DELETE', path); }
}

/** Log in through the API without the cookie header: the session comes back in the body. */
export async function apiLogin(username, password) {
  const res = await fetch(`${SLUICE_URL}/api/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`login ${username} → ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/**
 * Root, past the forced first change (done through the API), as an Api. The
 * session is kept for the file's run: each story starts with a fresh server
 * whose root still has the first password, and failed sign-ins are throttled.
 */
let rootSession = null;
export async function rootApi() {
  if (!rootSession) {
    rootSession = (async () => {
      let session = await apiLogin('root', ROOT_FIRST_PASSWORD);
      if (session.must_change_password) {
        session = await new Api(session.access_token).post('/api/auth/password', {
          current_password: ROOT_FIRST_PASSWORD, new_password: ROOT_PASSWORD,
        });
      }
      return new Api(session.access_token);
    })();
  }
  return rootSession;
}

/** A channel at the mock provider serving MODEL, with these keys. */
export async function mockChannel(api, { name = 'nim', keys = ['nvapi-mock-key-one', 'nvapi-mock-key-two'], rpm = 0, models = [MODEL] } = {}) {
  return api.post('/api/channels', { name, base_url: MOCK_BASE_URL, models, keys: keys.join('\n'), rpm });
}

/** A chat completion through Sluice's `/v1` with an `sk-` key. */
export async function chat(key, { baseUrl = `${SLUICE_URL}/v1`, model = MODEL, content = 'Hello' } = {}) {
  const res = await fetch(`${baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }] }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Mails to `to` in the loopback mailbox, waiting for at least one. */
export async function mails(to) {
  const res = await fetch(`${MAILBOX_URL}/mails?to=${encodeURIComponent(to)}&wait_ms=15000`);
  assert.equal(res.status, 200, 'the mailbox answers');
  return res.json();
}

/** Sign in through the sign-in page; resolves once the page left /login. */
export async function signIn(page, username, password, { path = '/login' } = {}) {
  await page.goto(path);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await Promise.all([
    page.waitForURL((url) => !url.pathname.startsWith('/login')),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
}

/**
 * A context signed in as root (past the forced change). Root signs in through
 * the page once per file; later contexts start with that session's cookies
 * (sign-ins are throttled per account).
 */
let rootState = null;
export async function rootContext(browser, opts = {}) {
  if (rootState) return context(browser, { ...opts, storageState: rootState });
  await rootApi();
  const ctx = await context(browser, opts);
  const page = await ctx.newPage();
  await signIn(page, 'root', ROOT_PASSWORD);
  await page.close();
  rootState = await ctx.storageState();
  return ctx;
}

/** Save `${SCREENSHOT_DIR}/<name>-<width>[-dark].png`. */
export async function screenshot(page, name, { dark = false } = {}) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const width = page.viewportSize().width;
  const file = join(SCREENSHOT_DIR, `${name}-${width}${dark ? '-dark' : ''}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Whether the page is wider than its viewport (a horizontal scrollbar). */
export function overflowX(page) {
  return page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, view: window.innerWidth }));
}

/** Open the collapsible section titled `title` (a <details>), if it is closed. */
export async function openSection(page, title) {
  const details = page.locator('details').filter({ has: page.locator('summary', { hasText: title }) });
  await details.waitFor();
  if (!(await details.evaluate((d) => d.open))) {
    await details.locator('summary').click();
    // A click toggles a <details> at once. Closed now means the page opened the section
    // itself between the check and the click, and the click closed it: a defect of the page.
    if (!(await details.evaluate((d) => d.open))) throw new Error(`section "${title}" is closed after a click on its summary`);
  }
  return details;
}

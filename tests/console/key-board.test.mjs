// The live key board: while requests run through `/v1`, every key's window
// count and in-flight number move on the page, fed by the event stream,
// without a reload.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { launch, guard, rootApi, rootContext, mockChannel, chat, until } from './lib.mjs';

let browser;
let api;
let key;
before(async () => {
  browser = await launch();
  api = await rootApi();
  await mockChannel(api, { name: 'free-tier', keys: ['nvapi-board-key-a', 'nvapi-board-key-b'], rpm: 5 });
  key = (await api.post('/api/tokens', { name: 'load' })).key;
});
after(async () => {
  await browser?.close();
});

/** The numbers a key card shows, by key id. */
function readBoard(page) {
  return page.evaluate(() => {
    const out = {};
    for (const card of document.querySelectorAll('[data-key-id]')) {
      const n = (f) => Number((card.querySelector(`[data-field="${f}"]`)?.textContent || '').replace(/[^\d]/g, ''));
      out[card.dataset.keyId] = { window: n('requests_in_window'), inFlight: n('in_flight'), served: n('served') };
    }
    return out;
  });
}

test('the key board shows window fill and requests in flight moving while requests run, without a reload', async () => {
  const ctx = await rootContext(browser);
  const page = await ctx.newPage();
  const watch = await guard(page);
  await page.goto('/keys');
  await page.getByRole('heading', { name: 'Key board' }).waitFor();
  await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
  const board = page.locator('.key-card');
  await until(async () => (await board.count()) === 2, { what: 'two key cards' });
  const before = await readBoard(page);
  for (const k of Object.values(before)) assert.deepEqual(k, { window: 0, inFlight: 0, served: 0 });
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  // The configured limit is on the page.
  assert.ok((await board.first().textContent()).includes('/ 5'), 'the window bar shows rpm 5');

  // Six requests at once: each takes the mock's ~1 s, so they are visibly in flight.
  const calls = Array.from({ length: 6 }, (_, i) => chat(key, { content: `request ${i}` }));
  const busy = await until(async () => {
    const b = await readBoard(page);
    const flight = Object.values(b).reduce((s, k) => s + k.inFlight, 0);
    return flight > 0 ? b : null;
  }, { what: 'requests in flight on the board' });
  assert.ok(Object.values(busy).some((k) => k.window > 0), 'the window fills as requests start');

  const replies = await Promise.all(calls);
  for (const r of replies) assert.equal(r.status, 200, JSON.stringify(r.body));

  // When they end the board says so: nothing in flight, six in the windows, six served.
  const done = await until(async () => {
    const b = await readBoard(page);
    const ks = Object.values(b);
    return ks.every((k) => k.inFlight === 0) && ks.reduce((s, k) => s + k.served, 0) === 6 ? b : null;
  }, { what: 'the board to show the finished requests' });
  assert.equal(Object.values(done).reduce((s, k) => s + k.window, 0), 6);
  assert.ok(Object.values(done).every((k) => k.window <= 5), 'no key went past its limit');
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was never reloaded');

  await watch.check('key board');
  await ctx.close();
});

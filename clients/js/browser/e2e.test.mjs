// Browser end-to-end: the demo page served by a real `collabd serve`, in
// Debian's Chromium driven by playwright-core (scripts/browser-setup.sh
// installs both). Every wait is on a condition with a deadline, never a
// sleep. Writes test-artifacts/two-pages.png (two pages side by side).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startServer } from '../test/server.mjs';
import { skip, WAIT, useBrowser } from './harness.mjs';

const artifacts = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const h = useBrowser();

/** Opens the demo on doc as name in a fresh context; resolves once the document is synced. */
async function open(doc, name, { blockWebSocket = false, server = h.srv, token = '', wait = true } = {}) {
  const ctx = await h.browser.newContext({ viewport: { width: 720, height: 440 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`[${name}] page error:`, e.message));
  if (blockWebSocket) await page.routeWebSocket('**/v1/ws', (ws) => ws.close({ code: 1011, reason: 'blocked by test proxy' }));
  const q = new URLSearchParams({ doc, ...(name ? { name } : {}), ...(token ? { token } : {}) });
  await page.goto(`http://${server.addr}/?${q}`);
  if (wait) await synced(page);
  return page;
}

const synced = (page) => page.waitForFunction(() => document.getElementById('status')?.dataset.status === 'synced', null, WAIT);
const text = (page) => page.evaluate(() => window.collabdDemo.view.state.doc.toString());
const saved = (page) => page.waitForFunction(() => document.getElementById('status')?.dataset.unsaved === '0', null, WAIT);

/** Waits until every page shows the same text, satisfying pred; returns it. */
async function converged(pages, pred = () => true) {
  const deadline = Date.now() + WAIT.timeout;
  for (;;) {
    const texts = await Promise.all(pages.map(text));
    if (texts.every((t) => t === texts[0]) && pred(texts[0])) return texts[0];
    if (Date.now() > deadline) assert.fail(`pages did not converge: ${JSON.stringify(texts)}`);
    // wait for the next change on the first page that differs, bounded
    await pages[0].waitForFunction((t) => window.collabdDemo.view.state.doc.toString() !== t, texts[0], { timeout: 2_000 }).catch(() => {});
  }
}

async function typeAt(page, key, s) {
  await page.click('.cm-content');
  await page.keyboard.press(key);
  await page.keyboard.type(s, { delay: 5 });
}
const typeAtEnd = (page, s) => typeAt(page, 'Control+End', s);

test('demo page: concurrent typing, cursors with names, reload, server restart, WebSocket blocked', { skip, timeout: 110_000 }, async (t) => {
  const a = await open('e2e', 'Alice');
  const b = await open('e2e', 'Bob');

  await t.test('two pages type concurrently → identical text', async () => {
    await typeAtEnd(a, '---\n');
    await converged([a, b], (x) => x === '---\n');
    // A types before the line, B after it, at the same time: each run stays whole
    await Promise.all([typeAt(a, 'Control+Home', 'Hello from Alice 😀. '), typeAtEnd(b, 'Bob was here! ')]);
    const s = await converged([a, b], (x) => x.length === '---\nHello from Alice 😀. Bob was here! '.length);
    assert.equal(s, 'Hello from Alice 😀. ---\nBob was here! ');
    await Promise.all([saved(a), saved(b)]);
  });

  await t.test("page A sees B's cursor with B's name", async () => {
    await b.keyboard.press('Home');
    await a.waitForFunction(() => [...document.querySelectorAll('.cm-collab-name')].some((e) => e.textContent === 'Bob'), null, WAIT);
    await b.waitForFunction(() => [...document.querySelectorAll('.cm-collab-name')].some((e) => e.textContent === 'Alice'), null, WAIT);
    await b.keyboard.press('End');
    mkdirSync(artifacts, { recursive: true });
    const shots = await Promise.all([a.screenshot(), b.screenshot()]);
    const side = await h.browser.newPage({ viewport: { width: 1456, height: 440 } });
    await side.setContent(`<body style="margin:0;display:flex;gap:16px;background:#999">${shots.map((s) => `<img src="data:image/png;base64,${s.toString('base64')}">`).join('')}</body>`);
    await side.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0), null, WAIT);
    writeFileSync(`${artifacts}two-pages.png`, await side.screenshot());
    await side.close();
  });

  await t.test('reload keeps the text', async () => {
    const before = await text(a);
    await a.reload();
    await synced(a);
    await a.waitForFunction((s) => window.collabdDemo.view.state.doc.toString() === s, before, WAIT);
  });

  await t.test('server restart → pages reconnect by themselves and keep editing', async () => {
    const sessions = await Promise.all([a, b].map((p) => p.evaluate(() => window.collabdDemo.client.session)));
    await h.srv.restart();
    for (const [i, p] of [a, b].entries()) {
      await p.waitForFunction((old) => window.collabdDemo.client.session !== '' && window.collabdDemo.client.session !== old
        && document.getElementById('status').dataset.status === 'synced', sessions[i], { timeout: 30_000 });
    }
    await typeAtEnd(a, 'after restart');
    await converged([a, b], (x) => x.endsWith('after restart'));
    await saved(a);
  });

  await t.test('WebSocket blocked → the page edits through the fallback and says so', async () => {
    const c = await open('e2e', 'Carol', { blockWebSocket: true });
    await c.waitForFunction(() => document.getElementById('status').textContent.includes('transport: fallback'), null, WAIT);
    assert.equal(await c.evaluate(() => window.collabdDemo.client.transport), 'fallback');
    await typeAtEnd(c, ' via fallback');
    await converged([a, b, c], (x) => x.endsWith(' via fallback'));
    await saved(c);
    await a.waitForFunction(() => [...document.querySelectorAll('.cm-collab-name')].some((e) => e.textContent === 'Carol'), null, WAIT);
    await typeAtEnd(a, '!');
    await converged([a, c], (x) => x.endsWith(' via fallback!'));
  });
});

test('demo page in auth mode: ?token=, names from the tokens, no token refused', { skip, timeout: 60_000 }, async () => {
  const secret = 'browser-test-secret-of-32-bytes!'; // serve refuses secrets under 32 bytes
  const auth = await startServer(h.build.bin, ['--auth-secret', secret]);
  const mint = (sub, name) => execFileSync(h.build.bin, ['token', '--auth-secret', secret, '--sub', sub, '--name', name, '--doc', 'team/*:rw'], { encoding: 'utf8' }).trim();
  try {
    const ann = await open('team/plan', '', { server: auth, token: mint('ann', 'Ann') });
    const ben = await open('team/plan', '', { server: auth, token: mint('ben', 'Ben') });
    await typeAtEnd(ben, 'agenda');
    await converged([ann, ben], (x) => x === 'agenda');
    await ann.waitForFunction(() => [...document.querySelectorAll('.cm-collab-name')].some((e) => e.textContent === 'Ben'), null, WAIT);
    const anon = await open('team/plan', 'Eve', { server: auth, wait: false });
    await anon.waitForFunction(() => document.getElementById('status').textContent.startsWith('error:'), null, WAIT);
  } finally {
    await auth.stop();
  }
});

test('offline: type, reload offline (IndexedDB keeps the text and the unsent edits), online → the server has them', { skip, timeout: 90_000 }, async () => {
  const doc = 'offline-e2e';
  const ctx = await h.browser.newContext({ viewport: { width: 720, height: 440 } });
  // The network between the page and the server's sync endpoints, cut at will:
  // WebSockets are proxied to the server while online and refused offline;
  // the fallback's requests are aborted offline. The page itself still loads.
  let offline = false;
  const live = new Set();
  await ctx.routeWebSocket('**/v1/ws', (ws) => {
    if (offline) {
      ws.close({ code: 1011, reason: 'offline (test)' });
      return;
    }
    ws.connectToServer();
    live.add(ws);
  });
  await ctx.route('**/v1/rt**', (route) => (offline ? route.abort('internetdisconnected') : route.continue()));
  const goOffline = async () => {
    offline = true;
    for (const ws of live) await ws.close({ code: 1006, reason: 'offline (test)' }).catch(() => {});
    live.clear();
  };
  const serverText = async () => {
    const r = await fetch(`http://${h.srv.addr}/v1/docs/${doc}/text`);
    return r.status === 200 ? r.text() : '';
  };
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error('[offline] page error:', e.message));
  try {
    await page.goto(`http://${h.srv.addr}/?doc=${doc}&name=Olga`);
    await synced(page);
    await typeAtEnd(page, 'online.');
    await saved(page);
    assert.equal(await serverText(), 'online.');

    await goOffline();
    await page.waitForFunction(() => document.getElementById('status').dataset.status === 'offline', null, WAIT);
    await typeAtEnd(page, ' typed offline');
    await page.waitForFunction(() => document.getElementById('status').dataset.unsaved !== '0', null, WAIT);
    await page.evaluate(() => window.collabdDemo.doc.whenStored());

    await page.reload();
    await page.waitForFunction(() => window.collabdDemo?.view.state.doc.toString() === 'online. typed offline', null, WAIT);
    assert.equal(await page.evaluate(() => window.collabdDemo.doc.status), 'offline', 'shown from IndexedDB, not synced');
    assert.notEqual(await page.evaluate(() => document.getElementById('status').dataset.unsaved), '0', 'the unsent edits are queued again');
    assert.equal(await serverText(), 'online.', 'the server has not seen the offline edits yet');
    await typeAtEnd(page, '!'); // the reloaded page edits on, still offline
    await page.evaluate(() => window.collabdDemo.doc.whenStored());

    offline = false; // the page's next reconnect attempt goes through
    await page.waitForFunction(() => document.getElementById('status').dataset.status === 'synced', null, { timeout: 30_000 });
    await saved(page);
    assert.equal(await serverText(), 'online. typed offline!');
    const other = await open(doc, 'Otto');
    assert.equal(await text(other), 'online. typed offline!');
    await other.context().close();
  } finally {
    await ctx.close();
  }
});

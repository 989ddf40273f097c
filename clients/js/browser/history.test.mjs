// Browser end-to-end for the demo page's history panel: two pages on one
// document in Debian's Chromium (playwright-core); a named version saved
// from page A, listed and previewed on page B, restored from B while A
// watches: both pages converge on the version's text. Every wait is on a
// condition with a deadline, never a sleep.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../test/server.mjs';
import { skip, WAIT, useBrowser } from './harness.mjs';

const h = useBrowser();

async function open(doc, name) {
  const ctx = await h.browser.newContext({ viewport: { width: 720, height: 640 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`[${name}] page error:`, e.message));
  await page.goto(`http://${h.srv.addr}/?${new URLSearchParams({ doc, name, persist: '0' })}`);
  await page.waitForFunction(() => document.getElementById('status')?.dataset.status === 'synced', null, WAIT);
  return page;
}

const text = (page) => page.evaluate(() => window.collabdDemo.view.state.doc.toString());
const textIs = (page, want) => page.waitForFunction((w) => window.collabdDemo.view.state.doc.toString() === w, want, WAIT);
const saved = (page) => page.waitForFunction(() => document.getElementById('status')?.dataset.unsaved === '0', null, WAIT);
const versionCount = (page, n) => page.waitForFunction((k) => document.getElementById('versions').dataset.count === String(k), n, WAIT);

test('history panel: save a named version, list, preview, restore while another page watches', { skip, timeout: 90_000 }, async () => {
  const a = await open('history-e2e', 'Alice');
  const b = await open('history-e2e', 'Bob');
  try {
    await a.click('.cm-content');
    await a.keyboard.type('first draft', { delay: 5 });
    await saved(a);
    await a.fill('#version-label', 'Draft 1');
    await a.click('#save-version button');
    await versionCount(a, 1);
    assert.match(await a.textContent('#versions li'), /Draft 1/);

    await a.click('.cm-content');
    await a.keyboard.press('Control+End');
    await a.keyboard.type(', then rewritten', { delay: 5 });
    await saved(a);
    await textIs(b, 'first draft, then rewritten');

    await b.click('#refresh-versions');
    await versionCount(b, 1);
    await b.click('#versions li[data-seq="1"] .preview');
    await b.waitForFunction(() => document.getElementById('preview').textContent === 'first draft', null, WAIT);
    assert.equal(await text(b), 'first draft, then rewritten', 'a preview does not touch the document');

    await b.click('#versions li[data-seq="1"] .restore');
    await textIs(b, 'first draft');
    await textIs(a, 'first draft');
    await b.waitForFunction(() => document.getElementById('history-status').textContent.startsWith('restored #1'), null, WAIT);
    // The restore kept the replaced text as an automatic version.
    await versionCount(b, 2);
    assert.match(await b.textContent('#versions li'), /auto/);

    // Editing goes on after the restore, on both pages.
    await a.click('.cm-content');
    await a.keyboard.press('Control+End');
    await a.keyboard.type('!', { delay: 5 });
    await textIs(b, 'first draft!');
  } finally {
    await a.context().close();
    await b.context().close();
  }
});

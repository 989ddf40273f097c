// Browser end-to-end of the Yjs doors: the demo page's rich-text mode
// (TipTap on a HocuspocusProvider, /v1/hocuspocus) and code mode
// (CodeMirror with y-codemirror.next on y-websocket, /v1/yjs), served by a
// real `collabd serve`, in Debian's Chromium driven by playwright-core
// (scripts/browser-setup.sh installs both). Every wait is on a condition
// with a deadline, never a sleep. Writes test-artifacts/two-rich-pages.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { startServer, withDeadline } from '../test/server.mjs';
import { skip, WAIT, useBrowser } from './harness.mjs';

const artifacts = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const h = useBrowser();

/** Opens the demo in mode on doc as name in a fresh context; resolves once it has synced. */
async function open(mode, doc, name, { server = h.srv, token = '', wait = true } = {}) {
  const ctx = await h.browser.newContext({ viewport: { width: 720, height: 440 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`[${name}] page error:`, e.message));
  const q = new URLSearchParams({ mode, doc, ...(name ? { name } : {}), ...(token ? { token } : {}) });
  await page.goto(`http://${server.addr}/?${q}`);
  if (wait) await synced(page);
  return page;
}

const synced = (page) => page.waitForFunction(() => document.getElementById('status')?.dataset.status === 'synced', null, WAIT);
const saved = (page) => page.waitForFunction(() => document.getElementById('status')?.dataset.unsaved === '0', null, WAIT);
// What converged compares: expressions evaluated in the pages.
const RICH = 'JSON.stringify(window.collabdRich.editor.getJSON())';
const CODE = 'window.collabdCode.view.state.doc.toString()';
/** Waits until page shows a collaboration caret (TipTap) or a cursor (y-codemirror.next) named name. */
const seesCaret = (page, selector, name) =>
  page.waitForFunction(([sel, n]) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(n)), [selector, name], WAIT);
const RICH_CARET = '.collaboration-carets__label';
const CODE_CARET = '.cm-ySelectionInfo';

/**
 * Waits until expr gives the same string on every page, satisfying pred;
 * returns it. Between checks it waits, bounded, for the first page's value
 * to change.
 */
async function converged(pages, expr, pred = () => true) {
  const deadline = Date.now() + WAIT.timeout;
  for (;;) {
    const vals = await Promise.all(pages.map((p) => p.evaluate(expr)));
    if (vals.every((v) => v === vals[0]) && pred(vals[0])) return vals[0];
    if (Date.now() > deadline) assert.fail(`pages did not converge: ${vals.join('\n')}`);
    await pages[0].waitForFunction(`${expr} !== ${JSON.stringify(vals[0])}`, null, { timeout: 2_000 }).catch(() => {});
  }
}

/** The server's view of a document: GET /v1/docs/{id}. */
async function serverDoc(id, server = h.srv) {
  const r = await fetch(`http://${server.addr}/v1/docs/${encodeURIComponent(id)}`);
  assert.equal(r.status, 200, `GET /v1/docs/${id}`);
  return r.json();
}

/**
 * Checks the server's ProseMirror JSON of TipTap's fragment ("default",
 * @tiptap/extension-collaboration's field) against the editor's getJSON().
 * They are equal as JSON here: ProseMirrorJSON (crdt/yjs) cannot know the
 * schema's mark order or attribute defaults, but this document has one mark
 * per text node and StarterKit's paragraph, bulletList and listItem have no
 * attributes, so nothing is left to the schema.
 */
async function assertServerHas(id, json) {
  const doc = await serverDoc(id);
  assert.equal(doc.kind, 'yjs');
  assert.deepEqual(doc.content.default, JSON.parse(json));
}

/**
 * Runs in the page: the y-undo plugin's UndoManager stops merging the next
 * edit into the last undo step. Yjs merges edits less than 500 ms apart
 * into one step, so without this what one undo removes would depend on how
 * fast the test typed.
 */
function stopCapturing() {
  const st = window.collabdRich.editor.state;
  st.plugins.find((p) => p.key.startsWith('y-undo$')).getState(st).undoManager.stopCapturing();
}

test('rich-text mode: TipTap on Hocuspocus, concurrent bold, list and undo, named carets, durable, reload, server restart', { skip, timeout: 150_000 }, async (t) => {
  const doc = 'notes/rich-e2e'; // a document id with a slash, as Hocuspocus users name them
  const a = await open('rich', doc, 'Alice');
  const b = await open('rich', doc, 'Bob');
  let json = '';

  await t.test('two pages type concurrently with bold, a list and undo → the same document', async () => {
    await a.click('.rich-doc');
    await a.keyboard.type('Plan', { delay: 5 });
    await converged([a, b], RICH, (j) => j.includes('Plan'));
    // at the same time: A writes a sentence with a bold word at the start of
    // the first paragraph; B adds a bullet list after it (toolbar button)
    const typeA = async () => {
      // The caret to the document's start in one step: Ctrl+Home raced with
      // B's new paragraph arriving (the key went to the old caret position
      // under load: "Plan" then "Our bold ").
      await a.evaluate(() => window.collabdRich.editor.commands.setTextSelection(1));
      await a.keyboard.type('Our bold ', { delay: 5 });
      // Select the word in one step (positions 5–9: the paragraph opens at
      // 1, "Our " is 4), then Ctrl+B. Key-by-key selecting (Shift+Arrow)
      // races with B's changes re-rendering the editor, and Ctrl+B, typing,
      // Ctrl+B depends on ProseMirror's stored marks, which a remote change
      // clears; either way what turns bold would depend on timing.
      await a.evaluate(() => window.collabdRich.editor.commands.setTextSelection({ from: 5, to: 9 }));
      await a.keyboard.press('Control+B');
    };
    const typeB = async () => {
      await b.click('.rich-doc');
      await b.keyboard.press('Control+End');
      await b.keyboard.press('Enter');
      await b.click('button[data-cmd=bulletList]');
      await b.keyboard.type('milk', { delay: 5 });
      await b.keyboard.press('Enter');
      await b.keyboard.type('eggs', { delay: 5 });
    };
    await Promise.all([typeA(), typeB()]);
    const want = {
      type: 'doc',
      content: [
        { type: 'paragraph', content: [{ type: 'text', text: 'Our ' }, { type: 'text', marks: [{ type: 'bold' }], text: 'bold' }, { type: 'text', text: ' Plan' }] },
        {
          type: 'bulletList',
          content: ['milk', 'eggs'].map((s) => ({ type: 'listItem', content: [{ type: 'paragraph', content: [{ type: 'text', text: s }] }] })),
        },
        { type: 'paragraph' }, // StarterKit's TrailingNode keeps a paragraph after a list at the end
      ],
    };
    json = await converged([a, b], RICH, (j) => j === JSON.stringify(want));

    // B types a word and undoes it: only B's word goes, on both pages
    await b.evaluate(stopCapturing);
    await b.keyboard.type(' oops', { delay: 5 });
    await converged([a, b], RICH, (j) => j.includes('eggs oops'));
    assert.equal(await b.evaluate(() => document.querySelector('button[data-cmd=undo]').disabled), false);
    await b.click('button[data-cmd=undo]');
    assert.equal(await converged([a, b], RICH, (j) => !j.includes('oops')), json);
    await b.keyboard.press('Control+Shift+Z'); // redo
    await converged([a, b], RICH, (j) => j.includes('eggs oops'));
    await b.keyboard.press('Control+Z');
    assert.equal(await converged([a, b], RICH, (j) => !j.includes('oops')), json);
  });

  await t.test('unsaved reaches 0, and the server has the same ProseMirror JSON', async () => {
    await Promise.all([saved(a), saved(b)]);
    await assertServerHas(doc, json);
  });

  await t.test("each page shows the other's named caret", async () => {
    await a.keyboard.press('Control+End');
    await b.keyboard.press('Control+Home');
    await seesCaret(a, RICH_CARET, 'Bob');
    await seesCaret(b, RICH_CARET, 'Alice');
    mkdirSync(artifacts, { recursive: true });
    const shots = await Promise.all([a.screenshot(), b.screenshot()]);
    const side = await h.browser.newPage({ viewport: { width: 1456, height: 440 } });
    await side.setContent(`<body style="margin:0;display:flex;gap:16px;background:#999">${shots.map((s) => `<img src="data:image/png;base64,${s.toString('base64')}">`).join('')}</body>`);
    await side.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0), null, WAIT);
    writeFileSync(`${artifacts}two-rich-pages.png`, await side.screenshot());
    await side.close();
  });

  await t.test('reload keeps the document', async () => {
    await a.reload();
    await synced(a);
    await a.waitForFunction((s) => JSON.stringify(window.collabdRich.editor.getJSON()) === s, json, WAIT);
    await seesCaret(b, RICH_CARET, 'Alice'); // the reloaded page is back in B's awareness
  });

  await t.test('server restart: the server kept everything, the pages resync by themselves and edit on', async () => {
    // Both pages offline across the restart, so what the restarted server
    // shows comes from its disk, not from a page's resync.
    for (const p of [a, b]) {
      await p.evaluate(() => {
        window.testSyncs = 0;
        window.collabdRich.provider.on('synced', () => window.testSyncs++);
      });
      await p.context().setOffline(true);
    }
    await h.srv.restart();
    await assertServerHas(doc, json);
    for (const p of [a, b]) {
      // still offline: nothing reached the new server from this page
      assert.deepEqual(await p.evaluate(() => [window.testSyncs, document.getElementById('status').dataset.status]), [0, 'offline']);
      await p.context().setOffline(false);
    }
    for (const p of [a, b]) {
      await p.waitForFunction(() => window.testSyncs > 0 && document.getElementById('status').dataset.status === 'synced', null, { timeout: 40_000 });
    }
    await a.click('.rich-doc');
    await a.keyboard.press('Control+End'); // the trailing paragraph after the list
    await a.keyboard.type('after restart', { delay: 5 });
    json = await converged([a, b], RICH, (j) => j.includes('after restart'));
    assert.equal(JSON.parse(json).content.at(-1).type, 'paragraph');
    await Promise.all([saved(a), saved(b)]);
    await assertServerHas(doc, json);
  });

  await Promise.all([a, b].map((p) => p.context().close()));
});

test('rich-text mode in auth mode: carets carry the names from the tokens, no token is refused', { skip, timeout: 60_000 }, async () => {
  const secret = 'browser-test-secret-of-32-bytes!'; // serve refuses secrets under 32 bytes
  const auth = await startServer(h.build.bin, ['--auth-secret', secret]);
  const mint = (sub, name) => execFileSync(h.build.bin, ['token', '--auth-secret', secret, '--sub', sub, '--name', name, '--doc', 'team/*:rw'], { encoding: 'utf8' }).trim();
  try {
    // the names in the URL are what the pages claim; the server stamps the tokens'
    const ann = await open('rich', 'team/spec', 'Mallory', { server: auth, token: mint('ann', 'Ann') });
    const ben = await open('rich', 'team/spec', 'Mallory', { server: auth, token: mint('ben', 'Ben') });
    await ben.click('.rich-doc');
    await ben.keyboard.type('agenda', { delay: 5 });
    await converged([ann, ben], RICH, (j) => j.includes('agenda'));
    await ann.click('.rich-doc');
    await seesCaret(ann, RICH_CARET, 'Ben');
    await seesCaret(ben, RICH_CARET, 'Ann');
    const labels = await ann.evaluate((sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent), RICH_CARET);
    assert.ok(!labels.includes('Mallory'), `carets: ${labels}`);
    const anon = await open('rich', 'team/spec', 'Eve', { server: auth, wait: false });
    await anon.waitForFunction(() => document.getElementById('status').textContent.startsWith('error: permission denied'), null, WAIT);
    await Promise.all([ann, ben, anon].map((p) => p.context().close()));
  } finally {
    await auth.stop();
  }
});

test('code mode: CodeMirror with y-codemirror.next on y-websocket, a Node y-websocket client and the server agree', { skip, timeout: 60_000 }, async () => {
  const doc = 'code-e2e';
  const c = await open('yjs-code', doc, 'Carl');
  const d = await open('yjs-code', doc, 'Dora');
  // A Node y-websocket client on the same document: it sees what the pages
  // typed only through the server.
  const ydoc = new Y.Doc();
  const node = new WebsocketProvider(`ws://${h.srv.addr}/v1/yjs`, doc, ydoc, { WebSocketPolyfill: WebSocket, disableBc: true });
  const ytext = ydoc.getText('code');
  const nodeSees = (want) =>
    withDeadline(
      new Promise((res) => {
        const check = () => ytext.toString() === want && (ytext.unobserve(check), res());
        ytext.observe(check);
        check();
      }),
      WAIT.timeout,
      `the Node client sees ${JSON.stringify(want)} (it has ${JSON.stringify(ytext.toString())})`,
    );
  try {
    await c.click('.cm-content');
    await c.keyboard.type('function hi() {\n', { delay: 5 });
    await converged([c, d], CODE, (s) => s.startsWith('function hi() {'));
    // both type at once: C inside the function, D a comment at the top
    await Promise.all([
      (async () => {
        await c.keyboard.type("return 'hi'", { delay: 5 });
      })(),
      (async () => {
        await d.click('.cm-content');
        await d.keyboard.press('Control+Home');
        await d.keyboard.type('// greets\n', { delay: 5 });
      })(),
    ]);
    const text = await converged([c, d], CODE, (s) => s.includes("'hi'") && s.includes('// greets'));
    assert.match(text, /^\/\/ greets\nfunction hi\(\) \{\n\s*return 'hi'/);
    await nodeSees(text);
    const r = await fetch(`http://${h.srv.addr}/v1/docs/${doc}/text?root=code`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), text);
    // the Node client writes; both pages show it
    ytext.insert(0, '// from Node\n');
    await converged([c, d], CODE, (s) => s === `// from Node\n${text}`);
    await seesCaret(c, CODE_CARET, 'Dora');
    await seesCaret(d, CODE_CARET, 'Carl');
  } finally {
    node.destroy();
    node.awareness.destroy(); // its own timer, which destroy() leaves running
    ydoc.destroy();
    await Promise.all([c, d].map((p) => p.context().close()));
  }
});

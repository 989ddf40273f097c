// The React hooks (dist/react.js) against a real `collabd serve`, rendered in
// Node by react-test-renderer: useDocument joins and re-renders on remote and
// local edits and acks, usePeers follows presence, `leave` leaves once the
// last user unmounts, and a refused join shows as an error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createElement, useEffect } from 'react';
import TestRenderer from 'react-test-renderer';
import { Client } from '../dist/index.js';
import { useDocument, usePeers } from '../dist/react.js';
import { haveGo, buildServer, startServer, until, withDeadline } from './server.mjs';
import WebSocket from 'ws';

// Renders happen on React's scheduler as events arrive, not inside act():
// the tests wait for the rendered output itself.
globalThis.IS_REACT_ACT_ENVIRONMENT = false;
// React 19 deprecates react-test-renderer (it still works; react-dom would need
// a DOM in Node): keep its one-line notice out of the test output.
const consoleError = console.error;
console.error = (...args) => {
  if (typeof args[0] === 'string' && args[0].startsWith('react-test-renderer is deprecated')) return;
  consoleError(...args);
};

const skip = haveGo() ? false : 'no Go toolchain to build collabd';
let build;
let srv;

before(async () => {
  if (skip) return;
  build = buildServer();
  srv = await startServer(build.bin);
});

after(async () => {
  await srv?.stop();
  build?.cleanup();
});

const connect = () => Client.connect(srv.url, { WebSocket, backoff: { baseMs: 5, maxMs: 100 } });

/** A probe component: records every committed render's hook results and wakes waiters. */
function probe() {
  const renders = [];
  const waiters = new Set();
  function Probe({ client, id, opts }) {
    const state = useDocument(client, id, opts);
    const peers = usePeers(state.doc);
    const seen = { ...state, text: state.doc ? state.doc.text('body') : null, peers };
    useEffect(() => {
      // committed: record it and wake the waiters (outside React's render phase)
      renders.push(seen);
      for (const w of [...waiters]) w();
    });
    return createElement('p', null, state.doc ? state.doc.text('body') : state.status);
  }
  /** Resolves with the first render (from now on, or the last one) for which cond holds. */
  const rendered = (cond, what, ms = 15_000) =>
    new Promise((res, rej) => {
      const t = setTimeout(() => {
        waiters.delete(check);
        const last = JSON.stringify(renders[renders.length - 1], (k, v) => (k === 'doc' ? undefined : typeof v === 'bigint' ? `${v}` : v));
        rej(new Error(`timeout after ${ms} ms waiting for ${what}; last render: ${last}`));
      }, ms);
      const check = () => {
        const last = renders[renders.length - 1];
        if (last && cond(last)) {
          waiters.delete(check);
          clearTimeout(t);
          res(last);
        }
      };
      waiters.add(check);
      check();
    });
  return { Probe, renders, rendered };
}

test('useDocument: joins, renders remote and local edits and acks; usePeers follows presence', { skip }, async () => {
  const a = await connect();
  const b = await connect();
  const { Probe, renders, rendered } = probe();
  let r;
  try {
    r = TestRenderer.create(createElement(Probe, { client: a, id: 'react/one' }));
    await rendered(() => true, 'first render');
    assert.equal(renders[0].status, 'joining', 'first render before the join');
    assert.equal(renders[0].doc, null);
    const s = await rendered((x) => x.status === 'synced', 'synced');
    assert.equal(s.text, '');

    const db = await b.join('react/one');
    db.insert('body', 0, 'from b');
    await rendered((x) => x.text === 'from b', 'remote edit rendered');
    assert.equal(r.toJSON().children.join(''), 'from b');

    s.doc.insert('body', 6, '!'); // a local edit: re-rendered once it is batched (and again when acked)
    await rendered((x) => x.text === 'from b!', 'local edit rendered');
    await rendered((x) => x.text === 'from b!' && x.unsaved === 0, 'local edit durable');

    db.setMeta({ name: 'Bea' });
    db.setCursor('body', 2, 4);
    const p = await rendered((x) => x.peers.some((q) => !q.self && q.meta.name === 'Bea' && q.cursor?.resolved), 'peer with cursor');
    const bea = p.peers.find((q) => !q.self);
    assert.deepEqual([bea.cursor.anchor, bea.cursor.head], [2, 4]);
    assert.ok(p.peers.some((q) => q.self), 'own entry listed');
    db.insert('body', 0, '>>'); // the cursor moves with the text
    await rendered((x) => x.peers.some((q) => !q.self && q.cursor?.anchor === 4 && q.cursor?.head === 6), 'cursor moved by an edit');

    b.close();
    await rendered((x) => x.peers.length === 1 && x.peers[0].self, 'peer gone when its client closed');
  } finally {
    r?.unmount();
    a.close();
    b.close();
  }
});

test('useDocument: changing the id joins the other document; leave leaves after the last unmount', { skip }, async () => {
  const a = await connect();
  const b = await connect();
  const { Probe, rendered } = probe();
  let r;
  try {
    const db = await b.join('react/two');
    db.insert('body', 0, 'two');
    await withDeadline(db.whenDurable(), 10_000, 'durable');
    r = TestRenderer.create(createElement(Probe, { client: a, id: 'react/one-more', opts: { leave: true } }));
    await rendered((x) => x.status === 'synced', 'first doc synced');
    r.update(createElement(Probe, { client: a, id: 'react/two', opts: { leave: true } }));
    const s = await rendered((x) => x.text === 'two', 'second doc rendered');
    // The first document had no pending edits: it was left when its user went away.
    assert.deepEqual(a.documents().map((d) => d.id), ['react/two']);
    const d2 = s.doc;
    d2.insert('body', 3, '+');
    r.unmount();
    r = null;
    // The edit made just before the unmount is not dropped: it is durable before the leave.
    await until(() => d2.status === 'closed', { docs: [d2], what: 'second doc left', ms: 10_000 });
    assert.equal(d2.unsaved, 0, 'left only once durable');
    assert.deepEqual(a.documents(), []);
    await until(() => db.text('body') === 'two+', { docs: [db], what: 'edit made before unmount arrived', describe: () => db.text('body') });
  } finally {
    r?.unmount();
    a.close();
    b.close();
  }
});

test('useDocument: no client or id is idle; a closed client shows its error', { skip }, async () => {
  const { Probe, rendered } = probe();
  const r = TestRenderer.create(createElement(Probe, { client: null, id: 'x' }));
  try {
    await rendered((x) => x.status === 'idle' && x.doc === null, 'idle');
    const c = await connect();
    c.close();
    r.update(createElement(Probe, { client: c, id: 'x' }));
    const s = await rendered((x) => x.error !== null, 'join error');
    assert.equal(s.status, 'closed');
    assert.equal(s.error.name, 'ClosedError');
  } finally {
    r.unmount();
  }
});

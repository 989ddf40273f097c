// Offline persistence (ClientOptions.persist, src/persist.ts) in Node with
// fake-indexeddb: the store itself, and a client that edits offline, is
// closed (a page reload), and whose successor shows the stored state
// offline and sends the unsent edits to a real `collabd serve` when the
// network is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { IDBFactory } from 'fake-indexeddb';
import WebSocket from 'ws';
import { Client, Doc, indexedDBPersistence } from '../dist/index.js';
import { haveGo, buildServer, startServer, until, withDeadline } from './server.mjs';

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

const update = (agent, text) => {
  const d = new Doc({ agent });
  d.text('body').insert(0, text);
  return d.takeUpdate();
};

test('indexedDBPersistence: snapshots, batches in order, removal, agents, scopes', async () => {
  const indexedDB = new IDBFactory();
  const a = indexedDBPersistence('ws://one/v1/ws', { indexedDB });
  const b = indexedDBPersistence('ws://two/v1/ws', { indexedDB });
  assert.deepEqual(await a.load('doc'), { snapshot: null, batches: [] });
  const u1 = update(0x11n, 'one');
  const u2 = update(0xffff_ffff_ffff_fff1n, 'two'); // above 2^53: agents are kept exactly
  const k1 = await a.addBatch('doc', u1);
  const k2 = await a.addBatch('doc', u2);
  await a.addBatch('other', update(0x22n, 'x'));
  await b.addBatch('doc', update(0x33n, 'y'));
  const snap = new Doc({ agent: 5n });
  snap.text('body').insert(0, 'state');
  await a.saveSnapshot('doc', snap.encodeSnapshot());

  const got = await a.load('doc');
  assert.deepEqual(got.batches.map((x) => x.key), [k1, k2], 'oldest first');
  assert.deepEqual(got.batches.map((x) => [...x.update]), [[...u1], [...u2]]);
  assert.equal(Doc.loadSnapshot(got.snapshot).text('body').toString(), 'state');
  assert.deepEqual((await a.pendingAgents()).sort((x, y) => (x < y ? -1 : 1)), [0x11n, 0x22n, 0xffff_ffff_ffff_fff1n]);
  assert.deepEqual(await b.pendingAgents(), [0x33n], 'another server URL is another scope');
  assert.equal((await b.load('doc')).snapshot, null);

  await a.removeBatches([k1]);
  assert.deepEqual((await a.load('doc')).batches.map((x) => x.key), [k2]);
  a.close();
  b.close();
  await assert.rejects(a.load('doc'), /closed/);
});

/** A `ws` WebSocket whose network can be cut: offline, it dials a dead port. */
function gatedNetwork() {
  const net = { offline: false, sockets: new Set() };
  net.WebSocket = class extends WebSocket {
    constructor(url) {
      super(net.offline ? 'ws://127.0.0.1:9/v1/ws' : url);
      net.sockets.add(this);
      this.once('close', () => net.sockets.delete(this));
    }
  };
  net.cut = () => {
    net.offline = true;
    for (const s of net.sockets) s.terminate();
  };
  return net;
}

async function serverText(id) {
  const r = await fetch(`http://${srv.addr}/v1/docs/${encodeURIComponent(id)}/text`);
  return r.status === 200 ? r.text() : `(${r.status})`;
}

test('offline edits survive a reload (a new client on the same IndexedDB) and reach the server', { skip }, async () => {
  const indexedDB = new IDBFactory();
  const net = gatedNetwork();
  const opts = { WebSocket: net.WebSocket, transport: 'websocket', persist: 'indexeddb', indexedDB, backoff: { baseMs: 5, maxMs: 50 } };

  // Page load 1: online, then offline edits.
  const c1 = new Client(srv.url, opts);
  const d1 = await withDeadline(c1.join('persist/a'), 10_000, 'first join');
  d1.insert('body', 0, 'online ');
  await withDeadline(d1.whenDurable(), 10_000, 'durable online');
  net.cut();
  await until(() => d1.status === 'offline', { docs: [d1], what: 'offline' });
  d1.insert('body', 7, 'offline edit');
  d1.delete('body', 0, 1);
  assert.equal(d1.text('body'), 'nline offline edit');
  await d1.whenStored();
  assert.equal(d1.unsaved, 1, 'the offline batch is not durable');
  c1.close(); // the page goes away

  // Page load 2, still offline: the stored state shows at once.
  const c2 = new Client(srv.url, opts);
  const d2 = await withDeadline(c2.join('persist/a'), 5_000, 'join from the store while offline');
  assert.equal(d2.text('body'), 'nline offline edit');
  assert.equal(d2.status, 'offline');
  assert.equal(d2.unsaved, 1, 'the unsent batch is queued again');
  assert.equal(await serverText('persist/a'), 'online ', 'the server has not seen the offline edit');
  d2.insert('body', 0, '>'); // more typing on the reloaded page, still offline
  await d2.whenStored();

  // Back online: the batch of page 1 (another agent, claimed again in hello) and page 2's edit are sent.
  net.offline = false;
  await withDeadline(d2.whenDurable(), 15_000, 'durable after reconnect');
  assert.equal(d2.status, 'synced');
  assert.equal(await serverText('persist/a'), '>nline offline edit');
  // Durable batches leave the store: a third page load has nothing to send.
  await d2.whenStored();
  c2.close();
  const store = indexedDBPersistence(srv.url, { indexedDB });
  const left = await store.load('persist/a');
  assert.deepEqual(left.batches, [], 'no batch left after the durable acks');
  assert.equal(Doc.loadSnapshot(left.snapshot).text('body').toString(), '>nline offline edit');
  store.close();

  // A fresh client without the store converges to the same text.
  const fresh = await Client.connect(srv.url, { WebSocket });
  try {
    const df = await fresh.join('persist/a');
    assert.equal(df.text('body'), '>nline offline edit');
  } finally {
    fresh.close();
  }
});

test('a remote edit received before going offline is shown after a reload offline', { skip }, async () => {
  const indexedDB = new IDBFactory();
  const net = gatedNetwork();
  const opts = { WebSocket: net.WebSocket, transport: 'websocket', persist: 'indexeddb', indexedDB, backoff: { baseMs: 5, maxMs: 50 } };
  const other = await Client.connect(srv.url, { WebSocket });
  const c1 = new Client(srv.url, opts);
  try {
    const d1 = await c1.join('persist/b');
    const dOther = await other.join('persist/b');
    dOther.insert('body', 0, 'from a peer');
    await until(() => d1.text('body') === 'from a peer', { docs: [d1], what: 'remote edit' });
    await d1.whenStored();
    net.cut();
    c1.close();
    const c2 = new Client(srv.url, opts);
    try {
      const d2 = await withDeadline(c2.join('persist/b'), 5_000, 'join offline');
      assert.equal(d2.text('body'), 'from a peer');
      assert.equal(d2.unsaved, 0);
    } finally {
      c2.close();
    }
  } finally {
    other.close();
    c1.close();
  }
});

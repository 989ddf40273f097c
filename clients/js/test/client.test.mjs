// The network client against a real `collabd serve` (built from this
// repository): sync, fan-out, acks, durability, presence, and convergence of
// several clients editing one document through abrupt disconnects.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, svEqual, encodeStateVector } from '../dist/index.js';
import { prng, randomEdit } from './helpers.mjs';
import { haveGo, buildServer, startServer, trackingWebSocket, until, withDeadline } from './server.mjs';

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

const fast = { baseMs: 5, maxMs: 100 };

function connect(extra = {}) {
  const ws = trackingWebSocket();
  return Client.connect(srv.url, { WebSocket: ws.WebSocket, backoff: fast, ...extra }).then((c) => Object.assign(c, { net: ws }));
}

const svHex = (d) => Buffer.from(encodeStateVector(d.stateVector())).toString('hex');

test('two clients: sync, fan-out with changes, acks applied then durable', { skip }, async () => {
  const a = await connect({ agent: 0xfedc_ba98_7654_3210n }); // above 2^53: uint64 in hello
  const b = await connect();
  try {
    assert.equal(a.transport, 'websocket');
    assert.equal(a.status, 'connected');
    assert.ok(a.session !== '');
    const da = await a.join('basic');
    assert.equal(da.status, 'synced');
    da.insert('body', 0, 'hello 😀');
    assert.equal(da.text('body'), 'hello 😀', 'applied locally at once');
    assert.equal(da.unsaved, 1, 'one batch queued');
    await withDeadline(da.whenDurable(), 10_000, 'durable');
    assert.equal(da.unsaved, 0);
    assert.equal(da.unapplied, 0);

    const db = await b.join('basic');
    assert.equal(db.text('body'), 'hello 😀', 'initial sync');
    const seen = [];
    db.on('change', (e) => seen.push(...e.changes));
    da.insert('body', 5, ',');
    da.insert('body', 0, '>'); // same microtask: one batch
    da.delete('body', 1, 1);
    assert.equal(da.unsaved, 1);
    await until(() => db.text('body') === da.text('body'), { docs: [db], what: 'fan-out', describe: () => db.text('body') });
    assert.equal(db.text('body'), '>ello, 😀');
    // the changes replayed on the old text give the new one
    let cps = [...'hello 😀'];
    for (const c of seen) cps.splice(c.pos, c.del, ...c.ins);
    assert.equal(cps.join(''), db.text('body'));
    await withDeadline(da.whenDurable(), 10_000, 'durable 2');
  } finally {
    a.close();
    b.close();
  }
});

test('broadcast messages: client to client, and from the app over HTTP', { skip }, async () => {
  const a = await connect();
  const b = await connect();
  try {
    const da = await a.join('msgs');
    const db = await b.join('msgs');
    const gotA = [];
    const gotB = [];
    da.on('message', (m) => gotA.push(m));
    db.on('message', (m) => gotB.push(m));
    assert.equal(da.sendMessage({ kind: 'cursor-ping', n: 1 }), true);
    await until(() => gotB.length === 1, { docs: [db], what: 'b gets a\'s message' });
    assert.deepEqual(gotB[0], { from: a.session, data: { kind: 'cursor-ping', n: 1 } });
    const base = srv.url.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');
    const r = await fetch(`${base}/v1/docs/msgs/messages`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(['from', 'the app']) });
    assert.equal(r.status, 202);
    await until(() => gotA.length === 1 && gotB.length === 2, { docs: [da, db], what: 'both get the app\'s message' });
    assert.deepEqual(gotA[0], { from: '', data: ['from', 'the app'] });
    assert.equal(gotA.filter((m) => m.from === a.session).length, 0, 'the sender never gets its own message');
    assert.throws(() => da.sendMessage(undefined), TypeError);
  } finally {
    a.close();
    b.close();
  }
});

test('presence: cursors resolved against the local replica, meta, gone on close', { skip }, async () => {
  const a = await connect();
  const b = await connect();
  try {
    const da = await a.join('pres');
    da.insert('t', 0, 'abc😀def');
    await da.whenDurable();
    const db = await b.join('pres');
    da.setCursorUtf16('t', 5, 5); // after the emoji: code point 4
    da.setMeta({ typing: '1' });
    const peerA = () => db.peers().find((p) => p.session === a.session);
    await until(() => peerA()?.cursor?.resolved && peerA().meta.typing === '1', { docs: [db], what: 'cursor of a', describe: () => JSON.stringify(db.peers(), (_, v) => (typeof v === 'bigint' ? `${v}` : v)) });
    assert.equal(peerA().cursor.head, 4);
    assert.equal(peerA().cursor.headUtf16, 5);
    assert.ok(db.peers().find((p) => p.self), 'own entry');
    // the caret sticks to its character while b types before it
    db.insert('t', 0, 'XY');
    assert.equal(db.peers().find((p) => p.session === a.session).cursor.head, 6);
    const sa = a.session;
    a.close();
    await until(() => !db.peers().some((p) => p.session === sa), { docs: [db], what: 'a gone' });
  } finally {
    a.close();
    b.close();
  }
});

test('offline edits and unacked batches are resent after a drop', { skip }, async () => {
  const a = await connect();
  const b = await connect();
  try {
    const da = await a.join('resend');
    const db = await b.join('resend');
    const statuses = [];
    da.on('status', (s) => statuses.push(s));
    da.insert('t', 0, 'one ');
    a.net.cut(); // before the batch is even sent, or right after
    da.insert('t', 4, 'two');
    await until(() => db.text('t') === 'one two' && da.unsaved === 0, { docs: [da, db], clients: [a], what: 'resend', describe: () => `${db.text('t')} unsaved ${da.unsaved} ${da.status}` });
    assert.ok(statuses.includes('offline'), `statuses ${statuses}`);
    assert.equal(da.status, 'synced');
  } finally {
    a.close();
    b.close();
  }
});

test('convergence: 4 clients edit at random with abrupt disconnects', { skip, timeout: 60_000 }, async () => {
  const seed = Number(process.env.SEED ?? Date.now() % 100000);
  const r = prng(seed);
  const n = 4;
  const clients = await Promise.all(Array.from({ length: n }, () => connect()));
  try {
    const docs = await Promise.all(clients.map((c) => c.join('chaos')));
    // client 0's remote changes replayed on a plain copy (its own edits applied as made)
    let copy = [];
    docs[0].on('change', (e) => {
      for (const c of e.changes) copy.splice(c.pos, c.del, ...c.ins);
    });
    const ownInsert = docs[0].insert.bind(docs[0]);
    const ownDelete = docs[0].delete.bind(docs[0]);
    docs[0].insert = (root, p, t) => (ownInsert(root, p, t), copy.splice(p, 0, ...t));
    docs[0].delete = (root, p, k) => (ownDelete(root, p, k), copy.splice(p, k));
    const steps = 800;
    let cuts = 0;
    let drops = 0;
    for (const c of clients) c.on('status', (s) => s === 'offline' && drops++);
    await new Promise((res) => {
      let step = 0;
      const tick = () => {
        for (let k = 0; k < 4 && step < steps; k++, step++) {
          const i = r.int(n);
          const d = docs[i];
          randomEdit(r, { get length() { return d.doc.text('body').length; }, insert: (p, t) => d.insert('body', p, t), delete: (p, k) => d.delete('body', p, k) });
          if (r.int(40) === 0) {
            clients[r.int(n)].net.cut();
            cuts++;
          }
          if (r.int(15) === 0) d.setCursor('body', r.int(d.doc.text('body').length + 1), r.int(d.doc.text('body').length + 1));
        }
        if (step < steps) setTimeout(tick, 2); // paces the generator
        else res();
      };
      tick();
    });
    const describe = () => docs.map((d, i) => `#${i} ${d.status} unsaved ${d.unsaved} sv ${svHex(d)}`).join('; ') + ` (seed ${seed})`;
    await until(
      () => docs.every((d) => d.status === 'synced' && d.unsaved === 0 && svEqual(d.stateVector(), docs[0].stateVector())),
      { docs, clients, ms: 30_000, what: 'quiescence', describe },
    );
    const want = docs[0].text('body');
    for (const [i, d] of docs.entries()) assert.equal(d.text('body'), want, `client ${i} (seed ${seed})`);
    assert.equal(copy.join(''), want, 'change events replayed');
    assert.ok(cuts === 0 || drops > 0, `${cuts} cuts but no client went offline`);
    console.log(`# convergence: seed ${seed}, ${cuts} cuts, ${drops} drops, ${[...want].length} code points`);
    // a fresh client gets the same text from the server
    const late = await connect();
    try {
      const dl = await late.join('chaos');
      assert.equal(dl.text('body'), want, `server copy (seed ${seed})`);
    } finally {
      late.close();
    }
  } finally {
    for (const c of clients) c.close();
  }
});

test('terminal errors: a bad document id is refused locally; a refused connection stops the client', { skip }, async () => {
  const a = await connect();
  try {
    await assert.rejects(a.join(''), RangeError);
    await assert.rejects(a.join('a\u0001b'), RangeError);
  } finally {
    a.close();
  }
  // nothing listens on port 9 of 127.0.0.1: the first attempt fails
  await assert.rejects(Client.connect('ws://127.0.0.1:9/v1/ws', { WebSocket: trackingWebSocket().WebSocket }));
});

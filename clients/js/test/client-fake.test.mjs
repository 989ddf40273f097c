// The client against a scripted server behind a fake transport: batching,
// acks, resend, backoff honouring retry-after, terminal codes, ping/pong and
// presence coalescing. No network, no sleeps: waits are on the client's
// frames with deadlines.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Doc, encodeFrame, decodeFrame, decodeUpdateOps, encodeStateVector, ServerError } from '../dist/index.js';

const EMPTY_SV = new Uint8Array([0x92, 1, 0x90]);
const limits = { maxFrame: 1 << 20, maxDocs: 64, maxOpsPerBatch: 0, maxDocBytes: 0, pingIntervalMs: 25_000, pongTimeoutMs: 10_000 };

/** A fake network: each connection attempt is a scripted server side. */
function fakeNet() {
  const conns = [];
  let waiting = [];
  const factory = (url, ev) => {
    const c = {
      name: 'fake', url, ev, frames: [], closed: null, at: Date.now(), waiters: [],
      send(b) {
        const f = decodeFrame(b);
        this.frames.push(f);
        for (const w of this.waiters.splice(0)) w();
      },
      close(code) { this.closed = code; },
      push(f) { ev.onmessage(encodeFrame(f)); },
      /** Resolves with the next frame of type (after index from) the client sends. */
      async next(type, ms = 2000) {
        const end = Date.now() + ms;
        for (;;) {
          const i = this.frames.findIndex((f) => f.type === type && !f.seen);
          if (i >= 0) {
            this.frames[i].seen = true;
            return this.frames[i];
          }
          if (Date.now() > end) throw new Error(`no frame of type ${type}; got ${JSON.stringify(this.frames.map((f) => f.type))}`);
          await new Promise((res) => {
            const t = setTimeout(res, Math.max(0, end - Date.now()) + 1);
            this.waiters.push(() => { clearTimeout(t); res(); });
          });
        }
      },
      /** Opens the connection and welcomes the client. */
      async welcome(l = limits) {
        ev.onopen();
        const h = await this.next(1);
        this.push({ type: 2, version: 1, session: `s${conns.indexOf(this)}`, limits: l });
        return h;
      },
      /** Answers a join with one final sync chunk (of update u). */
      async sync(doc, u = new Doc({ agent: 77n }).encodeDiff(null), sv = EMPTY_SV) {
        const j = await this.next(3);
        assert.equal(j.doc, doc);
        this.push({ type: 4, doc, chunk: 0, final: true, update: u, sv });
        return j;
      },
    };
    conns.push(c);
    for (const w of waiting.splice(0)) w();
    return c;
  };
  return {
    factory, conns,
    /** Resolves with connection number i once the client opens it. */
    async conn(i, ms = 3000) {
      const end = Date.now() + ms;
      while (conns.length <= i) {
        if (Date.now() > end) throw new Error(`no connection ${i}`);
        await new Promise((res) => {
          const t = setTimeout(res, Math.max(0, end - Date.now()) + 1);
          waiting.push(() => { clearTimeout(t); res(); });
        });
      }
      return conns[i];
    },
  };
}

const open = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close(); // also after a failure: no timers left behind
});

async function setup(opts = {}) {
  const net = fakeNet();
  const p = Client.connect('ws://fake/v1/ws', { transport: net.factory, backoff: { baseMs: 1, maxMs: 5 }, random: () => 1, ...opts });
  const c0 = await net.conn(0);
  const hello = await c0.welcome(opts.limits);
  const client = await p;
  open.push(client);
  return { net, c0, hello, client };
}

test('hello claims the agent (uint64 above 2^53); transport name exposed', async () => {
  const { hello, client } = await setup({ agent: 0xffff_ffff_ffff_fff1n, token: 'tok' });
  assert.deepEqual(hello.agents, [0xffff_ffff_ffff_fff1n]);
  assert.equal(hello.token, 'tok');
  assert.equal(client.transport, 'fake');
  client.close();
  assert.equal(client.transport, null);
  assert.equal(client.status, 'closed');
});

test('edits of one tick go in one batch; max_ops_per_batch splits; acks count down; whenDurable', async () => {
  const { c0, client } = await setup({ limits: { ...limits, maxOpsPerBatch: 2 } });
  const dp = client.join('d');
  await c0.sync('d');
  const d = await dp;
  d.insert('t', 0, 'ab');
  d.insert('t', 2, 'cd'); // merges with the previous run
  assert.equal(d.unsaved, 1);
  const u1 = await c0.next(5);
  assert.equal(decodeUpdateOps(u1.update).length, 1, 'one op: the inserts merged');
  d.insert('t', 0, 'x');
  d.insert('t', 3, 'y');
  d.insert('t', 5, 'z');
  d.delete('t', 1, 1);
  const u2 = await c0.next(5);
  const u3 = await c0.next(5);
  assert.equal(decodeUpdateOps(u2.update).length, 2);
  assert.equal(decodeUpdateOps(u3.update).length, 2);
  assert.equal(d.unsaved, 3);
  assert.equal(d.unapplied, 3);
  let durable = false;
  const w = d.whenDurable().then(() => (durable = true));
  for (const u of [u1, u2, u3]) c0.push({ type: 6, doc: 'd', batch: u.batch, status: 1, applied: 1, durable: 0 });
  assert.equal(d.unapplied, 0);
  assert.equal(d.unsaved, 3);
  c0.push({ type: 6, doc: 'd', batch: u2.batch, status: 2, applied: 1, durable: 1 });
  assert.equal(d.unsaved, 3, 'durable counts in order: batch 1 is not durable yet');
  c0.push({ type: 6, doc: 'd', batch: u1.batch, status: 2, applied: 1, durable: 1 });
  assert.equal(d.unsaved, 1);
  c0.push({ type: 6, doc: 'd', batch: u3.batch, status: 2, applied: 1, durable: 1 });
  await w;
  assert.ok(durable);
  assert.equal(d.unsaved, 0);
  client.close();
});

test('pings are answered with the same nonce (uint64 above 2^53)', async () => {
  const { c0, client } = await setup();
  c0.push({ type: 9, nonce: 0xffff_ffff_ffff_fffen });
  const p = await c0.next(10);
  assert.equal(p.nonce, 0xffff_ffff_ffff_fffen);
  client.close();
});

test('reconnect never sooner than retry-after; rejoin with the state vector, unacked batches resent', async () => {
  const { net, c0, client } = await setup();
  const dp = client.join('d');
  await c0.sync('d');
  const d = await dp;
  d.insert('t', 0, 'hello');
  const u = await c0.next(5);
  c0.push({ type: 6, doc: 'd', batch: u.batch, status: 1, applied: 5, durable: 0 }); // applied, not durable
  const statuses = [];
  d.on('status', (s) => statuses.push(s));
  const t0 = Date.now();
  c0.push({ type: 8, code: 4001, doc: '', batch: 0, message: 'going away', retryAfterMs: 150 });
  c0.ev.onclose(4001, 'going away');
  assert.equal(client.status, 'offline');
  assert.equal(d.status, 'offline');
  const c1 = await net.conn(1);
  assert.ok(c1.at - t0 >= 150, `reconnected after ${c1.at - t0} ms, hint 150`);
  d.insert('t', 5, '!'); // offline edit
  await c1.welcome();
  const j = await c1.next(3);
  assert.deepEqual([...j.sv], [...encodeStateVector(d.stateVector())]);
  c1.push({ type: 4, doc: 'd', chunk: 0, final: true, update: new Doc({ agent: 9n }).encodeDiff(null), sv: EMPTY_SV });
  const r1 = await c1.next(5);
  const r2 = await c1.next(5);
  assert.deepEqual([...r1.update], [...u.update], 'the unacked batch, resent as is');
  const b = new Doc({ agent: 5n });
  b.applyUpdate(r1.update);
  b.applyUpdate(r2.update);
  assert.equal(b.text('t').toString(), 'hello!');
  assert.deepEqual(statuses, ['offline', 'connecting', 'syncing', 'synced'].filter((s) => statuses.includes(s)));
  assert.equal(d.status, 'synced');
  client.close();
});

test('a terminal close stops the client; a document terminal error ends that document only', async () => {
  const { c0, client } = await setup();
  const p1 = client.join('one');
  await c0.sync('one');
  const p2 = client.join('two');
  await c0.sync('two');
  const [one, two] = await Promise.all([p1, p2]);
  one.insert('t', 0, 'x');
  const errs = [];
  one.on('error', (e) => errs.push(e));
  const w = one.whenDurable();
  c0.push({ type: 8, code: 4511, doc: 'one', batch: 0, message: 'deleted', retryAfterMs: 0 });
  await assert.rejects(w, (e) => e instanceof ServerError && e.code === 4511);
  assert.equal(one.status, 'closed');
  assert.equal(errs.length, 1);
  assert.throws(() => one.insert('t', 0, 'y'));
  assert.equal(two.status, 'synced');
  assert.equal(client.status, 'connected');

  const cerr = [];
  client.on('error', (e) => cerr.push(e));
  c0.push({ type: 8, code: 4501, doc: '', batch: 0, message: 'unauthorized', retryAfterMs: 0 });
  c0.ev.onclose(4501, 'unauthorized');
  assert.equal(client.status, 'closed');
  assert.equal(cerr[0]?.code, 4501);
  assert.equal(two.status, 'closed');
  await assert.rejects(client.join('three'), (e) => e.code === 4501);
});

test('a join refused for the join rate (4003, batch 0) is retried, not taken for a presence limit', async () => {
  const { c0, client } = await setup();
  const p = client.join('busy');
  const j1 = await c0.next(3);
  assert.equal(j1.doc, 'busy');
  c0.push({ type: 8, code: 4003, doc: 'busy', batch: 0, message: 'join rate exceeded', retryAfterMs: 1 });
  await c0.sync('busy'); // the retried join
  const d = await p;
  assert.equal(d.status, 'synced');
});

test('presence: sends coalesced to ~30 Hz, latest state wins; resent after a rejoin', async () => {
  const { net, c0, client } = await setup();
  const dp = client.join('d');
  await c0.sync('d');
  const d = await dp;
  d.insert('t', 0, 'abcdef');
  for (let i = 0; i <= 6; i++) d.setCursor('t', i, i);
  d.setMeta({ k: 'v' });
  // the join counted as a send: the burst goes out once, at the end of the interval
  const first = await c0.next(32);
  assert.equal(c0.frames.filter((f) => f.type === 32).length, 1, 'one send for eight changes');
  assert.deepEqual({ ...first.meta }, { k: 'v' });
  const caret6 = [...first.head];
  d.setCursor('t', 2, 2);
  d.setCursor('t', 3, 3);
  const second = await c0.next(32);
  assert.ok(second.seen && c0.frames.filter((f) => f.type === 32).length === 2);
  assert.notDeepEqual([...second.head], caret6);
  const tail = second;
  c0.ev.onclose(1006, '');
  const c1 = await net.conn(1);
  await c1.welcome();
  await c1.sync('d');
  const again = await c1.next(32);
  assert.deepEqual([...again.head], [...tail.head]);
  assert.deepEqual({ ...again.meta }, { k: 'v' });
  client.close();
});

test('own ops the server lost (all acked durable) are sent again after a rejoin', async () => {
  const { net, c0, client } = await setup({ agent: 42n });
  const dp = client.join('d');
  await c0.sync('d');
  const d = await dp;
  d.insert('t', 0, 'kept');
  const u = await c0.next(5);
  c0.push({ type: 6, doc: 'd', batch: u.batch, status: 2, applied: 4, durable: 4 });
  assert.equal(d.unsaved, 0);
  c0.ev.onclose(1012, 'restart');
  const c1 = await net.conn(1);
  await c1.welcome();
  await c1.sync('d'); // the server's state vector is empty: restored from an old backup
  const again = await c1.next(5);
  const b = new Doc({ agent: 5n });
  b.applyUpdate(again.update);
  assert.equal(b.text('t').toString(), 'kept');
  assert.equal(d.unsaved, 1);
});

test('a cold join asks for the snapshot; its pieces load lazily into the document; a later update builds it', async () => {
  const { c0, client } = await setup();
  const src = new Doc({ agent: 7n });
  src.text('t').insert(0, 'hello wörld 👍');
  src.text('notes').insert(0, 'n');
  src.text('t').delete(0, 1);
  const snap = src.encodeSnapshot();
  const dp = client.join('d');
  const j = await c0.next(3);
  assert.equal(j.snapshot, true, 'a replica with nothing asks for the snapshot');
  const half = Math.floor(snap.length / 2);
  c0.push({ type: 4, doc: 'd', chunk: 0, final: false, update: snap.subarray(0, half), sv: null, snapshot: true });
  c0.push({ type: 4, doc: 'd', chunk: 1, final: true, update: snap.subarray(half), sv: encodeStateVector(src.stateVector()), snapshot: true });
  const d = await dp;
  assert.equal(d.text('t'), 'ello wörld 👍');
  assert.equal(d.text('notes'), 'n');
  assert.notEqual(d.doc.lazy, null, 'the structure is built on first use, not at the join');
  const changes = [];
  d.on('change', (e) => changes.push(...e.changes));
  const other = Doc.loadSnapshot(snap, { agent: 8n });
  other.text('t').insert(4, '!');
  c0.push({ type: 5, doc: 'd', batch: 0, update: other.takeUpdate() });
  assert.equal(d.text('t'), 'ello! wörld 👍');
  assert.equal(d.doc.lazy, null);
  assert.deepEqual(changes, [{ root: 't', pos: 4, del: 0, ins: '!' }]);
  d.insert('t', 0, 'H');
  const u = await c0.next(5);
  other.applyUpdate(u.update);
  assert.equal(other.text('t').toString(), 'Hello! wörld 👍');
  client.close();
});

test('a snapshot that does not load restarts the join', async () => {
  const { c0, client } = await setup();
  client.join('d').catch(() => {});
  const j = await c0.next(3);
  assert.equal(j.snapshot, true);
  c0.push({ type: 4, doc: 'd', chunk: 0, final: true, update: new Uint8Array([0x94, 1, 0, 5, 0xc4, 1, 0]), sv: EMPTY_SV, snapshot: true });
  const again = await c0.next(3); // a bad snapshot: leave and rejoin after backoff
  assert.equal(again.snapshot, true);
  client.close();
});

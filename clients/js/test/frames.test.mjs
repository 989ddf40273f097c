// Frames, backoff, batching and the observer: units without a server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeFrame, decodeFrame, FrameError, backoffDelay, isRetryCode, splitUpdate, decodeUpdateOps, Doc,
} from '../dist/index.js';
import { prng, randomEdit } from './helpers.mjs';

const hex = (b) => Buffer.from(b).toString('hex');
const bytes = (...xs) => new Uint8Array(xs.flatMap((x) => (typeof x === 'string' ? [...x].map((c) => c.charCodeAt(0)) : [x])));

// The frames of protocol/message_test.go TestGolden, byte for byte.
const golden = [
  [{ type: 9, nonce: 300 }, bytes(0x92, 9, 0xcd, 0x01, 0x2c)],
  [{ type: 7, doc: 'ab' }, bytes(0x92, 7, 0xa2, 'a', 'b')],
  [{ type: 1, version: 1, token: 't', agents: [5n], client: '' }, bytes(0x95, 1, 1, 0xa1, 't', 0x91, 5, 0xa0)],
  [{ type: 3, doc: 'd', sv: bytes(0x92, 1, 0x90), readOnly: false }, bytes(0x94, 3, 0xa1, 'd', 0xc4, 3, 0x92, 1, 0x90, 0xc2)],
  [{ type: 4, doc: 'd', chunk: 0, final: false, update: bytes(1), sv: null }, bytes(0x96, 4, 0xa1, 'd', 0, 0xc2, 0xc4, 1, 1, 0xc0)],
  [{ type: 3, doc: 'd', sv: bytes(0x92, 1, 0x90), readOnly: false, snapshot: true }, bytes(0x95, 3, 0xa1, 'd', 0xc4, 3, 0x92, 1, 0x90, 0xc2, 0xc3)],
  [{ type: 4, doc: 'd', chunk: 0, final: false, update: bytes(1), sv: null, snapshot: true }, bytes(0x97, 4, 0xa1, 'd', 0, 0xc2, 0xc4, 1, 1, 0xc0, 0xc3)],
  [{ type: 5, doc: 'd', batch: 2, update: bytes(1) }, bytes(0x94, 5, 0xa1, 'd', 2, 0xc4, 1, 1)],
  [{ type: 6, doc: 'd', batch: 2, status: 2, applied: 5, durable: 5 }, bytes(0x96, 6, 0xa1, 'd', 2, 2, 5, 5)],
  [{ type: 8, code: 4008, doc: '', batch: 0, message: '', retryAfterMs: 100 }, bytes(0x96, 8, 0xcd, 0x0f, 0xa8, 0xa0, 0, 0xa0, 100)],
  [{ type: 32, doc: 'd', root: 'r', anchor: bytes(1), head: bytes(2), meta: { k: 'v' } },
    bytes(0x96, 32, 0xa1, 'd', 0xa1, 'r', 0xc4, 1, 1, 0xc4, 1, 2, 0x81, 0xa1, 'k', 0xa1, 'v')],
  [{ type: 33, doc: 'd', full: false, peers: [{ session: 's', userId: '', name: 'N', color: '', readOnly: false, root: '', anchor: bytes(), head: bytes(), meta: null }], moved: [], gone: ['g'] },
    bytes(0x96, 33, 0xa1, 'd', 0xc2, 0x91, 0x99, 0xa1, 's', 0xa0, 0xa1, 'N', 0xa0, 0xc2, 0xa0, 0xc4, 0, 0xc4, 0, 0xc0, 0x90, 0x91, 0xa1, 'g')],
  [{ type: 33, doc: 'd', full: false, peers: [], moved: [{ session: 's', root: 'r', anchor: bytes(7), head: bytes(), meta: null }], gone: [] },
    bytes(0x96, 33, 0xa1, 'd', 0xc2, 0x90, 0x91, 0x95, 0xa1, 's', 0xa1, 'r', 0xc4, 1, 7, 0xc4, 0, 0xc0, 0x90)],
  [{ type: 2, version: 1, session: 's', limits: { maxFrame: 0, maxDocs: 1, maxOpsPerBatch: 0, maxDocBytes: 0, pingIntervalMs: -5, pongTimeoutMs: 0 } },
    bytes(0x94, 2, 1, 0xa1, 's', 0x96, 0, 1, 0, 0, 0, 0)],
];

test('frames encode byte-identical with Go (protocol TestGolden) and decode back', () => {
  for (const [f, want] of golden) {
    assert.equal(hex(encodeFrame(f)), hex(want), `encode ${JSON.stringify(f, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
    const back = decodeFrame(want);
    assert.equal(hex(encodeFrame(back)), hex(want), `re-encode type ${f.type}`);
  }
  // PROTOCOL.md's examples
  assert.equal(hex(encodeFrame({ type: 9, nonce: 300 })), '9209cd012c');
  assert.equal(hex(encodeFrame({ type: 7, doc: 'ab' })), '9207a26162');
});

test('uint64 fields above 2^53 round-trip exactly; smallest encodings', () => {
  for (const [v, enc] of [
    [0xffff_ffff_ffff_ffffn, 'cfffffffffffffffff'],
    [(1n << 53n) + 1n, 'cf0020000000000001'],
    [0x1_0000_0000n, 'cf0000000100000000'],
    [0xffff_ffffn, 'ceffffffff'],
    [2 ** 40, 'cf0000010000000000'],
    [200, 'ccc8'],
  ]) {
    const b = encodeFrame({ type: 10, nonce: v });
    assert.equal(hex(b), '920a' + enc, `nonce ${v}`);
    const back = decodeFrame(b);
    assert.equal(BigInt(back.nonce), BigInt(v));
    const h = encodeFrame({ type: 1, version: 1, token: '', agents: [v], client: 'x' });
    assert.equal(BigInt(decodeFrame(h).agents[0]), BigInt(v));
  }
  // readers accept non-minimal encodings: cf 00..05 is 5
  assert.equal(decodeFrame(bytes(0x92, 9, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5)).nonce, 5);
  assert.throws(() => encodeFrame({ type: 9, nonce: -1 }), RangeError);
  assert.throws(() => encodeFrame({ type: 9, nonce: 1n << 64n }), RangeError);
});

test('decodeFrame refuses malformed frames', () => {
  const bad = [
    bytes(0x92, 9, 0xcd, 0x01, 0x2c, 0x00), // bytes after the array
    bytes(0x93, 9, 1, 2), // wrong count
    bytes(0x92, 12, 1), // unknown type
    bytes(0x92, 0, 1), // type 0
    bytes(0x91), // truncated
    bytes(0x92, 7, 5), // doc not a string
    bytes(0x96, 4, 0xa1, 'd', 0, 0xc2, 0xa1, 'x', 0xc0), // update not bin
    bytes(0x81, 0xa1, 'k', 0xa1, 'v'), // not an array
    bytes(0x92, 9, 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // negative
    bytes(0x95, 1, 2, 0xa0, 0x90, 0xa0), // hello of another version
  ];
  for (const b of bad) assert.throws(() => decodeFrame(b), FrameError, hex(b));
});

// Update frames take a direct path in decodeFrame (every fanned-out update
// is one); it must give what the general path gives, and refuse what it
// refuses.
test('update frames: every shape round-trips; truncated and malformed ones are refused', () => {
  const big = new Uint8Array(70_000).map((_, i) => i & 0xff);
  for (const doc of ['', 'd', 'fanout-1733520000000', 'x'.repeat(256), 'dök', '\u4e01']) {
    for (const batch of [0, 1, 127, 128, 0xffff_ffff, 2 ** 40, (1n << 53n) + 1n, 0xffff_ffff_ffff_ffffn]) {
      for (const update of [bytes(), bytes(0x94, 1, 0x90), big.subarray(0, 300), big]) {
        const b = encodeFrame({ type: 5, doc, batch, update });
        const f = decodeFrame(b);
        assert.equal(f.type, 5);
        assert.equal(f.doc, doc);
        assert.equal(typeof f.batch, typeof batch === 'bigint' && batch > BigInt(Number.MAX_SAFE_INTEGER) ? 'bigint' : 'number', `batch ${batch}`);
        assert.equal(BigInt(f.batch), BigInt(batch));
        assert.equal(hex(f.update), hex(update));
        assert.equal(Object.keys(f).join(), 'type,doc,batch,update');
      }
    }
  }
  // non-minimal encodings are read too: str8 doc, uint64 batch, bin16 update
  const f = decodeFrame(bytes(0x94, 5, 0xd9, 1, 'd', 0xcf, 0, 0, 0, 0, 0, 0, 0, 7, 0xc5, 0, 1, 9));
  assert.deepEqual([f.doc, f.batch, hex(f.update)], ['d', 7, '09']);
  const ok = encodeFrame({ type: 5, doc: 'doc', batch: 300, update: bytes(1, 2, 3) });
  for (let n = 0; n < ok.length; n++) assert.throws(() => decodeFrame(ok.subarray(0, n)), FrameError, `truncated to ${n}`);
  for (const b of [
    bytes(...ok, 0), // trailing byte
    bytes(0x94, 5, 0xa1, 'd', 0, 0xa1, 'x'), // update not bin
    bytes(0x94, 5, 7, 0, 0xc4, 0), // doc not a string
    bytes(0x94, 5, 0xa1, 'd', 0xff, 0xc4, 0), // negative batch
    bytes(0x94, 5, 0xa1, 'd', 0xcb, 0x40, 4, 0, 0, 0, 0, 0, 0, 0xc4, 0), // batch 2.5
    bytes(0x95, 5, 0xa1, 'd', 0, 0xc4, 0, 0), // five elements
  ]) assert.throws(() => decodeFrame(b), FrameError, hex(b));
});

test('backoff: full jitter, capped, never below the hint', () => {
  assert.equal(backoffDelay(0, 0, 0), 0);
  assert.equal(backoffDelay(0, 0, 0.5), 125);
  assert.equal(backoffDelay(3, 0, 1), 2000);
  assert.equal(backoffDelay(20, 0, 1), 30_000);
  assert.equal(backoffDelay(1000, 0, 1), 30_000);
  assert.equal(backoffDelay(2, 700, 0), 700);
  assert.equal(backoffDelay(2, 700, 0.5), 700 + 500);
  assert.equal(backoffDelay(4, 0, 1, { baseMs: 2, maxMs: 50 }), 32);
  assert.equal(backoffDelay(10, 0, 1, { baseMs: 2, maxMs: 50 }), 50);
  const r = prng(7);
  for (let i = 0; i < 1000; i++) {
    const a = r.int(30);
    const hint = r.int(5000);
    const d = backoffDelay(a, hint, r.next());
    assert.ok(d >= hint && d <= hint + Math.min(30_000, 250 * 2 ** a), `attempt ${a} hint ${hint}: ${d}`);
  }
});

test('retry codes by range', () => {
  for (const c of [4001, 4011, 4499, 1001, 1005, 1006, 1011, 1014]) assert.ok(isRetryCode(c), `${c}`);
  for (const c of [4500, 4516, 4999, 1000, 1002, 1008, 1009, 3000]) assert.ok(!isRetryCode(c), `${c}`);
});

test('splitUpdate: pieces within the op and byte limits apply to the same text', () => {
  const r = prng(11);
  const a = new Doc({ agent: 0x1_0000_0000_0001n });
  const t = a.text('body');
  for (let i = 0; i < 400; i++) randomEdit(r, t, i % 7 === 0 ? 'longer text 😀 here' : undefined);
  t.insert(0, 'x'.repeat(3000) + '😀'.repeat(500));
  const u = a.takeUpdate();
  for (const [maxOps, maxBytes] of [[0, 1 << 20], [10, 1 << 20], [1, 1 << 20], [0, 1000], [7, 700]]) {
    const parts = splitUpdate(u, maxOps, maxBytes);
    const b = new Doc({ agent: 2n });
    for (const p of parts) {
      if (maxOps > 0) assert.ok(decodeUpdateOps(p).length <= maxOps, `ops per piece <= ${maxOps}`);
      assert.ok(p.length <= maxBytes, `piece of ${p.length} bytes > ${maxBytes}`);
      b.applyUpdate(p);
      assert.equal(b.pendingCount, 0, 'each piece applies without waiting');
    }
    assert.equal(b.text('body').toString(), t.toString(), `maxOps ${maxOps} maxBytes ${maxBytes}`);
    if (maxOps === 0 && maxBytes === 1 << 20) assert.equal(parts.length, 1);
  }
});

test('observe: local and remote changes replayed on a plain copy give the text', () => {
  const r = prng(5);
  const docs = [new Doc({ agent: 1n }), new Doc({ agent: 2n }), new Doc({ agent: 3n })];
  const copies = docs.map(() => ({ body: '' }));
  docs.forEach((d, i) =>
    d.observe((c) => {
      const cps = [...copies[i][c.root] ?? ''];
      assert.ok(c.del === 0 || c.ins === '', 'a change has del or ins');
      cps.splice(c.pos, c.del, ...[...c.ins]);
      copies[i][c.root] = cps.join('');
    }),
  );
  const ups = [];
  for (let step = 0; step < 300; step++) {
    const i = r.int(3);
    randomEdit(r, docs[i].text('body'));
    const u = docs[i].takeUpdate();
    if (u) ups.push(u);
    if (r.int(5) === 0) {
      // deliver a random subset out of order (pending buffer releases included)
      const j = r.int(3);
      for (const x of r.shuffle(ups.slice())) docs[j].applyUpdate(x);
    }
  }
  for (const d of docs) for (const x of ups) d.applyUpdate(x);
  docs.forEach((d, i) => {
    assert.equal(copies[i].body, d.text('body').toString(), `replica ${i}`);
    assert.equal(d.text('body').toString(), docs[0].text('body').toString());
  });
});

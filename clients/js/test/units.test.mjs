// Units: UTF-16 helpers, hostile input, limits and the LZ4 codec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Doc, DecodeError, CrdtError, AssocAfter, AssocBefore, codePointToUtf16, utf16ToCodePoint, codePointLength,
  encodeRelPos, decodeRelPos, decodeStateVector, encodeStateVector, lz4Compress, lz4Decompress, decodeUpdateOps, encodeOps, utf8CodePoints,
} from '../dist/index.js';
import { prng, randomEdit } from './helpers.mjs';

test('UTF-16 offsets <-> code points never split a surrogate pair', () => {
  const s = 'a😀b👍🏽c';
  assert.equal(codePointLength(s), 6);
  const cases = [[0, 0], [1, 1], [2, 1], [3, 2], [4, 3], [5, 3], [6, 4], [7, 4], [8, 5], [9, 6]];
  for (const [u, cp] of cases) assert.equal(utf16ToCodePoint(s, u), cp, `utf16ToCodePoint(${u})`);
  for (const [cp, u] of [[0, 0], [1, 1], [2, 3], [3, 4], [4, 6], [5, 8], [6, 9]]) {
    assert.equal(codePointToUtf16(s, cp), u, `codePointToUtf16(${cp})`);
  }
  assert.throws(() => codePointToUtf16(s, 7), RangeError);
  const d = new Doc({ agent: 1n });
  d.text('t').insert(0, s);
  assert.equal(d.text('t').length, 6);
  d.text('t').delete(utf16ToCodePoint(s, 1), 1); // the 😀
  assert.equal(d.text('t').toString(), 'ab👍🏽c');
  assert.throws(() => d.text('t').insert(0, '\ud800'), (e) => e instanceof CrdtError && e.code === 'invalid-text');
});

test('positions out of range are refused', () => {
  const x = new Doc({ agent: 1n }).text('t');
  x.insert(0, 'abc');
  for (const f of [() => x.insert(4, 'x'), () => x.insert(-1, 'x'), () => x.delete(2, 2), () => x.relPos(4)]) {
    assert.throws(f, (e) => e instanceof CrdtError && e.code === 'position');
  }
});

test('relative positions round-trip and follow edits', () => {
  const d = new Doc({ agent: 0xffffffffffffffffn });
  const x = d.text('t');
  x.insert(0, 'hello');
  const after = decodeRelPos(encodeRelPos(x.relPos(2, AssocAfter)));
  const before = decodeRelPos(encodeRelPos(x.relPos(2, AssocBefore)));
  assert.equal(after.item.agent, 0xffffffffffffffffn);
  x.insert(2, 'XY');
  assert.equal(x.resolve(after), 4);
  assert.equal(x.resolve(before), 2);
  x.delete(0, 5);
  assert.equal(x.resolve(after), 0);
  assert.equal(x.resolve({ item: { agent: 42n, seq: 0 }, assoc: AssocAfter }), undefined);
});

test('every truncation and byte flip of an update is rejected whole or applied, never a crash', () => {
  const a = new Doc({ agent: 3n });
  const r = prng(9);
  for (let k = 0; k < 30; k++) randomEdit(r, a.text('t'));
  const u = a.encodeDiff();
  for (let n = 0; n < u.length; n++) {
    const d = new Doc({ agent: 4n });
    assert.throws(() => d.applyUpdate(u.subarray(0, n)), DecodeError, `prefix ${n}`);
    assert.equal(d.version, 0);
  }
  for (let k = 0; k < 2000; k++) {
    const b = u.slice();
    b[r.int(b.length)] ^= 1 << r.int(8);
    const d = new Doc({ agent: 4n });
    try {
      d.applyUpdate(b);
    } catch (e) {
      assert.ok(e instanceof DecodeError || e instanceof CrdtError, `flip ${k}: ${e}`);
      assert.equal(d.version, 0, `flip ${k}: rejected update changed the doc`);
    }
  }
});

test('hostile snapshots are rejected with DecodeError', () => {
  const a = new Doc({ agent: 3n });
  const r = prng(5);
  for (let k = 0; k < 200; k++) randomEdit(r, a.text('t'));
  for (const c of ['fast', 'small']) {
    const s = a.encodeSnapshot(c);
    assert.ok(s[2] !== 0, `${c} snapshot is compressed`);
    for (let n = 0; n < s.length; n += 7) assert.throws(() => Doc.loadSnapshot(s.subarray(0, n)), DecodeError);
    for (let k = 0; k < 300; k++) {
      const b = s.slice();
      b[r.int(b.length)] ^= 1 << r.int(8);
      try {
        Doc.loadSnapshot(b);
      } catch (e) {
        assert.ok(e instanceof DecodeError, `${c} flip ${k}: ${e}`);
      }
    }
  }
});

test('the pending buffer is bounded; overflow rejects the update whole', () => {
  const a = new Doc({ agent: 1n });
  const ups = [];
  for (let k = 0; k < 4; k++) {
    a.text('t').insert(k, 'x');
    ups.push(a.takeUpdate());
  }
  const b = new Doc({ agent: 2n, limits: { maxPending: 2 } });
  b.applyUpdate(ups[3]);
  b.applyUpdate(ups[2]);
  assert.equal(b.pendingCount, 2);
  assert.throws(() => b.applyUpdate(ups[1]), (e) => e instanceof CrdtError && e.code === 'pending-full');
  assert.equal(b.pendingCount, 2);
  b.applyUpdate(ups[0]);
  b.applyUpdate(ups[1]);
  assert.equal(b.pendingCount, 0);
  assert.equal(b.text('t').toString(), 'xxxx');
  b.applyUpdate(ups[1]); // duplicate: no-op
  assert.equal(b.version, 4);
});

test('state vectors encode agents in ascending order and drop zero entries', () => {
  const sv = new Map([[0xfedcba9876543210n, 3], [7n, 1]]);
  const b = encodeStateVector(sv);
  assert.equal(Buffer.from(b).toString('hex'), '920194070 1cffedcba987654321003'.replace(' ', ''));
  assert.deepEqual(decodeStateVector(b), sv);
  assert.throws(() => decodeStateVector(b.subarray(0, b.length - 1)), DecodeError);
});

test('decodeUpdateOps and encodeOps round-trip', () => {
  const a = new Doc({ agent: 12n });
  a.text('t').insert(0, 'héllo😀');
  a.text('t').delete(1, 2);
  const u = a.takeUpdate();
  assert.deepEqual(encodeOps(decodeUpdateOps(u)), u);
});

test('LZ4 blocks round-trip, including long matches and incompressible data', () => {
  const r = prng(3);
  const inputs = [new Uint8Array(0), new Uint8Array(5).fill(1), new Uint8Array(100000).fill(7)];
  const rnd = new Uint8Array(5000);
  for (let i = 0; i < rnd.length; i++) rnd[i] = r.int(256);
  inputs.push(rnd, new TextEncoder().encode('abcabcabd'.repeat(500)));
  for (const x of inputs) {
    const z = lz4Compress(x);
    assert.deepEqual(lz4Decompress(z, x.length), x);
    assert.equal(lz4Decompress(z, x.length + 1), null);
  }
  assert.ok(lz4Compress(inputs[2]).length < 1000);
  assert.equal(lz4Decompress(Uint8Array.of(0x1f, 1, 0, 0), 30), null); // offset beyond output
});

test('an insert whose origins skip an item of its causal past is refused whole', () => {
  const a = new Doc({ agent: 1n });
  a.text('t').insert(0, 'abc');
  const b = new Doc({ agent: 2n });
  b.applyUpdate(a.takeUpdate());
  const forge = (left, right) => encodeOps([{ kind: 'insert', root: 't', id: { agent: 3n, seq: 0 }, len: 1, text: 'X', left, right }]);
  const none = { agent: 0n, seq: 0 };
  // right origin 'c' (1:2) with 'a' and 'b' (1:0, 1:1: seqs are dense) between the origins
  assert.throws(() => b.applyUpdate(forge(none, { agent: 1n, seq: 2 })), (e) => e instanceof CrdtError && e.code === 'invalid-op');
  // left and right origin the same item
  assert.throws(() => b.applyUpdate(forge({ agent: 1n, seq: 1 }, { agent: 1n, seq: 1 })), (e) => e instanceof CrdtError && e.code === 'invalid-op');
  assert.equal(b.text('t').toString(), 'abc');
  assert.equal(b.version, 3);
  b.applyUpdate(forge({ agent: 1n, seq: 1 }, { agent: 1n, seq: 2 })); // adjacent: fine
  assert.equal(b.text('t').toString(), 'abXc');
});

test('utf8CodePoints accepts exactly what a fatal TextDecoder accepts, with the same code points', () => {
  const td = new TextDecoder('utf-8', { fatal: true });
  const rnd = prng(7).next;
  const samples = [
    [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf0, 0x9f, 0x98], [0x80],
    [...new TextEncoder().encode('aé😀€𝄞')],
  ];
  for (let k = 0; k < 20000; k++) {
    const n = Math.floor(rnd() * 6);
    const b = [];
    for (let i = 0; i < n; i++) b.push(rnd() < 0.5 ? Math.floor(rnd() * 256) : [0x61, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80][Math.floor(rnd() * 10)]);
    samples.push(b);
  }
  for (const b of samples) {
    const bytes = new Uint8Array(b);
    let want = null;
    try {
      want = [...td.decode(bytes)].map((c) => c.codePointAt(0));
    } catch {}
    assert.deepEqual(utf8CodePoints(bytes), want, `bytes ${b.map((x) => x.toString(16)).join(' ')}`);
  }
});

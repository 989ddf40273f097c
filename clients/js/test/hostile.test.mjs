// Hostile input (issue 11): overflow-safe range checks and snapshot bodies
// whose header lies about their size (decompression bombs), as in Go's
// crdt/limits_test.go and crdt/bomb_test.go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { Doc, DecodeError, CrdtError, inRange, lz4Compress, lz4Decompress, lz4DecompressedLength } from '../dist/index.js';

test('inRange never adds pos + n', () => {
  const cases = [
    [0, 0, 0, true], [0, 5, 5, true], [5, 0, 5, true], [2, 3, 5, true], [2, 4, 5, false], [6, 0, 5, false],
    [-1, 1, 5, false], [1, -1, 5, false], [Number.MAX_SAFE_INTEGER, 1, 5, false], [1, Number.MAX_SAFE_INTEGER, 5, false],
    [2 ** 53, 0, 2 ** 53, false], [2 ** 63, 1, 5, false], [Infinity, 0, 5, false], [NaN, 0, 5, false], [0.5, 1, 5, false],
    [Number.MAX_SAFE_INTEGER, 0, Number.MAX_SAFE_INTEGER, true], [1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, false],
  ];
  for (const [pos, n, size, want] of cases) assert.equal(inRange(pos, n, size), want, `inRange(${pos}, ${n}, ${size})`);
});

test('delete and insert at huge or negative positions throw a position error and change nothing', () => {
  const huge = [2 ** 63, Number.MAX_SAFE_INTEGER, 2 ** 53, 2 ** 32, -1, -(2 ** 53), Infinity, -Infinity, NaN];
  for (const h of huge) {
    for (const [pos, n] of [[h, 1], [1, h], [h, h], [h, 0], [0, h]]) {
      const d = new Doc({ agent: 1n });
      const x = d.text('t');
      x.insert(0, 'hello, world');
      d.takeUpdate();
      assert.throws(() => x.delete(pos, n), (e) => e instanceof CrdtError && e.code === 'position', `delete(${pos}, ${n})`);
      assert.equal(x.toString(), 'hello, world');
      assert.equal(d.takeUpdate(), null, `delete(${pos}, ${n}) made an update`);
    }
    const x = new Doc({ agent: 1n }).text('t');
    assert.throws(() => x.insert(h, 'x'), (e) => e instanceof CrdtError && e.code === 'position', `insert(${h})`);
  }
  const x = new Doc({ agent: 1n }).text('t');
  x.insert(0, 'abc');
  x.delete(3, 0);
  x.delete(0, 3);
  assert.equal(x.toString(), '');
});

/** msgpack [1, kind, rawLen, bin body] (docs/FORMATS.md). */
function container(kind, rawLen, body) {
  const head = [0x94, 0x01, kind];
  if (rawLen < 128) head.push(rawLen);
  else if (rawLen < 2 ** 32) head.push(0xce, rawLen >>> 24, (rawLen >>> 16) & 255, (rawLen >>> 8) & 255, rawLen & 255);
  else {
    const hi = Math.floor(rawLen / 2 ** 32);
    head.push(0xcf, 0, 0, (hi >>> 8) & 255, hi & 255, 0, 0, 0, 0);
  }
  head.push(0xc6, body.length >>> 24, (body.length >>> 16) & 255, (body.length >>> 8) & 255, body.length & 255);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** An LZ4 block of about n zeros: one literal, one long match of offset 1, five closing literals. */
function lz4Zeros(n) {
  const b = [0x1f, 0x00, 0x01, 0x00];
  let ml = n - 1 - 5 - 4 - 15;
  for (; ml >= 255; ml -= 255) b.push(255);
  b.push(ml, 0x50, 0, 0, 0, 0, 0);
  return Uint8Array.from(b);
}

test('lz4DecompressedLength agrees with the block and stops past the limit', () => {
  const src = new TextEncoder().encode('hello hello hello hello hello hello world'.repeat(50));
  const z = lz4Compress(src);
  assert.equal(lz4DecompressedLength(z, src.length), src.length);
  assert.ok(lz4DecompressedLength(z, 10) > 10);
  assert.equal(lz4DecompressedLength(Uint8Array.of(0xf0), 100), null);
  assert.equal(lz4DecompressedLength(lz4Zeros(1 << 30), 1 << 30), 1 << 30);
});

test('lz4 round trip: long overlapping matches of every short period, copied in blocks', () => {
  for (const period of [1, 2, 3, 7, 16, 17, 26, 100, 1000]) {
    for (const n of [20, 300, 70000]) {
      const src = new Uint8Array(n);
      for (let i = 0; i < n; i++) src[i] = i % period === 0 ? 7 : (i * 31 + period) % period;
      src[n >> 1] = 255; // a break in the pattern: a second match
      const z = lz4Compress(src);
      assert.deepEqual(lz4Decompress(z, n), src, `period ${period}, ${n} bytes`);
    }
  }
});

function tooLarge(e) {
  return e instanceof DecodeError && e.cause instanceof CrdtError && e.cause.code === 'too-large';
}

// claimOf reads "claims N MiB|KiB" from a case name.
function claimOf(name) {
  const m = /claims (\d+) (MiB|KiB)/.exec(name);
  return m ? Number(m[1]) * (m[2] === 'MiB' ? 1 << 20 : 1 << 10) : 0;
}

test('snapshot bombs fail fast without allocating what they claim', () => {
  // 64 MiB of zeros as raw DEFLATE (about 64 KB).
  const zeros = new Uint8Array(64 << 20);
  const deflated = new Uint8Array(deflateRawSync(zeros, { level: 1 }));
  const lz = lz4Zeros(250 << 20);
  const cases = [
    ['deflate claims 1 GiB', container(1, 2 ** 30, deflated), {}, true],
    ['deflate claims 32 MiB, inflates to 64 MiB', container(1, 32 << 20, deflated), {}, true],
    ['deflate claims 1 KiB, inflates to 64 MiB', container(1, 1 << 10, deflated), {}, true],
    ['deflate claims 60 MiB with maxSnapshot 16 MiB', container(1, 60 << 20, deflated), { maxSnapshot: 16 << 20 }, true],
    ['deflate claims 4 GiB', container(1, 2 ** 32, deflated), { maxSnapshot: 2 ** 40 }, false],
    ['lz4 claims 200 MiB, holds 250 MiB', container(2, 200 << 20, lz), {}, true],
    ['lz4 claims 250 MiB with maxSnapshot 64 MiB', container(2, 250 << 20, lz), { maxSnapshot: 64 << 20 }, true],
  ];
  for (const [name, b, limits, big] of cases) {
    // A claim within the limits may be allocated (an honest snapshot of
    // that size would be); what a bomb inflates to beyond its claim or the
    // limit never is. 16 MiB of slack: earlier cases' garbage is counted
    // until the collector runs.
    const claim = name.includes('claims 1 GiB') || name.includes('4 GiB') ? 0 : Math.min(claimOf(name), limits.maxSnapshot ?? 256 << 20);
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    assert.throws(() => Doc.loadSnapshot(b, { agent: 1n, limits }), (e) => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      return e instanceof DecodeError && (!big || tooLarge(e));
    }, name);
    assert.ok(peak - before < claim + (16 << 20), `${name}: array buffers grew by ${peak - before} bytes (claim ${claim})`);
  }
});

test('honest DEFLATE and LZ4 snapshots still load, above and below the counting threshold', () => {
  for (const n of [10, 2000, 100000]) {
    const d = new Doc({ agent: 1n });
    const x = d.text('t');
    for (let i = 0; i < n; i++) x.insert((i % 7) * Math.floor(x.length / 7), 'abc');
    for (const c of ['small', 'fast']) {
      const re = Doc.loadSnapshot(d.encodeSnapshot(c), { agent: 2n });
      assert.equal(re.text('t').toString(), x.toString(), `n=${n} ${c}`);
    }
  }
});

// Lazy snapshot loading: testdata/golden/lazy_snapshots.json (written by
// crdt/lazy_test.go) replayed with the JS port. The same bytes load to the
// same texts without building the structure; a concurrent op then builds it
// and gives the same texts as Go; a hostile structure is refused on first
// use with a DecodeError and the texts stay; a text longer than its runs is
// refused at load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Doc, DecodeError } from '../dist/index.js';

const golden = JSON.parse(readFileSync(new URL('../../../testdata/golden/lazy_snapshots.json', import.meta.url), 'utf8'));
const unhex = (h) => new Uint8Array(Buffer.from(h, 'hex'));

const texts = (d) => Object.fromEntries(d.rootNames().map((n) => [n, d.text(n).toString()]));

test('lazy golden vectors are present', () => {
  assert.ok(golden.vectors.length >= 4);
});

for (const v of golden.vectors) {
  test(`lazy golden ${v.name}`, () => {
    const snap = unhex(v.snapshot);
    if (v.load_error) {
      assert.throws(() => Doc.loadSnapshot(snap, { agent: 0x9999n }), DecodeError);
      assert.throws(() => Doc.loadSnapshot(snap, { agent: 0x9999n, eager: true }), DecodeError);
      return;
    }
    const d = Doc.loadSnapshot(snap, { agent: 0x9999n });
    assert.notEqual(d.lazy, null, 'the load built the structure');
    assert.deepEqual(texts(d), v.texts);
    for (const [name, want] of Object.entries(v.texts)) {
      assert.equal(d.text(name).length, [...want].length, `length of ${name}`);
    }
    assert.notEqual(d.lazy, null, 'reading the texts built the structure');
    const op = unhex(v.op);
    if (v.build_error) {
      assert.throws(() => Doc.loadSnapshot(snap, { agent: 0x9999n, eager: true }), DecodeError);
      assert.throws(() => d.applyUpdate(op), DecodeError);
      assert.throws(() => d.text('t').insert(0, 'x'), DecodeError);
      assert.throws(() => d.verify(), DecodeError);
      assert.throws(() => d.encodeDiff(new Map()), DecodeError);
      assert.deepEqual(texts(d), v.texts, 'texts changed when the build failed');
      return;
    }
    const eager = Doc.loadSnapshot(snap, { agent: 0x9999n, eager: true });
    d.applyUpdate(op);
    eager.applyUpdate(op);
    assert.equal(d.lazy, null, 'applying an op did not build the structure');
    assert.deepEqual(texts(d), v.after);
    assert.deepEqual(texts(eager), v.after);
    assert.deepEqual(d.encodeDiff(new Map()), eager.encodeDiff(new Map()));
  });
}

test('an untouched lazy document saves the body it read', () => {
  const v = golden.vectors.find((x) => x.name === 'concurrent_lz4');
  const d = Doc.loadSnapshot(unhex(v.snapshot), { agent: 0x9999n });
  const again = Doc.loadSnapshot(d.encodeSnapshot(), { agent: 0x9999n });
  assert.notEqual(d.lazy, null, 'encodeSnapshot built the structure');
  assert.deepEqual(texts(again), v.texts);
  again.verify();
  assert.deepEqual(texts(again), v.texts);
});

// The JS twin of crdt's FuzzLoadSnapshot property, on seeded mutations of
// small (uncompressed) snapshots: a lazy load and an eager one accept the
// same bytes; a lazy replica reads before the build what it reads after;
// a failed build leaves the texts and refuses edits.
test('lazy and eager loads agree on mutated snapshots', () => {
  let s = 7;
  const rnd = (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % n;
  };
  const seeds = golden.vectors.filter((v) => v.name !== 'concurrent_lz4').map((v) => unhex(v.snapshot));
  let lazyOnly = 0;
  for (let k = 0; k < 3000; k++) {
    const b = Uint8Array.from(seeds[k % seeds.length]);
    for (let m = 1 + rnd(3); m > 0; m--) b[rnd(b.length)] = rnd(256);
    let eagerErr = null;
    try {
      Doc.loadSnapshot(b, { agent: 5n, eager: true });
    } catch (e) {
      eagerErr = e;
    }
    let d;
    try {
      d = Doc.loadSnapshot(b, { agent: 5n });
    } catch (e) {
      assert.ok(e instanceof DecodeError, `lazy load threw ${e}`);
      assert.ok(eagerErr !== null, 'lazy load refused what an eager load accepts');
      continue;
    }
    const before = texts(d);
    let buildErr = null;
    try {
      d.verify();
    } catch (e) {
      buildErr = e;
    }
    assert.equal(buildErr === null, eagerErr === null, `verify: ${buildErr}, eager: ${eagerErr}`);
    assert.deepEqual(texts(d), before, 'the texts changed when the structure was built (or failed to)');
    if (buildErr !== null) {
      lazyOnly++;
      assert.ok(buildErr instanceof DecodeError);
      assert.throws(() => d.text('t').insert(0, 'z'), DecodeError);
    }
  }
  assert.ok(lazyOnly > 0, 'no mutation reached the deferred check');
});

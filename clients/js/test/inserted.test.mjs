// insertedText against decodeUpdateOps, its oracle: on every update, valid or
// hostile, the two must agree (both refuse it, or insertedText is the text of
// decodeUpdateOps's inserts into the root, in op order).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Doc, DecodeError, decodeUpdateOps, insertedText } from '../dist/index.js';
import { prng, randomEdit } from './helpers.mjs';

const oracle = (u, root, lim) => {
  let s = '';
  for (const op of decodeUpdateOps(u, lim)) if (op.kind === 'insert' && op.root === root && op.text) s += op.text;
  return s;
};

// Both answers for one input: the text, or the error's class and message.
const outcome = (f) => {
  try {
    return { text: f() };
  } catch (e) {
    return { error: e instanceof DecodeError ? `DecodeError ${e.message}` : String(e) };
  }
};

const agree = (u, root, lim, what) => {
  const want = outcome(() => oracle(u, root, lim));
  const got = outcome(() => insertedText(u, root, lim));
  assert.deepEqual(got, want, `${what}: ${Buffer.from(u).toString('hex').slice(0, 200)}`);
  return want;
};

// Updates of two writers on two roots, merged both ways (so that updates
// carry several agents, deletes, and inserts of text the receiver deleted).
function updates(seed, n) {
  const r = prng(seed);
  const a = new Doc({ agent: 11n });
  const b = new Doc({ agent: 0xfedcba9876543210n });
  const out = [];
  for (let i = 0; i < n; i++) {
    const d = r.int(2) === 0 ? a : b;
    randomEdit(r, d.text(r.int(4) === 0 ? 'notes' : 't'));
    if (r.int(5) === 0) d.text('t').insert(0, r.pick(['é', '😀', 'Ω', '\u0000', 'ascii']));
    const u = d.takeUpdate();
    if (u) out.push(u);
    if (r.int(7) === 0) {
      out.push(a.encodeDiff(b.stateVector()), b.encodeDiff(a.stateVector()));
      a.applyUpdate(out.at(-1));
      b.applyUpdate(out.at(-2));
    }
  }
  out.push(a.encodeDiff(), b.encodeDiff());
  return out;
}

test('insertedText equals decodeUpdateOps on real updates', () => {
  let texts = 0;
  for (const u of updates(7, 400)) {
    for (const root of ['t', 'notes', 'absent']) {
      const w = agree(u, root, undefined, `root ${root}`);
      assert.equal(w.error, undefined);
      if (w.text) texts++;
    }
  }
  assert.ok(texts > 300, `${texts} updates inserted text`);
  const d = new Doc({ agent: 5n });
  d.text('t').insert(0, 'héllo 😀 wörld');
  assert.equal(insertedText(d.takeUpdate(), 't'), 'héllo 😀 wörld');
});

test('insertedText refuses exactly what decodeUpdateOps refuses (mutated updates, Go fuzz corpus, limits)', () => {
  const r = prng(99);
  const valid = updates(3, 120);
  let refused = 0;
  for (let i = 0; i < 6000; i++) {
    const u = Uint8Array.from(r.pick(valid));
    switch (r.int(4)) {
      case 0: u[r.int(u.length)] = r.int(256); break;
      case 1: u[r.int(u.length)] ^= 1 << r.int(8); break;
      case 2: { const c = u.subarray(0, r.int(u.length)); if (agree(c, 't', undefined, 'truncated').error) refused++; continue; }
      default: u[r.int(u.length)] = r.pick([0xc0, 0xcf, 0xdc, 0xdd, 0xdb, 0xff, 0x80, 0x00]);
    }
    if (agree(u, 't', undefined, 'mutated').error) refused++;
  }
  assert.ok(refused > 1000, `only ${refused} of 6000 mutations refused`);
  // The Go fuzz corpus of the update decoder (crdt/testdata/fuzz).
  const dir = new URL('../../../crdt/testdata/fuzz/FuzzDecodeUpdate/', import.meta.url);
  const files = readdirSync(dir);
  assert.ok(files.length > 10);
  for (const f of files) agree(goBytes(readFileSync(new URL(f, dir), 'utf8')), 't', undefined, f);
  // Limits apply the same way.
  for (const u of valid.slice(0, 40)) {
    for (const lim of [{ maxOps: 1 }, { maxInsertBytes: 2 }, { maxAgents: 1 }, { maxRootName: 1 }]) agree(u, 't', lim, JSON.stringify(lim));
  }
});

// goBytes reads a Go fuzz corpus file of one []byte value.
function goBytes(file) {
  const m = /\[\]byte\("((?:[^"\\]|\\.)*)"\)/.exec(file);
  assert.ok(m, 'a []byte corpus entry');
  const out = [];
  const s = m[1];
  const esc = { n: 10, r: 13, t: 9, a: 7, b: 8, f: 12, v: 11, '\\': 92, '"': 34, "'": 39 };
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '\\') {
      out.push(...Buffer.from(s[i], 'utf8'));
      continue;
    }
    const c = s[++i];
    if (c === 'x') {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c >= '0' && c <= '7') {
      out.push(parseInt(s.slice(i, i + 3), 8));
      i += 2;
    } else if (c === 'u' || c === 'U') {
      const w = c === 'u' ? 4 : 8;
      out.push(...Buffer.from(String.fromCodePoint(parseInt(s.slice(i + 1, i + 1 + w), 16)), 'utf8'));
      i += w;
    } else if (c in esc) out.push(esc[c]);
    else throw new Error(`escape \\${c}`);
  }
  return Uint8Array.from(out);
}

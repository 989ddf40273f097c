// Replays testdata/golden/crdt.json (written by the Go crdt package, see its
// README) with the JS port: every update, diff, state vector, relative
// position and snapshot body must be byte-identical with Go's, and every
// text, index and pending count the same. Steps that consume bytes use Go's
// recorded bytes, so this also checks that JS decodes what Go wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  Doc, encodeStateVector, decodeStateVector, encodeRelPos, decodeRelPos, encodeSnapshotBody,
} from '../dist/index.js';

const golden = JSON.parse(readFileSync(new URL('../../../testdata/golden/crdt.json', import.meta.url), 'utf8'));

const hex = (b) => (b ? Buffer.from(b).toString('hex') : '');
const unhex = (h) => new Uint8Array(Buffer.from(h, 'hex'));

function replay(sc) {
  const docs = new Map();
  const named = new Map();
  const doc = (name) => {
    const d = docs.get(name);
    assert.ok(d, `unknown doc ${name}`);
    return d;
  };
  const bytesOf = (name) => {
    const b = named.get(name);
    assert.ok(b, `unknown bytes ${name}`);
    return b;
  };
  sc.steps.forEach((s, k) => {
    const at = `${sc.name} step ${k} (${s.op} ${s.doc ?? ''} ${s.name ?? s.from ?? ''})`;
    const root = s.root ?? '';
    const pos = s.pos ?? 0;
    switch (s.op) {
      case 'new':
        docs.set(s.doc, new Doc({ agent: BigInt(s.agent) }));
        break;
      case 'insert':
        doc(s.doc).text(root).insert(pos, s.text ?? '');
        break;
      case 'delete':
        doc(s.doc).text(root).delete(pos, s.len ?? 0);
        break;
      case 'take':
        assert.equal(hex(doc(s.doc).takeUpdate()), s.expect, at);
        named.set(s.name, unhex(s.expect));
        break;
      case 'apply':
        doc(s.doc).applyUpdate(bytesOf(s.from));
        break;
      case 'sv':
        assert.equal(hex(encodeStateVector(doc(s.doc).stateVector())), s.expect, at);
        named.set(s.name, unhex(s.expect));
        break;
      case 'diff': {
        const sv = s.from ? decodeStateVector(bytesOf(s.from)) : new Map();
        assert.equal(hex(doc(s.doc).encodeDiff(sv)), s.expect, at);
        named.set(s.name, unhex(s.expect));
        break;
      }
      case 'snapshot': {
        const d = doc(s.doc);
        assert.equal(hex(encodeSnapshotBody(d)), s.expect.body, `${at}: body`);
        // Bodies of 512 bytes or less are stored raw: then the whole
        // snapshot is identical; compressed ones depend on the compressor.
        const goRaw = unhex(s.expect.lz4)[2] === 0;
        for (const [c, want] of [['fast', s.expect.lz4], ['small', s.expect.deflate]]) {
          const mine = d.encodeSnapshot(c);
          if (goRaw) assert.equal(hex(mine), want, `${at}: ${c}`);
          const back = Doc.loadSnapshot(mine, { agent: d.agent });
          assert.equal(hex(encodeSnapshotBody(back)), s.expect.body, `${at}: JS ${c} snapshot reloads`);
        }
        named.set(`${s.name}.lz4`, unhex(s.expect.lz4));
        named.set(`${s.name}.deflate`, unhex(s.expect.deflate));
        break;
      }
      case 'load':
        docs.set(s.doc, Doc.loadSnapshot(bytesOf(s.from), { agent: BigInt(s.agent) }));
        break;
      case 'relpos':
        assert.equal(hex(encodeRelPos(doc(s.doc).text(root).relPos(pos, s.assoc ?? 0))), s.expect, at);
        named.set(s.name, unhex(s.expect));
        break;
      case 'resolve':
        assert.equal(doc(s.doc).text(root).resolve(decodeRelPos(bytesOf(s.from))) ?? -1, s.expect, at);
        break;
      case 'text':
        assert.equal(doc(s.doc).text(root).toString(), s.expect, at);
        assert.equal(doc(s.doc).text(root).length, [...s.expect].length, `${at}: length`);
        break;
      case 'pending':
        assert.equal(doc(s.doc).pendingCount, s.expect, at);
        break;
      default:
        assert.fail(`${at}: unknown op`);
    }
  });
}

test('golden file is present and versioned', () => {
  assert.equal(golden.version, 1);
  assert.ok(golden.scenarios.length >= 9);
});

for (const sc of golden.scenarios) {
  test(`golden ${sc.name}`, () => replay(sc));
}

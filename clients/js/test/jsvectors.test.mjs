// testdata/golden/js_snapshots.json holds snapshots compressed by this port
// for Go to load (crdt/golden_fromjs_test.go); the port must still produce them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Doc, encodeSnapshotBody } from '../dist/index.js';
import { jsVectors } from '../scripts/js-vectors.mjs';

const file = JSON.parse(readFileSync(new URL('../../../testdata/golden/js_snapshots.json', import.meta.url), 'utf8'));

test('JS-compressed snapshot vectors still match the port', () => {
  assert.deepEqual(jsVectors(), file.snapshots);
  for (const s of file.snapshots) {
    for (const c of ['lz4', 'deflate']) {
      const d = Doc.loadSnapshot(new Uint8Array(Buffer.from(s[c], 'hex')), { agent: BigInt(s.agent) });
      assert.equal(Buffer.from(encodeSnapshotBody(d)).toString('hex'), s.body, `${s.name} ${c}`);
    }
  }
});

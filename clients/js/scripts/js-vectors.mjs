// Writes testdata/golden/js_snapshots.json: snapshots compressed by the JS
// port (LZ4 from src/lz4.ts, DEFLATE from fflate), for Go to load
// (crdt/golden_fromjs_test.go). Run after `npm run build`, only when adding
// vectors; test/jsvectors.test.mjs checks the file still matches the port.
import { writeFileSync } from 'node:fs';
import { Doc, encodeSnapshotBody } from '../dist/index.js';
import { prng, randomEdit } from '../test/helpers.mjs';

export function jsVectors() {
  const out = [];
  for (const seed of [1, 2]) {
    const r = prng(seed);
    const docs = [new Doc({ agent: 0x1111n }), new Doc({ agent: 0xfedcba9876543210n })];
    for (let round = 0; round < 60; round++) {
      for (const d of docs) for (let k = 0; k < 3; k++) randomEdit(r, d.text(round % 2 ? 't' : 'notes'));
      const us = docs.map((d) => d.takeUpdate());
      docs[0].applyUpdate(us[1]);
      docs[1].applyUpdate(us[0]);
    }
    const d = docs[0];
    const hex = (b) => Buffer.from(b).toString('hex');
    out.push({
      name: `two_agents_seed${seed}`,
      agent: d.agent.toString(),
      texts: Object.fromEntries(d.rootNames().map((n) => [n, d.text(n).toString()])),
      body: hex(encodeSnapshotBody(d)),
      lz4: hex(d.encodeSnapshot('fast')),
      deflate: hex(d.encodeSnapshot('small')),
    });
  }
  return out;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  const file = new URL('../../../testdata/golden/js_snapshots.json', import.meta.url);
  writeFileSync(file, JSON.stringify({ version: 1, comment: 'Written by clients/js/scripts/js-vectors.mjs; see README.md. Never regenerate to make a test pass.', snapshots: jsVectors() }, null, 1) + '\n');
}

// Decoding a fanned-out update frame, as a subscriber does for every update
// it receives (BENCHMARKS.md, "Fan-out path"): decodeFrame alone, and
// decodeFrame + decodeUpdateOps (what a replica-less subscriber does).
// Run after `npm run build`: node bench/frames.mjs
import { Doc, decodeFrame, decodeUpdateOps, encodeFrame } from '../dist/index.js';

const d = new Doc({ agent: 0x1234567890abcn });
d.text('t').insert(0, 'x'.repeat(100));
d.takeUpdate();
d.text('t').insert(100, '\u4e01');
const frame = encodeFrame({ type: 5, doc: 'fanout-1733520000000', batch: 0, update: d.takeUpdate() });
const N = 200_000;
function run(name, f) {
  for (let i = 0; i < N / 10; i++) f(); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) f();
  const ns = Number(process.hrtime.bigint() - t0) / N;
  console.log(`${name}: ${ns.toFixed(0)} ns/frame (${frame.length}-byte frame)`);
}
const lim = { maxOps: 1 << 22, maxInsertBytes: 1 << 26 };
for (let round = 0; round < 3; round++) {
  run('decodeFrame', () => decodeFrame(frame));
  run('decodeFrame + decodeUpdateOps', () => decodeUpdateOps(decodeFrame(frame).update, lim));
}

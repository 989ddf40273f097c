// Driver for the Go test e2e/js_interop_test.go: JS clients edit one
// document at random (with abrupt disconnects) while Go clients do the same.
//
//   node interop-driver.mjs URL DOC SEED STEPS
//
// stdout: "EDITED" once every JS edit is durable on the server; then, after
// reading "SV <hex state vector>" on stdin, waits until every JS replica has
// seen those ops and prints "RESULT <json>" (each replica's texts and state
// vector) and exits. Errors go to stderr with exit code 1.
import { createInterface } from 'node:readline';
import { Client, decodeStateVector, encodeStateVector, svContains } from '../dist/index.js';
import { prng, randomEdit } from './helpers.mjs';
import { trackingWebSocket, until, withDeadline } from './server.mjs';

const [url, docID, seedArg, stepsArg] = process.argv.slice(2);
const seed = Number(seedArg);
const steps = Number(stepsArg);
const r = prng(seed);
const hex = (b) => Buffer.from(b).toString('hex');

async function main() {
  const nets = [];
  const clients = [];
  for (let i = 0; i < 3; i++) {
    const net = trackingWebSocket();
    nets.push(net);
    clients.push(await Client.connect(url, { WebSocket: net.WebSocket, backoff: { baseMs: 5, maxMs: 100 } }));
  }
  const docs = await Promise.all(clients.map((c) => c.join(docID)));
  await new Promise((res) => {
    let step = 0;
    const tick = () => {
      for (let k = 0; k < 3 && step < steps; k++, step++) {
        const d = docs[r.int(docs.length)];
        const root = r.int(4) === 0 ? 'title' : 'body';
        randomEdit(r, { get length() { return d.doc.text(root).length; }, insert: (p, t) => d.insert(root, p, t), delete: (p, n) => d.delete(root, p, n) });
        if (r.int(30) === 0) nets[r.int(nets.length)].cut();
      }
      if (step < steps) setTimeout(tick, 2); // paces the generator
      else res();
    };
    tick();
  });
  await withDeadline(Promise.all(docs.map((d) => d.whenDurable())), 20_000, 'JS edits durable');
  process.stdout.write('EDITED\n');
  const rl = createInterface({ input: process.stdin });
  const line = await withDeadline(new Promise((res) => rl.once('line', res)), 30_000, 'SV from the Go test');
  rl.close();
  const m = /^SV ([0-9a-f]*)$/.exec(line);
  if (!m) throw new Error(`bad line ${JSON.stringify(line)}`);
  const target = decodeStateVector(Buffer.from(m[1], 'hex'));
  await until(() => docs.every((d) => svContains(d.stateVector(), target)), {
    docs, clients, ms: 20_000, what: 'the Go state',
    describe: () => docs.map((d) => `${d.status} ${hex(encodeStateVector(d.stateVector()))}`).join('; '),
  });
  const out = docs.map((d) => ({ body: d.text('body'), title: d.text('title'), sv: hex(encodeStateVector(d.stateVector())) }));
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
  for (const c of clients) c.close();
}

main().catch((e) => {
  process.stderr.write(`interop-driver: ${e?.stack ?? e}\n`);
  process.exit(1);
});

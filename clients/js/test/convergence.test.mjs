// Convergence: replicas edit concurrently and exchange updates in random
// order, late and duplicated; after everything is delivered they must hold
// the same texts and state vectors with nothing pending. Failures name the seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Doc, encodeStateVector, encodeSnapshotBody } from '../dist/index.js';
import { prng, randomEdit } from './helpers.mjs';

const roots = ['t', 'notes'];

function run(seed, nDocs, rounds) {
  const r = prng(seed);
  const agents = [5n, 0xfedcba9876543210n, 2n ** 53n + 1n, 300n].slice(0, nDocs);
  const docs = agents.map((agent) => new Doc({ agent }));
  const inbox = docs.map(() => []); // updates not yet delivered
  const sent = []; // every update, for duplicates
  for (let round = 0; round < rounds; round++) {
    docs.forEach((d, i) => {
      for (let k = 1 + r.int(3); k > 0; k--) randomEdit(r, d.text(r.pick(roots)));
      const u = d.takeUpdate();
      if (!u) return;
      sent.push(u);
      inbox.forEach((q, j) => j !== i && q.push(u));
    });
    docs.forEach((d, i) => {
      const q = r.shuffle(inbox[i]);
      const k = r.int(q.length + 1);
      for (const u of q.splice(0, k)) d.applyUpdate(u);
      if (sent.length > 0 && r.int(3) === 0) d.applyUpdate(r.pick(sent)); // duplicate (or own echo)
    });
  }
  docs.forEach((d, i) => {
    for (const u of r.shuffle(inbox[i].splice(0))) d.applyUpdate(u);
  });
  const want = roots.map((x) => docs[0].text(x).toString());
  const sv = Buffer.from(encodeStateVector(docs[0].stateVector())).toString('hex');
  docs.forEach((d, i) => {
    const at = `seed ${seed}, replica ${i}`;
    assert.equal(d.pendingCount, 0, `${at}: pending`);
    assert.deepEqual(roots.map((x) => d.text(x).toString()), want, `${at}: texts`);
    assert.equal(Buffer.from(encodeStateVector(d.stateVector())).toString('hex'), sv, `${at}: state vector`);
  });
  return docs;
}

test('replicas converge under random concurrent edits, reordering and duplicates', () => {
  for (let seed = 1; seed <= 40; seed++) run(seed, 2 + (seed % 3), 30);
});

test('a replica syncing by state vector diff and by snapshot ends identical', () => {
  for (let seed = 100; seed < 110; seed++) {
    const docs = run(seed, 3, 20);
    const src = docs[1];
    // a fresh replica that catches up with one diff
    const fresh = new Doc({ agent: 77n });
    fresh.applyUpdate(src.encodeDiff(fresh.stateVector()));
    for (const x of roots) assert.equal(fresh.text(x).toString(), src.text(x).toString(), `seed ${seed}: diff`);
    assert.equal(src.encodeDiff(fresh.stateVector()).length, 5, `seed ${seed}: nothing left to send`); // [1,[],[],[]]
    // snapshots in both compressions reload to the same state
    for (const c of ['fast', 'small']) {
      const back = Doc.loadSnapshot(src.encodeSnapshot(c), { agent: src.agent });
      assert.deepEqual(encodeSnapshotBody(back), encodeSnapshotBody(src), `seed ${seed}: ${c} snapshot`);
      // and the loaded replica keeps editing with the same agent
      back.text('t').insert(0, '>');
      src.applyUpdate(back.takeUpdate());
      assert.equal(src.text('t').toString(), back.text('t').toString(), `seed ${seed}: edit after load`);
    }
  }
});

test('FugueMax: words typed concurrently at one spot never interleave', () => {
  for (const backward of [false, true]) {
    const base = new Doc({ agent: 1n });
    base.text('t').insert(0, '[]');
    const u0 = base.takeUpdate();
    const words = ['alpha', 'bravo', 'charlie'];
    const ups = words.map((w, i) => {
      const d = new Doc({ agent: BigInt(10 + i) });
      d.applyUpdate(u0);
      const cps = [...w];
      return cps.map((_, k) => {
        if (backward) d.text('t').insert(1, cps[cps.length - 1 - k]);
        else d.text('t').insert(1 + k, cps[k]);
        return d.takeUpdate();
      });
    });
    const r = prng(backward ? 2 : 1);
    for (let trial = 0; trial < 10; trial++) {
      const d = new Doc({ agent: 99n });
      d.applyUpdate(u0);
      const queues = ups.map((q) => q.slice());
      while (queues.some((q) => q.length)) {
        const q = r.pick(queues.filter((q) => q.length));
        d.applyUpdate(q.shift());
      }
      assert.equal(d.text('t').toString(), '[alphabravocharlie]', `backward=${backward} trial ${trial}`);
    }
  }
});

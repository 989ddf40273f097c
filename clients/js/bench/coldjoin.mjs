// A fresh client taking a document's whole state (the cold join): a
// 100,000-character text built from 20,000 inserts of 5 characters, either
// appended (one writer typing forward) or at random positions (seeded), as
// in shared/anchors/server's coldjoin scenario. The state is built once,
// then a fresh replica takes it, median of RUNS after a warm-up, each
// library in a fresh child process:
//
//   collabd update    new Doc().applyUpdate(encodeDiff())  (what a cold join
//                     carried before snapshots: the whole history as ops)
//   collabd snapshot  Doc.loadSnapshot(encodeSnapshot()) and read the text
//   collabd snap+op   the same, then one concurrent remote op (which builds
//                     the structure the load deferred)
//   yjs               Y.applyUpdate(new Y.Doc(), encodeStateAsUpdate()) and
//                     read the text (when YJS names a directory holding
//                     node_modules/yjs, e.g. a temporary copy of
//                     shared/anchors/crdt after `npm ci`)
//
//   YJS=/tmp/anchors-crdt RUNS=9 node bench/coldjoin.mjs
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const runs = Number(process.env.RUNS || 9);
const CHARS = 100_000;
const CHUNK = 5;

/** The positions of the inserts: end, or a seeded PRNG (mulberry32). */
function positions(history) {
  let s = 0x5eed;
  const rnd = () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [];
  for (let k = 0, len = 0; k < CHARS / CHUNK; k++, len += CHUNK) {
    out.push(history === 'random' ? Math.floor(rnd() * (len + 1)) : len);
  }
  return out;
}

const alphabet = 'abcdefghijklmnopqrstuvwxyz';
const chunkAt = (k) => {
  let s = '';
  for (let j = 0; j < CHUNK; j++) s += alphabet[(k * CHUNK + j) % 26];
  return s;
};

async function adapter(lib) {
  if (lib === 'collabd') {
    const { Doc } = await import('../dist/index.js');
    return {
      build(pos) {
        const d = new Doc({ agent: 1n });
        const x = d.text('t');
        pos.forEach((p, k) => x.insert(p, chunkAt(k)));
        const other = Doc.loadSnapshot(d.encodeSnapshot(), { agent: 3n });
        other.text('t').insert(Math.floor(CHARS / 2), '!');
        return { d, update: d.encodeDiff(new Map()), snap: d.encodeSnapshot(), op: other.takeUpdate() };
      },
      cases: {
        update: (s) => {
          const d = new Doc({ agent: 2n });
          d.applyUpdate(s.update);
          return d.text('t').toString();
        },
        snapshot: (s) => Doc.loadSnapshot(s.snap, { agent: 2n }).text('t').toString(),
        'snap+op': (s) => {
          const d = Doc.loadSnapshot(s.snap, { agent: 2n });
          const text = d.text('t').toString();
          d.applyUpdate(s.op);
          return text;
        },
      },
      bytes: (s) => ({ update: s.update.length, snapshot: s.snap.length }),
    };
  }
  const Y = await import(pathToFileURL(join(process.env.YJS, 'node_modules/yjs/dist/yjs.mjs')).href);
  return {
    build(pos) {
      const d = new Y.Doc();
      const x = d.getText('t');
      pos.forEach((p, k) => x.insert(p, chunkAt(k)));
      return { state: Y.encodeStateAsUpdate(d) };
    },
    cases: {
      state: (s) => {
        const d = new Y.Doc();
        Y.applyUpdate(d, s.state);
        return d.getText('t').toString();
      },
    },
    bytes: (s) => ({ state: s.state.length }),
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function child(lib, history) {
  const a = await adapter(lib);
  const s = a.build(positions(history));
  const out = { lib, history, runs, bytes: a.bytes(s), ms: {} };
  for (const [name, f] of Object.entries(a.cases)) {
    const want = f(s); // warm-up
    if (want.length !== CHARS) throw new Error(`${lib} ${name}: ${want.length} chars`);
    out.ms[name] = median(Array.from({ length: runs }, () => {
      const t0 = performance.now();
      f(s);
      return performance.now() - t0;
    }));
  }
  console.log(JSON.stringify(out));
}

const [, , a1, a2, a3] = process.argv;
if (a1 === '--child') await child(a2, a3);
else {
  const libs = ['collabd', ...(process.env.YJS ? ['yjs'] : [])];
  for (const history of ['append', 'random']) {
    const rows = libs.map((lib) => JSON.parse(execFileSync(process.execPath,
      [fileURLToPath(import.meta.url), '--child', lib, history], { encoding: 'utf8' }).trim().split('\n').pop()));
    for (const r of rows) {
      const cases = Object.entries(r.ms).map(([k, v]) => `${k} ${v.toFixed(2)} ms`).join(', ');
      console.log(`${history.padEnd(6)} ${r.lib.padEnd(8)} ${cases}  bytes ${JSON.stringify(r.bytes)}  (median of ${r.runs})`);
    }
    if (rows.length === 2) {
      const y = rows[1].ms.state;
      const c = rows[0].ms;
      console.log(`${history.padEnd(6)} collabd/yjs: update ${(c.update / y).toFixed(2)}x, snapshot ${(c.snapshot / y).toFixed(2)}x, snap+op ${(c['snap+op'] / y).toFixed(2)}x`);
    }
  }
}

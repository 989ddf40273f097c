// Replays a sequential editing trace (shared/traces, format in TRACES.md)
// through the JS CRDT, and through Yjs in the same run when YJS names a
// directory holding node_modules/yjs (e.g. a temporary copy of
// shared/anchors/crdt after `npm ci`; never install it into this package).
// Each library runs in a fresh child process, warm-up first, then the
// median of RUNS runs.
//
//   node bench/trace.mjs [trace-name]            # default automerge-paper
//   YJS=/tmp/anchors-crdt RUNS=5 node bench/trace.mjs
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const traces = process.env.COLLABD_TRACES || resolve(here, '../../../../shared/traces');
const runs = Number(process.env.RUNS || 5);

function load(name) {
  const t = JSON.parse(gunzipSync(readFileSync(join(traces, `${name}.json.gz`))).toString());
  if (t.kind === 'concurrent') throw new Error(`${name}: only sequential traces`);
  return t;
}

async function adapter(lib) {
  if (lib === 'collabd') {
    const { Doc } = await import('../dist/index.js');
    return {
      // positions are code points (the trace's own units)
      replay(t) {
        const d = new Doc({ agent: 1n });
        const x = d.text('t');
        for (const txn of t.txns) for (const [p, del, ins] of txn.patches) {
          if (del) x.delete(p, del);
          if (ins) x.insert(p, ins);
        }
        return x.toString();
      },
      updates(t) {
        const d = new Doc({ agent: 1n });
        const x = d.text('t');
        const us = [];
        for (const txn of t.txns) {
          for (const [p, del, ins] of txn.patches) {
            if (del) x.delete(p, del);
            if (ins) x.insert(p, ins);
          }
          us.push(d.takeUpdate());
        }
        return us;
      },
      remote(us) {
        const d = new Doc({ agent: 2n });
        for (const u of us) d.applyUpdate(u);
        return d.text('t').toString();
      },
    };
  }
  const Y = await import(pathToFileURL(join(process.env.YJS, 'node_modules/yjs/dist/yjs.mjs')).href);
  return {
    // UTF-16 positions (automerge-paper is ASCII: the same)
    replay(t) {
      const d = new Y.Doc();
      const x = d.getText('t');
      for (const txn of t.txns) d.transact(() => {
        for (const [p, del, ins] of txn.patches) {
          if (del) x.delete(p, del);
          if (ins) x.insert(p, ins);
        }
      });
      return x.toString();
    },
    updates(t) {
      const d = new Y.Doc();
      const x = d.getText('t');
      const us = [];
      d.on('update', (u) => us.push(u));
      for (const txn of t.txns) d.transact(() => {
        for (const [p, del, ins] of txn.patches) {
          if (del) x.delete(p, del);
          if (ins) x.insert(p, ins);
        }
      });
      return us;
    },
    remote(us) {
      const d = new Y.Doc();
      for (const u of us) Y.applyUpdate(d, u);
      return d.getText('t').toString();
    },
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function child(lib, name) {
  const t = load(name);
  const a = await adapter(lib);
  const time = (f) => {
    const t0 = performance.now();
    const r = f();
    return [performance.now() - t0, r];
  };
  if (a.replay(t) !== t.endContent) throw new Error(`${lib}: wrong text after replay`);
  const replay = median(Array.from({ length: runs }, () => time(() => a.replay(t))[0]));
  const us = a.updates(t);
  if (a.remote(us) !== t.endContent) throw new Error(`${lib}: wrong text after remote apply`);
  const remote = median(Array.from({ length: runs }, () => time(() => a.remote(us))[0]));
  console.log(JSON.stringify({ lib, trace: name, replayMs: Math.round(replay), remoteMs: Math.round(remote), runs }));
}

const [, , a1, a2] = process.argv;
if (a1 === '--child') await child(a2, process.argv[4]);
else {
  const name = a1 || 'automerge-paper';
  const libs = ['collabd', ...(process.env.YJS ? ['yjs'] : [])];
  const rows = libs.map((lib) => JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', lib, name], { encoding: 'utf8' }).trim().split('\n').pop()));
  for (const r of rows) console.log(`${r.lib.padEnd(8)} ${name}: replay ${r.replayMs} ms, remote apply ${r.remoteMs} ms (median of ${r.runs})`);
  if (rows.length === 2) {
    console.log(`collabd/yjs: replay ${(rows[0].replayMs / rows[1].replayMs).toFixed(2)}x, remote apply ${(rows[0].remoteMs / rows[1].remoteMs).toFixed(2)}x`);
  }
}

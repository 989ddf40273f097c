// Turns the editing traces (../shared/traces, format in TRACES.md) into Yjs
// updates, one per transaction, as a Yjs client would send them, and measures
// real Yjs on them in the same run (remote apply one by one into a fresh
// doc, encode state, load state + read text, heap after apply).
//
//   node --expose-gc traces.mjs --out DIR [--runs 3] TRACE.json.gz …
//
// Writes DIR/NAME.updates (each update as varUint length + bytes) and
// DIR/NAME.yjs.json (Yjs's figures, medians of --runs; final text length).
import * as Y from 'yjs'
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { basename } from 'node:path'

const argv = process.argv.slice(2)
let out = null; let runs = 3; const files = []
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--out') out = argv[++i]
  else if (argv[i] === '--runs') runs = Number(argv[++i])
  else files.push(argv[i])
}
if (!out || !files.length) { console.error('usage: node --expose-gc traces.mjs --out DIR TRACE…'); process.exit(2) }
mkdirSync(out, { recursive: true })

const now = () => Number(process.hrtime.bigint()) / 1e6
const median = xs => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }

function replica (agent, sink) {
  const d = new Y.Doc()
  d.clientID = agent + 1
  d.on('update', u => { sink.last = u })
  return d
}

function applyPatches (doc, patches) {
  const t = doc.getText('t')
  doc.transact(() => {
    for (const [p, del, ins] of patches) { if (del) t.delete(p, del); if (ins) t.insert(p, ins) }
  })
}

// sequential: one doc, one update per txn.
function sequential (trace) {
  const sink = {}
  const d = replica(0, sink)
  const ups = []
  for (const txn of trace.txns) { applyPatches(d, txn.patches); ups.push(sink.last); sink.last = null }
  return { updates: ups, text: d.getText('t').toString() }
}

// concurrent: one replica per agent, brought to the txn's parents by applying
// the updates of the parents' history it has not seen, in trace order.
function concurrent (trace) {
  const txns = trace.txns
  const reps = new Map()
  const updates = new Array(txns.length).fill(null)
  for (let i = 0; i < txns.length; i++) {
    const t = txns[i]
    let st = reps.get(t.agent)
    if (!st) { st = { sink: {}, seen: new Uint8Array(txns.length) }; st.doc = replica(t.agent, st.sink); reps.set(t.agent, st) }
    const todo = []; const stack = [...t.parents]
    while (stack.length) { const p = stack.pop(); if (st.seen[p]) continue; st.seen[p] = 1; todo.push(p); for (const q of txns[p].parents) if (!st.seen[q]) stack.push(q) }
    todo.sort((a, b) => a - b)
    st.doc.transact(() => { for (const p of todo) if (updates[p]) Y.applyUpdate(st.doc, updates[p]) })
    st.sink.last = null
    if (t.patches.length) { applyPatches(st.doc, t.patches); updates[i] = st.sink.last; st.sink.last = null }
    st.seen[i] = 1
  }
  const ups = updates.filter(Boolean)
  const d = new Y.Doc(); d.transact(() => { for (const u of ups) Y.applyUpdate(d, u) })
  return { updates: ups, text: d.getText('t').toString() }
}

function measure (updates) {
  const r = { applyMs: [], encodeMs: [], loadReadMs: [], heapBytes: [], stateBytes: 0 }
  for (let k = 0; k < runs; k++) {
    const gc = () => { if (global.gc) { global.gc(); global.gc() } }
    gc()
    let t0 = now()
    let d = new Y.Doc()
    for (const u of updates) Y.applyUpdate(d, u)
    r.applyMs.push(now() - t0)
    t0 = now()
    const st = Y.encodeStateAsUpdate(d)
    r.encodeMs.push(now() - t0)
    r.stateBytes = st.length
    t0 = now()
    const d2 = new Y.Doc(); Y.applyUpdate(d2, st); d2.getText('t').toString()
    r.loadReadMs.push(now() - t0)
    d2.destroy()
    // heap held by the document: live heap with it minus live heap after dropping it
    gc()
    const h1 = process.memoryUsage().heapUsed
    d.destroy(); d = null
    gc()
    r.heapBytes.push(h1 - process.memoryUsage().heapUsed)
  }
  return { applyMs: median(r.applyMs), encodeMs: median(r.encodeMs), loadReadMs: median(r.loadReadMs), heapBytes: median(r.heapBytes), stateBytes: r.stateBytes }
}

for (const file of files) {
  const name = basename(file).replace(/\.json(\.gz)?$/, '')
  let buf = readFileSync(file); if (file.endsWith('.gz')) buf = gunzipSync(buf)
  const j = JSON.parse(buf.toString('utf8'))
  const trace = { txns: j.txns.map((t, i) => ({ agent: t.agent ?? 0, parents: t.parents ?? (i ? [i - 1] : []), patches: t.patches })) }
  for (const t of trace.txns) for (const [, , ins] of t.patches) if (/[\uD800-\uDFFF]/.test(ins)) throw new Error(`${name}: astral characters need code point → UTF-16 positions`)
  const { updates, text } = j.kind === 'concurrent' ? concurrent(trace) : sequential(trace)
  if (text !== j.endContent) throw new Error(`${name}: Yjs replay does not reach endContent`)
  let total = 0; for (const u of updates) total += u.length + 5
  const enc = Buffer.alloc(total); let pos = 0
  for (const u of updates) { let n = u.length; while (n >= 0x80) { enc[pos++] = (n & 0x7f) | 0x80; n >>>= 7 } enc[pos++] = n; enc.set(u, pos); pos += u.length }
  writeFileSync(`${out}/${name}.updates`, enc.subarray(0, pos))
  const yjs = measure(updates)
  writeFileSync(`${out}/${name}.yjs.json`, JSON.stringify({ trace: name, updates: updates.length, textLength: text.length, yjsVersion: '13.6.33', runs, yjs }, null, 1) + '\n')
  console.log(name, updates.length, 'updates', JSON.stringify(yjs))
}

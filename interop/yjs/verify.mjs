// Checks the Go engine's output against real Yjs.
//
//   node verify.mjs cases.jsonl go.jsonl
//
// cases.jsonl is what histories.mjs wrote; go.jsonl has one line per case:
// { seed, state: base64 (Go's EncodeState), prefix: k, diff: base64 (Go's
// Diff against the state vector of the first k updates) }. Each Go state is
// loaded into a fresh Y.Doc, and the first k updates plus Go's diff into
// another; both must give the case's dump, toJSON, state vector and delete
// set. Prints {"checked":n,"failures":[…]} and exits 1 on any failure.
import * as Y from 'yjs'
import { readFileSync } from 'node:fs'
import { unb64, dumpDoc, jsonDoc, svOf, dsOf, loadAll } from './lib/dump.mjs'

const [casesFile, goFile] = process.argv.slice(2)
const lines = f => readFileSync(f, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l))
const cases = new Map(lines(casesFile).map(c => [c.seed, c]))
const failures = []
let checked = 0
// Map key order follows integration order in Yjs, so objects compare with sorted keys.
const canon = v => Array.isArray(v) ? v.map(canon) : (v !== null && typeof v === 'object') ? Object.fromEntries(Object.keys(v).sort().map(k => [k, canon(v[k])])) : v
const same = (a, b) => JSON.stringify(canon(a)) === JSON.stringify(canon(b))
for (const g of lines(goFile)) {
  const c = cases.get(g.seed)
  if (!c) { failures.push({ seed: g.seed, what: 'unknown seed' }); continue }
  const check = (what, doc) => {
    for (const [k, got, want] of [['dump', dumpDoc(doc, c.roots), c.dump], ['json', jsonDoc(doc, c.roots), c.json], ['sv', svOf(doc), c.sv], ['ds', dsOf(doc), c.ds]]) {
      if (!same(got, want)) failures.push({ seed: c.seed, what: `${what} ${k}`, got, want })
    }
  }
  try {
    check('state', loadAll([unb64(g.state)]))
    if (g.diff) {
      // the first updates, then Go's diff against their state vector, as
      // against Yjs's own diff (the formatting cleanup depends on the order)
      const prefix = c.updates.slice(0, g.prefix).map(unb64)
      const yDiff = Y.encodeStateAsUpdate(loadAll(c.updates.map(unb64)), Y.encodeStateVector(loadAll(prefix)))
      const got = loadAll([...prefix, unb64(g.diff)]); const want = loadAll([...prefix, yDiff])
      for (const [k, a, b] of [['dump', dumpDoc(got, c.roots), dumpDoc(want, c.roots)], ['sv', svOf(got), svOf(want)], ['ds', dsOf(got), dsOf(want)]]) {
        if (!same(a, b)) failures.push({ seed: c.seed, what: `prefix ${g.prefix} + diff ${k}`, got: a, want: b })
      }
    }
    if (g.shuffled) {
      // Go received the updates shuffled, with duplicates and merged
      // batches: Yjs fed the same sequence must hold the same document
      const seq = g.shuffled.map(r => r.m ? unb64(c.merged[r.m - 1]) : unb64(c.updates[r.u]))
      const ref = loadAll(seq); const got = loadAll([unb64(g.shuffledState)])
      for (const [k, a, b] of [['dump', dumpDoc(got, c.roots), dumpDoc(ref, c.roots)], ['json', jsonDoc(got, c.roots), jsonDoc(ref, c.roots)], ['sv', svOf(got), svOf(ref)], ['ds', dsOf(got), dsOf(ref)]]) {
        if (!same(a, b)) failures.push({ seed: c.seed, what: `shuffled ${k}`, got: a, want: b })
      }
    }
    if (g.subset) {
      // Go received only some updates, in this order (structs pending): its
      // state, as Yjs loads it, equals a Yjs doc that received the same
      // updates in the same order, and both complete to the case's result
      // with the rest.
      const part = g.subset.map(i => unb64(c.updates[i]))
      const ref = new Y.Doc()
      for (const u of part) ref.transact(() => Y.applyUpdate(ref, u))
      if (!same(g.subsetSV, svOf(ref))) failures.push({ seed: c.seed, what: 'subset: Go state vector', got: g.subsetSV, want: svOf(ref) })
      // what a peer gets from each in a sync step 2
      const refRe = loadAll([Y.encodeStateAsUpdate(ref)]); const got = loadAll([unb64(g.subsetState)])
      for (const [k, a, b] of [['dump', dumpDoc(got, c.roots), dumpDoc(refRe, c.roots)], ['sv', svOf(got), svOf(refRe)], ['ds', dsOf(got), dsOf(refRe)]]) {
        if (!same(a, b)) failures.push({ seed: c.seed, what: `subset ${k}`, got: a, want: b })
      }
      // then everything: as Yjs completes from its own state (Yjs's
      // formatting cleanup depends on the order updates arrive in)
      const rest = c.updates.map(unb64)
      const a = loadAll([unb64(g.subsetState), ...rest]); const b = loadAll([Y.encodeStateAsUpdate(ref), ...rest])
      for (const [k, x, y] of [['dump', dumpDoc(a, c.roots), dumpDoc(b, c.roots)], ['sv', svOf(a), svOf(b)], ['ds', dsOf(a), dsOf(b)]]) {
        if (!same(x, y)) failures.push({ seed: c.seed, what: `subset state + all updates ${k}`, got: x, want: y })
      }
    }
  } catch (e) {
    failures.push({ seed: c.seed, what: 'yjs threw', error: String(e && e.stack || e) })
  }
  checked++
}
process.stdout.write(JSON.stringify({ checked, failures: failures.slice(0, 20), failed: failures.length }) + '\n')
process.exit(failures.length ? 1 : 0)

// Prints the crdt/yjs vs Yjs table for BENCHMARKS.md from the files
// bench/yjs-engine.sh wrote: DIR/NAME.yjs.json (Yjs) and the go test -bench output.
import { readFileSync, readdirSync } from 'node:fs'

const [dir, goFile] = process.argv.slice(2)
const go = {}
for (const line of readFileSync(goFile, 'utf8').split('\n')) {
  const m = line.match(/^BenchmarkTrace(\w+)\/([\w-]+?)(-\d+)?\s+\d+\s+(\d+) ns\/op(.*)$/)
  if (!m) continue
  const [, kind, name, , ns, rest] = m
  const g = (go[name] ??= {})
  g[kind] = Number(ns) / 1e6
  const heap = rest.match(/([\d.e+-]+) heap-bytes/); if (heap) g.heap = Number(heap[1])
  const st = rest.match(/([\d.e+-]+) state-bytes/); if (st) g.stateBytes = Number(st[1])
}
const f = (x, d = 1) => x >= 100 ? x.toFixed(0) : x.toFixed(d)
const kb = b => `${(b / 1024).toFixed(0)} KiB`
console.log('| trace | updates | remote apply ms: Yjs / Go (ratio) | encode state ms | load state + read text ms | heap after apply | state bytes (Yjs / Go) |')
console.log('|---|---|---|---|---|---|---|')
for (const file of readdirSync(dir).filter(f => f.endsWith('.yjs.json')).sort()) {
  const y = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8'))
  const g = go[y.trace]
  if (!g) continue
  const r = (a, b) => `${f(a)} / ${f(b, 2)} (${(a / b).toFixed(1)}×)`
  console.log(`| ${y.trace} | ${y.updates} | ${r(y.yjs.applyMs, g.RemoteApply)} | ${r(y.yjs.encodeMs, g.EncodeState)} | ${r(y.yjs.loadReadMs, g.LoadRead)} | ${kb(y.yjs.heapBytes)} / ${kb(g.heap)} | ${y.yjs.stateBytes} / ${g.stateBytes} |`)
}

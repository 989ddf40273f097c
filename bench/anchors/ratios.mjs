// Ratios of collabd to Hocuspocus (and y-websocket) from one side-by-side run directory,
// against the targets of issue 8. Usage: node bench/anchors/ratios.mjs OUT > ratios.md
// Reads the harness's run JSON files (<scenario>-<server>-r<rep>.json). Cells with
// several repetitions list them as "r1 ; r2"; ratios are taken per repetition (collabd run k
// over Hocuspocus run k, which ran next to it), and a target counts as met per repetition.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.argv[2]
if (!dir) throw new Error('usage: ratios.mjs RUN_DIR')
const runs = []
for (const f of readdirSync(dir)) {
  const m = f.match(/^(.*)-(collabd-yws|collabd-hocus|collabd|hocuspocus|ywebsocket)-r(\d+)\.json$/)
  if (!m) continue
  runs.push({ name: m[1], srv: m[2], rep: Number(m[3]), r: JSON.parse(readFileSync(join(dir, f), 'utf8')) })
}

const SRV = ['collabd', 'hocuspocus', 'ywebsocket']
const DOORS = ['collabd-hocus', 'collabd-yws']
const get = (name, srv, f) => runs.filter(x => x.name === name && x.srv === srv).sort((a, b) => a.rep - b.rep)
  .map(x => { try { return x.r.error ? null : f(x.r) } catch { return null } })
const fmt = x => x == null ? '–' : x >= 100 ? String(Math.round(x)) : String(Math.round(x * 10) / 10)
const cell = a => a.length ? a.map(fmt).join(' ; ') : 'not run'
const maxEld = r => Math.max(...r.workerStats.map(w => w.eldP99))
const idleAt = (n) => r => { const s = r.steps.find(s => s.target === n && !s.error); return s ? s.rssPerConnKB : null }

const rows = [
  // [label, scenario name, value fn, target: {ratio} | {max} | null]
  ['fanout N=100, p99 ms', 's1-fanout-n100', r => r.latencyMs.p99, null],
  ['fanout N=500, p99 ms', 's1-fanout-n500', r => r.latencyMs.p99, { ratio: 0.2 }],
  ['fanout N=500, p50 ms', 's1-fanout-n500', r => r.latencyMs.p50, null],
  ['manydocs 200×5, p99 ms', 's2-manydocs', r => r.latencyMs.p99, { max: 50 }],
  ['manydocs 200×5, p50 ms', 's2-manydocs', r => r.latencyMs.p50, null],
  ['manydocs docs converged (of 200)', 's2-manydocs', r => r.convergence.docsConverged, { min: 200 }],
  ['coldjoin 100k append, median ms', 's4-coldjoin-append', r => r.fullTextMs.p50, { ratio: 0.2 }],
  ['coldjoin 100k random, median ms', 's4-coldjoin-random', r => r.fullTextMs.p50, { ratio: 0.2 }],
  ['coldjoin random, client-side apply ms (median of 3)', 's4-coldjoin-random', r => [...r.clientApplyMs].sort((a, b) => a - b)[1], null],
  ['idle own doc, KiB/conn at 5,000', 's3-idle-own', idleAt(5000), { max: 14 }],
  ['idle own doc, KiB/conn at 10,000', 's3-idle-own', idleAt(10000), { max: 14 }]
]

console.log('| measure | collabd | Hocuspocus | y-websocket | collabd / Hocuspocus | target | met? |')
console.log('|---|---|---|---|---|---|---|')
for (const [label, name, f, target] of rows) {
  const v = Object.fromEntries(SRV.map(s => [s, get(name, s, f)]))
  const ratios = v.collabd.map((c, i) => c != null && v.hocuspocus[i] ? c / v.hocuspocus[i] : null)
  const per = (f) => v.collabd.length ? v.collabd.map((c, i) => c == null ? '?' : f(c, i) ? 'yes' : 'NO').join(' ; ') : '?'
  let t = '–'; let met = '–'
  if (target && target.ratio) { t = `≤ ${target.ratio} × Hocuspocus`; met = per((c, i) => ratios[i] != null && ratios[i] <= target.ratio) }
  if (target && target.max != null) { t = `≤ ${target.max}`; met = per(c => c <= target.max) }
  if (target && target.min != null) { t = `= ${target.min}`; met = per(c => c >= target.min) }
  const rc = ratios.some(x => x != null) ? ratios.map(x => x == null ? '–' : x.toFixed(2)).join(' ; ') : '–'
  console.log(`| ${label} | ${cell(v.collabd)} | ${cell(v.hocuspocus)} | ${cell(v.ywebsocket)} | ${rc} | ${t} | ${met} |`)
}

console.log('\nWho was busy (per run, measured window): server CPU % / generator CPU % / worst generator worker event-loop p99 ms / other load % (100 = one core)\n')
console.log('| scenario | collabd | Hocuspocus | y-websocket |')
console.log('|---|---|---|---|')
const busy = r => {
  const c = r.cpu || r.cpuBuild
  if (!c) return null
  const e = r.workerStats ? ` / ${fmt(maxEld(r))}` : ''
  return `${fmt(c.server.cpuPct)} / ${fmt(c.generator.cpuPct)}${e} / ${fmt(c.machine.otherPct)}`
}
for (const name of [...new Set(runs.map(x => x.name))].sort()) {
  if (name.startsWith('s3-')) continue
  const cells = SRV.map(s => { const a = get(name, s, busy); return a.length ? a.map(x => x ?? '–').join(' ; ') : 'not run' })
  console.log(`| ${name}${name.startsWith('s4-') ? ' (build)' : ''} | ${cells.join(' | ')} |`)
}

// The Yjs doors (issue 14): collabd's doors driven by the harness's own Yjs adapters, so
// they face the identical client code as the servers they are compared with.
if (runs.some(x => DOORS.includes(x.srv))) {
  const doorRows = [
    ['fanout N=500, p99 ms', 's1-fanout-n500', r => r.latencyMs.p99, { ratio: 0.5 }],
    ['fanout N=500, p50 ms', 's1-fanout-n500', r => r.latencyMs.p50, null],
    ['fanout N=100, p99 ms', 's1-fanout-n100', r => r.latencyMs.p99, null],
    ['manydocs 200×5, p99 ms', 's2-manydocs', r => r.latencyMs.p99, { ratio: 1 }],
    ['manydocs 200×5, p50 ms', 's2-manydocs', r => r.latencyMs.p50, null],
    ['manydocs docs converged (of 200)', 's2-manydocs', r => r.convergence.docsConverged, { min: 200 }],
    ['coldjoin 100k random, median ms', 's4-coldjoin-random', r => r.fullTextMs.p50, { ratio: 1 }],
    ['coldjoin 100k append, median ms', 's4-coldjoin-append', r => r.fullTextMs.p50, { ratio: 1 }],
    ['burst ingest of 20,000 updates (coldjoin build), ms until an observer has all', 's4-coldjoin-append', r => r.build.untilObserverHasAllMs, { max: 1000 }],
    ['  of that, the generator making the 20,000 updates, ms', 's4-coldjoin-append', r => r.build.localMs, null],
    ['  of that, the server behind the generator\'s last update, ms', 's4-coldjoin-append', r => r.build.untilObserverHasAllMs - r.build.localMs, null],
    ['burst ingest, random positions: server behind the last update, ms', 's4-coldjoin-random', r => r.build.untilObserverHasAllMs - r.build.localMs, null],
    ['idle own doc, KiB/conn at 5,000', 's3-idle-own', idleAt(5000), { vs: 'ywebsocket' }]
  ]
  const ALL = [...DOORS, 'hocuspocus', 'ywebsocket']
  console.log('\n## Yjs doors: the harness\'s own Yjs adapters against collabd, Hocuspocus and y-websocket\n')
  console.log('| measure | collabd Hocuspocus door | collabd y-websocket door | Hocuspocus | y-websocket | Hocuspocus door / Hocuspocus | y-websocket door / Hocuspocus | target | met, Hocuspocus door | met, y-websocket door |')
  console.log('|---|---|---|---|---|---|---|---|---|---|')
  for (const [label, name, f, target] of doorRows) {
    const v = Object.fromEntries(ALL.map(s => [s, get(name, s, f)]))
    const ratio = (d) => v[d].map((c, i) => c != null && v.hocuspocus[i] ? c / v.hocuspocus[i] : null)
    const rs = DOORS.map(d => ratio(d).map(x => x == null ? '–' : x.toFixed(2)).join(' ; ') || '–').join(' | ')
    let t = '–'
    let test = null
    if (target?.ratio) { t = `≤ ${target.ratio} × Hocuspocus`; test = (d) => ratio(d).map(x => x != null && x <= target.ratio) }
    if (target?.max != null) { t = `≤ ${target.max}`; test = (d) => v[d].map(c => c != null && c <= target.max) }
    if (target?.min != null) { t = `= ${target.min}`; test = (d) => v[d].map(c => c != null && c >= target.min) }
    if (target?.vs) { t = `≤ ${target.vs}`; test = (d) => v[d].map((c, i) => c != null && v[target.vs][i] != null && c <= v[target.vs][i]) }
    const met = test ? DOORS.map(d => test(d).map(ok => ok ? 'yes' : 'NO').join(' ; ') || '?').join(' | ') : '– | –'
    console.log(`| ${label} | ${ALL.map(s => cell(v[s])).join(' | ')} | ${rs} | ${t} | ${met} |`)
  }
  console.log('\nWho was busy (server CPU % / generator CPU % / worst worker event-loop p99 ms / other load %)\n')
  console.log('| scenario | collabd Hocuspocus door | collabd y-websocket door | Hocuspocus | y-websocket |')
  console.log('|---|---|---|---|---|')
  for (const name of [...new Set(runs.filter(x => DOORS.includes(x.srv)).map(x => x.name))].sort()) {
    if (name.startsWith('s3-')) continue
    const cells = ALL.map(s => { const a = get(name, s, busy); return a.length ? a.map(x => x ?? '–').join(' ; ') : 'not run' })
    console.log(`| ${name}${name.startsWith('s4-') ? ' (build)' : ''} | ${cells.join(' | ')} |`)
  }
}

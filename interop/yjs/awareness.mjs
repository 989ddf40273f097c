// Random awareness histories through a y-websocket server's Awareness (the
// real y-protocols): clients set, change and clear their states; their
// updates reach the server dropped, duplicated and out of order; the
// server sometimes removes a client (its connection closed). Each step
// records what the server re-broadcasts (encodeAwarenessUpdate of the
// clients added, updated and removed) and, at the end, the full state a
// joiner gets. protocol/yjs's Awareness must produce the same bytes.
//
//   node awareness.mjs --seed 1 --cases 50 --out awareness.jsonl
import * as Y from 'yjs'
import { writeFileSync } from 'node:fs'
import * as aw from 'y-protocols/awareness'
import { b64 } from './lib/dump.mjs'

const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) => (x.startsWith('--') ? [...a, [x.slice(2), all[i + 1]]] : a), []))
function mulberry32 (a) {
  return () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a); t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296 }
}

function makeCase (seed) {
  const rnd = mulberry32(seed); const int = n => Math.floor(rnd() * n); const pick = a => a[int(a.length)]
  const serverDoc = new Y.Doc(); serverDoc.clientID = 1
  const server = new aw.Awareness(serverDoc)
  server.setLocalState(null) // as y-websocket's server does
  let last = null
  server.on('update', ({ added, updated, removed }) => { last = aw.encodeAwarenessUpdate(server, added.concat(updated, removed)) })
  const clients = []
  for (let i = 0, n = 1 + int(4); i < n; i++) {
    const d = new Y.Doc(); d.clientID = 10 + i * 1000 + int(900)
    const a = new aw.Awareness(d)
    clients.push(a)
  }
  const inflight = []
  const steps = []
  for (let s = 0, n = 10 + int(40); s < n; s++) {
    const r = rnd()
    const c = pick(clients)
    if (r < 0.35) {
      c.setLocalState(rnd() < 0.15 ? null : { user: { name: pick(['Ann', 'Zoë', '李']), color: pick(['#f00', '#0f0']) }, cursor: rnd() < 0.5 ? null : { anchor: int(50), head: int(50) } })
      inflight.push(aw.encodeAwarenessUpdate(c, [c.clientID]))
    } else if (r < 0.5) {
      c.setLocalStateField('cursor', { anchor: int(9), head: int(9) })
      inflight.push(aw.encodeAwarenessUpdate(c, [c.clientID]))
    } else if (r < 0.85 && inflight.length) {
      const i = int(inflight.length)
      const u = inflight[i]
      if (rnd() < 0.8) inflight.splice(i, 1) // else: delivered again later (a duplicate)
      if (rnd() < 0.1) continue // dropped
      last = null
      aw.applyAwarenessUpdate(server, u, 'conn')
      steps.push({ apply: b64(u), broadcast: last && b64(last) })
    } else if (r < 0.93) {
      const who = clients.filter(() => rnd() < 0.5).map(a => a.clientID)
      last = null
      aw.removeAwarenessStates(server, who, null)
      steps.push({ remove: who, broadcast: last && b64(last) })
    } else {
      // a merged update of several clients, as a relay would send it
      const who = clients.filter(() => rnd() < 0.6)
      if (who.length === 0) continue
      // each part is [count 1, entry]: join the entries under one count
      const parts = who.map(a => aw.encodeAwarenessUpdate(a, [a.clientID]).slice(1))
      const u = new Uint8Array([who.length, ...parts.flatMap(e => Array.from(e))])
      last = null
      aw.applyAwarenessUpdate(server, u, 'conn')
      steps.push({ apply: b64(u), broadcast: last && b64(last) })
    }
  }
  const full = aw.encodeAwarenessUpdate(server, Array.from(server.getStates().keys()))
  for (const a of clients) a.destroy()
  server.destroy()
  return { seed, steps, full: b64(full), clients: Array.from(server.getStates().keys()) }
}

const seed = Number(args.seed ?? 1); const cases = Number(args.cases ?? 50)
const lines = []
for (let c = 0; c < cases; c++) lines.push(JSON.stringify(makeCase(seed * 100003 + c)))
writeFileSync(args.out ?? '/dev/stdout', lines.join('\n') + '\n')

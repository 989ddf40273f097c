// Random rich-text histories (strings, formatting, embeds, deletions) by
// several Yjs clients with concurrent branches. For each case, a server
// document applies a prefix of the updates one by one, then the rest merged
// into one update; the expectation is the delta a Yjs observer of the text
// sees for that last transaction (YTextEvent.delta) — what the Go engine's
// Observe must report.
//
//   node changes.mjs --seed 1 --cases 300 --out changes.jsonl
import * as Y from 'yjs'
import { writeFileSync } from 'node:fs'
import { b64 } from './lib/dump.mjs'

const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) => (x.startsWith('--') ? [...a, [x.slice(2), all[i + 1]]] : a), []))
function mulberry32 (a) {
  return () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a); t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296 }
}

function makeCase (seed) {
  const rnd = mulberry32(seed); const int = n => Math.floor(rnd() * n); const pick = a => a[int(a.length)]
  const attrs = () => pick([{}, { bold: true }, { bold: null }, { italic: true }, { link: { href: 'https://x/' + int(3) } }, { color: pick(['red', 'blue']) }, { bold: true, italic: true }, { link: null }])
  const n = 2 + int(2)
  const docs = []; const updates = []
  for (let i = 0; i < n; i++) {
    const d = new Y.Doc(); d.clientID = 1 + i * 7 + int(5)
    d.on('update', u => updates.push({ from: i, u }))
    docs.push(d)
  }
  const sync = (a, b) => Y.applyUpdate(docs[b], Y.encodeStateAsUpdate(docs[a], Y.encodeStateVector(docs[b])))
  const steps = 4 + int(25)
  for (let s = 0; s < steps; s++) {
    const i = int(n); const t = docs[i].getText('t'); const len = t.length
    const r = rnd()
    if (r < 0.4 || len === 0) {
      t.insert(int(len + 1), pick(['a', 'bc', 'héllo ', ' 😀 ', 'x\n', 'word ']), rnd() < 0.5 ? attrs() : undefined)
    } else if (r < 0.55) {
      t.insertEmbed(int(len + 1), { image: 'i' + int(4) }, rnd() < 0.3 ? attrs() : undefined)
    } else if (r < 0.75) {
      const at = int(len); t.delete(at, 1 + int(Math.min(5, len - at)))
    } else if (r < 0.95) {
      const at = int(len); t.format(at, 1 + int(len - at), attrs())
    } else {
      docs[i].transact(() => { t.insert(int(len + 1), 'tx'); t.format(0, Math.min(2, t.length), { bold: true }) })
    }
    if (rnd() < 0.35) { const a = int(n); const b = int(n); if (a !== b) sync(a, b) }
  }
  const k = int(updates.length)
  const base = updates.slice(0, k).map(x => x.u)
  const rest = updates.slice(k).map(x => x.u)
  const server = new Y.Doc()
  for (const u of base) Y.applyUpdate(server, u)
  const text = server.getText('t')
  const before = text.toDelta()
  // The first event is the update's; a second one may follow for the
  // formatting cleanup Yjs runs after it (on a text fetched with getText).
  // The text after is read in the first, before that cleanup.
  let delta = null; let after = null
  text.observe(e => { if (delta === null) { delta = e.delta; after = text.toDelta() } })
  const next = rest.length ? Y.mergeUpdates(rest) : new Uint8Array([0, 0])
  Y.applyUpdate(server, next)
  if (delta === null) after = text.toDelta()
  return { seed, base: base.map(b64), next: b64(next), before, delta, after }
}

const seed = Number(args.seed ?? 1); const cases = Number(args.cases ?? 100)
const lines = []
for (let c = 0; c < cases; c++) lines.push(JSON.stringify(makeCase(seed * 100003 + c)))
writeFileSync(args.out ?? '/dev/stdout', lines.join('\n') + '\n')

// Checks the Go engine's restore (crdt/yjs RestoreRoot) against real Yjs.
//
//   node restore.mjs gen --seed 1 --cases 100 --out cases.jsonl
//   node restore.mjs check restored.jsonl
//
// gen: per case, real Yjs builds a document with a Y.Map "m" (JSON values,
// binary, nested Y.Map / Y.Array / Y.Text), a Y.Array "a" (the same) and a
// ProseMirror-shaped Y.XmlFragment "f" (paragraphs, headings, blockquotes,
// horizontal rules; XmlText runs with strong / em / code / link marks as
// y-prosemirror stores them). The state at one point is the version; more
// edits by other clients make the later state; an edit by client 99 on the
// later state is concurrent with the restore.
// Line: { seed, version, later, concurrent } (base64 v1).
//
// check: each line is a gen case plus updates (base64 v1: what Go's restore
// made on the later state) and goConcurrent (Go's dump of later + updates +
// concurrent). Yjs applies the updates to the later state: every root's
// toJSON() and dump must equal the version's, and the fragment's ProseMirror
// JSON (y-prosemirror, prosemirror-schema-basic) too; later + updates +
// concurrent and later + concurrent + updates must give the same document,
// and Go's.
// Prints {"checked":n,"failed":k,"failures":[…]}; exits 1 on a failure.
import * as Y from 'yjs'
import { readFileSync, writeFileSync } from 'node:fs'
import { schema } from 'prosemirror-schema-basic'
import { yXmlFragmentToProseMirrorRootNode } from 'y-prosemirror'
import { b64, unb64, dumpDoc } from './lib/dump.mjs'

const roots = { m: 'Map', a: 'Array', f: 'XmlFragment' }

function mulberry32 (a) {
  return () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a); t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296 }
}

function editor (rnd) {
  const int = n => Math.floor(rnd() * n); const pick = a => a[int(a.length)]
  const word = () => pick(['alpha ', 'beta', 'γάμμα', ' 😀 ', 'x', 'end. '])
  const json = depth => {
    switch (int(depth < 2 ? 8 : 6)) {
      case 0: return null
      case 1: return rnd() < 0.5
      case 2: return int(100) - 50
      case 3: return int(1000) / 8
      case 4: return new Uint8Array([int(256), int(256)])
      case 6: { const a = []; for (let i = int(3); i > 0; i--) a.push(json(depth + 1)); return a }
      case 7: { const o = {}; for (let i = int(3); i > 0; i--) o['k' + int(4)] = json(depth + 1); return o }
    }
    return word()
  }
  const text = () => { const t = new Y.Text(); t.insert(0, word()); if (rnd() < 0.5) t.insert(t.length, word(), { bold: true }); return t }
  const value = depth => {
    if (depth < 2 && rnd() < 0.25) {
      switch (int(3)) {
        case 0: { const m = new Y.Map(); for (let i = int(3); i > 0; i--) m.set('k' + int(4), value(depth + 1)); return m }
        case 1: { const a = new Y.Array(); for (let i = int(3); i > 0; i--) a.push([value(depth + 1)]); return a }
        default: return text()
      }
    }
    return json(0)
  }
  const marks = () => {
    const m = {}
    if (rnd() < 0.3) m.strong = {}
    if (rnd() < 0.3) m.em = {}
    if (rnd() < 0.15) m.link = { href: 'https://x/' + int(3), title: rnd() < 0.5 ? 't' : null }
    if (rnd() < 0.1) m.code = {}
    return m
  }
  const xmlText = () => { const t = new Y.XmlText(); for (let i = 1 + int(3); i > 0; i--) t.insert(t.length, word(), marks()); return t }
  const block = () => {
    switch (int(5)) {
      case 0: { const h = new Y.XmlElement('heading'); h.setAttribute('level', 1 + int(3)); h.insert(0, [xmlText()]); return h }
      case 1: { const q = new Y.XmlElement('blockquote'); const p = new Y.XmlElement('paragraph'); p.insert(0, [xmlText()]); q.insert(0, [p]); return q }
      case 2: return new Y.XmlElement('horizontal_rule')
      default: { const p = new Y.XmlElement('paragraph'); p.insert(0, [xmlText()]); return p }
    }
  }
  // every shared type under t (t included)
  const types = (t, out = []) => {
    out.push(t)
    const kids = t instanceof Y.Map ? [...t.values()] : (t instanceof Y.Array || t instanceof Y.XmlFragment) ? t.toArray() : []
    for (const c of kids) if (c instanceof Y.AbstractType) types(c, out)
    return out
  }
  const blocks = f => { const out = []; for (const t of types(f)) if (t instanceof Y.XmlElement && t.nodeName !== 'horizontal_rule' && t.nodeName !== 'blockquote') out.push(t); return out }
  const texts = f => types(f).filter(t => t instanceof Y.XmlText)
  return function edit (doc) {
    const r = int(3)
    if (r === 0) {
      const ms = types(doc.getMap('m')).filter(t => t instanceof Y.Map)
      const m = pick(ms); const k = 'k' + int(5)
      if (m.has(k) && rnd() < 0.3) m.delete(k)
      else m.set(k, value(ms.indexOf(m) === 0 ? 0 : 1))
    } else if (r === 1) {
      const as = types(doc.getArray('a')).filter(t => t instanceof Y.Array)
      const a = pick(as)
      if (a.length && rnd() < 0.35) { const p = int(a.length); a.delete(p, 1 + int(Math.min(2, a.length - p))) } else {
        const vs = []; for (let i = 1 + int(3); i > 0; i--) vs.push(value(as.indexOf(a) === 0 ? 0 : 1))
        a.insert(int(a.length + 1), vs)
      }
    } else {
      const f = doc.getXmlFragment('f')
      const ts = texts(f); const bs = blocks(f)
      const q = rnd()
      if (ts.length && q < 0.45) {
        const t = pick(ts); const len = t.length; const s = rnd()
        if (s < 0.5) t.insert(int(len + 1), word(), marks())
        else if (s < 0.75 && len > 0) { const p = int(len); t.format(p, 1 + int(len - p), rnd() < 0.5 ? { strong: {} } : { em: null }) } else if (len > 1) { const p = int(len - 1); const cp = t.toString().charCodeAt(p); if (!(cp >= 0xDC00 && cp <= 0xDFFF)) t.delete(p, 1) }
      } else if (bs.length && q < 0.55) {
        const h = bs.filter(b => b.nodeName === 'heading'); if (h.length) pick(h).setAttribute('level', 1 + int(3))
      } else if (f.length && q < 0.7) f.delete(int(f.length), 1)
      else f.insert(int(f.length + 1), [block()])
    }
  }
}

function gen (seed) {
  const rnd = mulberry32(seed); const int = n => Math.floor(rnd() * n)
  const edit = editor(rnd)
  const doc = new Y.Doc(); doc.clientID = 1
  for (let i = 3 + int(20); i > 0; i--) doc.transact(() => edit(doc))
  const version = Y.encodeStateAsUpdate(doc)
  const other = new Y.Doc(); other.clientID = 2
  Y.applyUpdate(other, version)
  for (let i = int(20); i > 0; i--) {
    const d = rnd() < 0.5 ? doc : other
    d.transact(() => edit(d))
    Y.applyUpdate(d === doc ? other : doc, Y.encodeStateAsUpdate(d))
  }
  const later = Y.encodeStateAsUpdate(doc)
  const conc = new Y.Doc(); conc.clientID = 99
  Y.applyUpdate(conc, later)
  const sv = Y.encodeStateVector(conc)
  for (let i = 1 + int(3); i > 0; i--) conc.transact(() => edit(conc))
  return { seed, version: b64(version), later: b64(later), concurrent: b64(Y.encodeStateAsUpdate(conc, sv)) }
}

const load = updates => { const d = new Y.Doc(); d.gc = true; for (const u of updates) Y.applyUpdate(d, u); return d }
const pmJSON = d => JSON.stringify(yXmlFragmentToProseMirrorRootNode(d.getXmlFragment('f'), schema).toJSON())
const rootJSON = (d, name) => JSON.stringify(name === 'm' ? d.getMap('m').toJSON() : name === 'a' ? d.getArray('a').toJSON() : d.getXmlFragment('f').toJSON())

// canon: a JSON text with every object's keys sorted (Go's dump keeps
// attribute and Any object keys in their stored order).
const canon = s => JSON.stringify(JSON.parse(s), (k, v) => v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map(x => [x, v[x]])) : v)

function check (c) {
  const fail = []
  const ups = c.updates.map(unb64); const later = unb64(c.later); const conc = unb64(c.concurrent)
  const v = load([unb64(c.version)])
  const r = load([later, ...ups])
  for (const name of Object.keys(roots)) {
    const got = rootJSON(r, name); const want = rootJSON(v, name)
    if (got !== want) fail.push({ what: `toJSON of ${name}`, got, want })
  }
  const dr = JSON.stringify(dumpDoc(r, roots)); const dv = JSON.stringify(dumpDoc(v, roots))
  if (dr !== dv) fail.push({ what: 'dump after restore', got: dr, want: dv })
  if (pmJSON(r) !== pmJSON(v)) fail.push({ what: 'ProseMirror JSON', got: pmJSON(r), want: pmJSON(v) })
  const x = load([later, ...ups, conc]); const y = load([later, conc, ...ups])
  const dx = JSON.stringify(dumpDoc(x, roots)); const dy = JSON.stringify(dumpDoc(y, roots))
  if (dx !== dy) fail.push({ what: 'concurrent orders', got: dx, want: dy })
  if (canon(c.goConcurrent) !== canon(dx)) fail.push({ what: 'Go after the concurrent edit', got: c.goConcurrent, want: dx })
  return fail
}

const [mode, ...rest] = process.argv.slice(2)
if (mode === 'gen') {
  const args = Object.fromEntries(rest.reduce((a, x, i, all) => (x.startsWith('--') ? [...a, [x.slice(2), all[i + 1]]] : a), []))
  const out = []
  for (let i = 0; i < Number(args.cases ?? 50); i++) out.push(JSON.stringify(gen(Number(args.seed ?? 1) + i)))
  writeFileSync(args.out, out.join('\n') + '\n')
} else if (mode === 'check') {
  const lines = readFileSync(rest[0], 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l))
  const failures = []
  for (const c of lines) for (const f of check(c)) failures.push({ seed: c.seed, ...f })
  process.stdout.write(JSON.stringify({ checked: lines.length, failed: failures.length, failures: failures.slice(0, 5) }) + '\n')
  process.exit(failures.length ? 1 : 0)
} else {
  process.stderr.write('usage: restore.mjs gen --seed N --cases N --out FILE | check FILE\n')
  process.exit(2)
}

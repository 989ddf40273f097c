// Random multi-client Yjs histories for the Go engine's differential test.
//
//   node histories.mjs --seed 1 --cases 200 --out cases.jsonl [--ops 60] [--clients 3]
//
// Each output line is one case: the updates every client emitted (base64 v1),
// a few Y.mergeUpdates batches of them, the merged final state, and what real
// Yjs computes from all updates: canonical dump, toJSON, state vector and
// delete set (see lib/dump.mjs). Same seed, same file.
import * as Y from 'yjs'
import { writeFileSync } from 'node:fs'
import { b64, dumpDoc, jsonDoc, svOf, dsOf, loadAll } from './lib/dump.mjs'

const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) => (x.startsWith('--') ? [...a, [x.slice(2), all[i + 1]]] : a), []))
const seed0 = Number(args.seed ?? 1)
const ncases = Number(args.cases ?? 50)
const maxOps = Number(args.ops ?? 60)
const maxClients = Number(args.clients ?? 3)

function mulberry32 (a) {
  return () => {
    a |= 0; a = a + 0x6D2B79F5 | 0
    let t = Math.imul(a ^ a >>> 15, 1 | a)
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t
    return ((t ^ t >>> 14) >>> 0) / 4294967296
  }
}

export const ROOTS = { t: 'Text', m: 'Map', a: 'Array', x: 'XmlFragment' }

export function makeCase (seed, opts = {}) {
  const rnd = mulberry32(seed)
  const int = n => Math.floor(rnd() * n)
  const pick = a => a[int(a.length)]
  const chars = ['a', 'b', 'c', 'd', 'e', ' ', 'é', '中', '😀', '👍🏽', '\n', 'x', 'y', 'z']
  const str = () => { let s = ''; const n = 1 + int(4); for (let i = 0; i < n; i++) s += pick(chars); return s }
  const jsonVal = (depth = 0) => {
    switch (int(depth > 1 ? 6 : 8)) {
      case 0: return int(1000) - 500
      case 1: return rnd() * 1e6
      case 2: return str()
      case 3: return rnd() < 0.5
      case 4: return null
      case 5: return 2 ** 40 + int(100)
      case 6: return [jsonVal(depth + 1), jsonVal(depth + 1)]
      default: return { k: jsonVal(depth + 1), [str()]: jsonVal(depth + 1) }
    }
  }
  const nclients = 2 + int(Math.max(1, (opts.clients ?? maxClients) - 1))
  const docs = []
  const updates = []
  for (let i = 0; i < nclients; i++) {
    const d = new Y.Doc({ gc: true })
    d.clientID = 1 + int(50) * 10 + i // distinct, sometimes larger ids sort first
    d.on('update', u => updates.push(u))
    docs.push(d)
  }
  // every shared type reachable in a doc, with its kind
  const typesOf = d => {
    const out = []
    const walk = t => {
      out.push(t)
      if (t instanceof Y.Map) for (const v of t.values()) { if (v instanceof Y.AbstractType) walk(v) }
      else if (t instanceof Y.Array || t instanceof Y.XmlFragment) for (const v of t.toArray()) { if (v instanceof Y.AbstractType) walk(v) }
      if (t instanceof Y.Text) for (const op of t.toDelta()) { if (op.insert instanceof Y.AbstractType) walk(op.insert) }
    }
    walk(d.getText('t')); walk(d.getMap('m')); walk(d.getArray('a')); walk(d.getXmlFragment('x'))
    return out
  }
  const newType = () => {
    switch (int(4)) {
      case 0: { const m = new Y.Map(); m.set('init', jsonVal()); return m }
      case 1: { const a = new Y.Array(); a.insert(0, [jsonVal()]); return a }
      case 2: { const t = new Y.Text(); t.insert(0, str()); return t }
      default: return new Y.Map()
    }
  }
  const xmlNode = () => {
    if (rnd() < 0.4) { const t = new Y.XmlText(); t.insert(0, str()); return t }
    const e = new Y.XmlElement(pick(['paragraph', 'heading', 'blockquote']))
    if (rnd() < 0.5) e.setAttribute('level', String(1 + int(3)))
    const t = new Y.XmlText(); t.insert(0, str(), rnd() < 0.3 ? { bold: true } : undefined)
    e.insert(0, [t])
    return e
  }
  // Positions are moved off the middle of a surrogate pair: Yjs replaces a
  // split pair with U+FFFD in the replica that splits it only, so histories
  // that split pairs do not converge even in Yjs (goldens cover the split itself).
  const textOp = t => {
    const high = []
    for (const op of t.toDelta()) {
      if (typeof op.insert === 'string') for (let i = 0; i < op.insert.length; i++) { const c = op.insert.charCodeAt(i); high.push(c >= 0xD800 && c <= 0xDBFF) } else high.push(false)
    }
    const len = t.length
    const at = p => (p > 0 && high[p - 1] ? p - 1 : p)
    const span = (p, n) => { let e = at(Math.min(len, p + n)); if (e <= p) e = Math.min(len, p + 2); return e - p }
    const r = rnd()
    if (r < 0.45 || len === 0) {
      const attrs = rnd() < 0.25 ? pick([{ bold: true }, { italic: true }, { link: { href: 'x' } }, { bold: null }]) : undefined
      t.insert(at(int(len + 1)), str(), attrs)
    } else if (r < 0.7) {
      const p = at(int(len)); t.delete(p, span(p, 1 + int(3)))
    } else if (r < 0.85) {
      const p = at(int(len)); t.format(p, span(p, 1 + int(4)), pick([{ bold: true }, { bold: null }, { italic: true }, { color: '#f00' }]))
    } else if (r < 0.93) {
      t.insertEmbed(at(int(len + 1)), { image: str() }, rnd() < 0.3 ? { bold: true } : undefined)
    } else if (!(t instanceof Y.XmlText)) {
      t.insertEmbed(at(int(len + 1)), newType())
    } else {
      t.insert(at(int(len + 1)), str())
    }
  }
  const op = d => {
    const types = typesOf(d)
    const t = pick(types)
    if (t instanceof Y.Text) return textOp(t)
    if (t instanceof Y.XmlElement && rnd() < 0.3) {
      if (rnd() < 0.7) t.setAttribute(pick(['level', 'class', 'id']), str())
      else t.removeAttribute(pick(['level', 'class', 'id']))
      return
    }
    if (t instanceof Y.XmlFragment) {
      const len = t.length
      if (len === 0 || rnd() < 0.6) t.insert(int(len + 1), [xmlNode()])
      else { const p = int(len); t.delete(p, 1 + int(Math.min(2, len - p))) }
      return
    }
    if (t instanceof Y.Map) {
      const k = pick(['a', 'b', 'c', 'd', 'e'])
      const r = rnd()
      if (r < 0.55) t.set(k, jsonVal())
      else if (r < 0.65) t.set(k, new Uint8Array([int(256), int(256)]))
      else if (r < 0.8) t.set(k, newType())
      else t.delete(k)
      return
    }
    if (t instanceof Y.Array) {
      const len = t.length
      const r = rnd()
      if (r < 0.5 || len === 0) t.insert(int(len + 1), [jsonVal(), ...(rnd() < 0.3 ? [jsonVal()] : [])])
      else if (r < 0.65) t.insert(int(len + 1), [newType()])
      else if (r < 0.7) t.insert(int(len + 1), [new Uint8Array([1, 2, int(256)])])
      else { const p = int(len); t.delete(p, 1 + int(Math.min(3, len - p))) }
    }
  }
  const sync = (a, b) => {
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
  }
  const nops = 1 + int(opts.ops ?? maxOps)
  for (let i = 0; i < nops; i++) {
    const d = pick(docs)
    if (rnd() < 0.15) { const e = pick(docs); if (e !== d) sync(d, e); continue }
    if (rnd() < 0.2) { d.transact(() => { op(d); op(d) }) } else { op(d) }
  }
  // converge everyone
  for (let round = 0; round < 2; round++) for (const a of docs) for (const b of docs) if (a !== b) sync(a, b)
  const ref = loadAll(updates)
  const dump = dumpDoc(ref, ROOTS)
  // Yjs replicas themselves can end with different views: each one's
  // formatting cleanup depends on the order it received updates in. The
  // reference is a server's view: a fresh document receiving every update
  // in the order they were made, one transaction each.
  const replicasAgree = docs.every(d => JSON.stringify(dumpDoc(d, ROOTS)) === JSON.stringify(dump))
  // a few merged batches (mergeUpdates makes Skip structs for the gaps)
  const merged = []
  const mergedFrom = []
  for (let i = 0; i < 3 && updates.length > 2; i++) {
    const from = int(updates.length); const to = Math.min(updates.length, from + 1 + int(6))
    const pickIdx = []
    for (let j = from; j < to; j++) if (rnd() < 0.7) pickIdx.push(j)
    if (pickIdx.length) { merged.push(b64(Y.mergeUpdates(pickIdx.map(j => updates[j])))); mergedFrom.push(pickIdx) }
  }
  // Y.diffUpdate of the state and of each merged batch against the state
  // vector of the first half of the updates
  const half = loadAll(updates.slice(0, updates.length >> 1))
  const halfSV = Y.encodeStateVector(half)
  const diffs = [Y.encodeStateAsUpdate(ref), ...merged.map(m => Buffer.from(m, 'base64'))].map(u => ({ update: b64(u), out: b64(Y.diffUpdate(u, halfSV)) }))
  return {
    seed,
    replicasAgree,
    halfSV: b64(halfSV),
    diffs,
    roots: ROOTS,
    updates: updates.map(b64),
    merged,
    mergedFrom,
    state: b64(Y.encodeStateAsUpdate(ref)),
    stateV2: b64(Y.encodeStateAsUpdateV2(ref)),
    // a document loaded from the state re-encoded (merges can differ from ref's)
    stateV2Reloaded: b64(Y.encodeStateAsUpdateV2(loadAll([Y.encodeStateAsUpdate(ref)]))),
    updatesV2: updates.slice(0, 8).map(u => b64(Y.convertUpdateFormatV1ToV2(u))),
    // what Yjs makes of those in v1 again (it drops the parentSub bit of items with an origin)
    updatesV2V1: updates.slice(0, 8).map(u => b64(Y.convertUpdateFormatV2ToV1(Y.convertUpdateFormatV1ToV2(u)))),
    dump,
    json: jsonDoc(ref, ROOTS),
    sv: svOf(ref),
    ds: dsOf(ref)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = []
  for (let i = 0; i < ncases; i++) out.push(JSON.stringify(makeCase(seed0 + i)))
  const text = out.join('\n') + '\n'
  if (args.out) writeFileSync(args.out, text); else process.stdout.write(text)
}

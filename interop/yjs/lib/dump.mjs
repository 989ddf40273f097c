// Canonical views of a Y.Doc, shared by every oracle script. The Go engine
// produces the same shapes (crdt/yjs dumpDoc), so the two compare as JSON.
import * as Y from 'yjs'

export const b64 = u => Buffer.from(u).toString('base64')
export const unb64 = s => new Uint8Array(Buffer.from(s, 'base64'))

export function dumpVal (v) {
  if (v instanceof Y.AbstractType) return dumpType(v)
  if (v instanceof Uint8Array) return { $bin: b64(v) }
  if (v instanceof Y.Doc) return { guid: v.guid }
  if (v === undefined) return { $undefined: true }
  if (typeof v === 'bigint') return { $bigint: v.toString() }
  if (Array.isArray(v)) return v.map(dumpVal)
  if (v !== null && typeof v === 'object') {
    const o = {}
    for (const k of Object.keys(v).sort()) o[k] = dumpVal(v[k])
    return o
  }
  return v
}

function dumpDelta (t) {
  return t.toDelta().map(op => {
    const o = { insert: typeof op.insert === 'string' ? op.insert : dumpVal(op.insert) }
    if (op.attributes) o.attributes = dumpVal(op.attributes)
    return o
  })
}

function dumpMap (t) {
  const o = {}
  for (const k of [...t.keys()].sort()) o[k] = dumpVal(t.get(k))
  return o
}

export function dumpType (t) {
  if (t instanceof Y.XmlText) return { xmltext: dumpDelta(t), attrs: dumpVal(t.getAttributes()) }
  if (t instanceof Y.Text) return { text: dumpDelta(t) }
  if (t instanceof Y.XmlElement) return { el: t.nodeName, attrs: dumpVal(t.getAttributes()), children: t.toArray().map(dumpType) }
  if (t instanceof Y.XmlHook) return { hook: t.hookName, map: dumpMap(t) }
  if (t instanceof Y.XmlFragment) return { frag: t.toArray().map(dumpType) }
  if (t instanceof Y.Map) return { map: dumpMap(t) }
  if (t instanceof Y.Array) return { array: t.toArray().map(dumpVal) }
  return { unknown: true }
}

const getters = {
  Text: (d, n) => d.getText(n),
  Map: (d, n) => d.getMap(n),
  Array: (d, n) => d.getArray(n),
  XmlFragment: (d, n) => d.getXmlFragment(n)
}

export function rootOf (doc, name, kind) { return getters[kind](doc, name) }

// dumpDoc: { name: dump } for the given roots ({ name: kind }).
export function dumpDoc (doc, roots) {
  const o = {}
  for (const name of Object.keys(roots).sort()) o[name] = dumpType(rootOf(doc, name, roots[name]))
  return o
}

// toJSON of each root as Yjs computes it (XmlFragment: its XML string).
export function jsonDoc (doc, roots) {
  const o = {}
  for (const name of Object.keys(roots).sort()) o[name] = rootOf(doc, name, roots[name]).toJSON()
  return JSON.parse(JSON.stringify(o, (k, v) => typeof v === 'bigint' ? Number(v) : v))
}

export function svOf (doc) {
  const sv = Y.decodeStateVector(Y.encodeStateVector(doc))
  const o = {}
  for (const [c, k] of sv) o[c] = k
  return o
}

// Delete set of the doc's store: [[client, [[clock, len], …]], …], highest client first.
export function dsOf (doc) {
  const ds = Y.createDeleteSetFromStructStore(doc.store)
  return [...ds.clients.entries()].sort((a, b) => b[0] - a[0]).map(([c, rs]) => [c, rs.map(r => [r.clock, r.len])])
}

// A fresh doc holding all updates, applied one by one as a server receives
// them: each in a transaction of its own. (Yjs marks a transaction that
// applies an update as remote, so after each one its receiver-side
// formatting cleanup runs, as in any Yjs peer; the Go engine does the same
// and reports the cleanup as ApplyResult.Cleanup.)
export function loadAll (updates) {
  const doc = new Y.Doc({ gc: true })
  for (const u of updates) Y.applyUpdate(doc, u)
  return doc
}

// Golden vectors: small scenarios made by real Yjs, committed under
// crdt/yjs/testdata/golden. Regenerate only on purpose (a new scenario or a
// new pinned Yjs), never to make a test pass:
//
//   node golden.mjs > ../../crdt/yjs/testdata/golden/v1.jsonl
//
// Each line: { name, roots, updates (base64 v1, in the order a Yjs doc
// received them), state (encodeStateAsUpdate of that doc), stateV2,
// dump/json/sv/ds of that doc }. The Go test re-encodes every update and
// state byte for byte, applies the updates in order and compares views.
import * as Y from 'yjs'
import { b64, dumpDoc, jsonDoc, svOf, dsOf } from './lib/dump.mjs'

const ROOTS = { t: 'Text', m: 'Map', a: 'Array', x: 'XmlFragment' }
const scenarios = []
const scenario = (name, fn) => scenarios.push({ name, fn })

// A group of docs whose updates are recorded in the order the reference doc receives them.
function world (n) {
  const docs = []
  const updates = []
  for (let i = 0; i < n; i++) {
    const d = new Y.Doc()
    d.clientID = 100 + i * 7
    d.on('update', u => updates.push(u))
    docs.push(d)
  }
  const sync = (a, b) => Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
  return { docs, updates, sync }
}

scenario('text-format-embed', () => {
  const { docs, updates } = world(1)
  const t = docs[0].getText('t')
  t.insert(0, 'Hello world')
  t.format(0, 5, { bold: true })
  t.insert(5, ',', { italic: true })
  t.insertEmbed(6, { image: 'a.png' }, { link: 'x' })
  t.delete(8, 2)
  t.format(2, 3, { bold: null, color: '#f00' })
  t.insert(0, 'é中😀👍🏽')
  return updates
})

scenario('map-values', () => {
  const { docs, updates } = world(1)
  const m = docs[0].getMap('m')
  m.set('int', 42); m.set('neg', -7); m.set('big', 2 ** 31); m.set('float', 1.5); m.set('double', 0.1)
  m.set('str', 'x"y\\z\n'); m.set('t', true); m.set('f', false); m.set('null', null)
  m.set('arr', [1, 'a', [null]]); m.set('obj', { b: 1, a: { c: [] } }); m.set('bin', new Uint8Array([0, 1, 255]))
  m.set('bigint', 1234567890123456789n)
  m.set('undef', undefined)
  m.set('int', 43)
  m.delete('f')
  const inner = new Y.Map(); m.set('nested', inner); inner.set('k', 'v')
  const sub = new Y.Doc({ guid: 'sub-1' }); m.set('doc', sub)
  return updates
})

scenario('array-nested', () => {
  const { docs, updates } = world(1)
  const a = docs[0].getArray('a')
  a.insert(0, [1, 2, 3, 'x', { o: 1 }])
  const t = new Y.Text('inner'); a.insert(2, [t])
  const arr = new Y.Array(); a.push([arr]); arr.push(['deep'])
  a.delete(0, 1)
  a.insert(1, [new Uint8Array([9])])
  return updates
})

scenario('xml-prosemirror', () => {
  const { docs, updates } = world(1)
  const x = docs[0].getXmlFragment('x')
  const p = new Y.XmlElement('paragraph'); const h = new Y.XmlElement('heading')
  h.setAttribute('level', '2')
  x.insert(0, [h, p])
  const ht = new Y.XmlText(); h.insert(0, [ht]); ht.insert(0, 'Title')
  const pt = new Y.XmlText(); p.insert(0, [pt]); pt.insert(0, 'Some bold text', {}); pt.format(5, 4, { bold: {} })
  pt.format(0, 4, { link: { href: 'https://x' } })
  const hook = new Y.XmlHook('widget'); x.insert(2, [hook]); hook.set('k', 1)
  return updates
})

scenario('delete-nested-gc', () => {
  const { docs, updates } = world(1)
  const m = docs[0].getMap('m')
  const inner = new Y.Map(); m.set('box', inner)
  inner.set('a', 1); const tt = new Y.Text(); inner.set('t', tt); tt.insert(0, 'gone')
  const a = docs[0].getArray('a'); const ia = new Y.Array(); a.push([ia]); ia.push([1, 2, 3])
  m.delete('box')
  a.delete(0, 1)
  m.set('after', 'ok')
  return updates
})

scenario('concurrent-three', () => {
  const { docs, updates, sync } = world(3)
  docs[0].getText('t').insert(0, 'abc')
  sync(docs[0], docs[1]); sync(docs[0], docs[2])
  docs[0].getText('t').insert(1, 'X')
  docs[1].getText('t').insert(1, 'Y')
  docs[2].getText('t').insert(1, 'Z')
  docs[1].getText('t').delete(0, 2)
  docs[2].getMap('m').set('k', 2); docs[0].getMap('m').set('k', 0); docs[1].getMap('m').set('k', 1)
  for (const a of docs) for (const b of docs) if (a !== b) sync(a, b)
  return updates
})

scenario('surrogate-split', () => {
  const { docs, updates, sync } = world(2)
  docs[0].getText('t').insert(0, 'a😀b')
  sync(docs[0], docs[1])
  docs[1].getText('t').insert(2, 'X') // between the two halves of 😀
  sync(docs[1], docs[0])
  docs[0].getText('t').delete(1, 1)
  return updates
})

scenario('merged-and-pending', () => {
  const { docs, updates, sync } = world(2)
  const t = docs[0].getText('t')
  for (let i = 0; i < 5; i++) t.insert(i, String(i))
  sync(docs[0], docs[1])
  docs[1].getText('t').insert(2, 'zz')
  docs[1].getText('t').delete(0, 1)
  // deliver: a merge of updates 0, 2, 4 (Skip structs for 1, 3), then the rest, reversed
  const merged = Y.mergeUpdates([updates[0], updates[2], updates[4]])
  const rest = updates.slice()
  return [merged, ...rest.reverse()]
})

const out = []
for (const { name, fn } of scenarios) {
  const updates = fn()
  const ref = new Y.Doc()
  ref.transact(() => { for (const u of updates) Y.applyUpdate(ref, u) })
  out.push(JSON.stringify({
    name,
    roots: ROOTS,
    updates: updates.map(b64),
    state: b64(Y.encodeStateAsUpdate(ref)),
    stateV2: b64(Y.encodeStateAsUpdateV2(ref)),
    dump: dumpDoc(ref, ROOTS),
    json: jsonDoc(ref, ROOTS),
    sv: svOf(ref),
    ds: dsOf(ref)
  }))
}
process.stdout.write(out.join('\n') + '\n')

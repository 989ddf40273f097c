// Golden vectors of the y-websocket messages, made by the real y-protocols
// and lib0: every message kind as a provider sends it, with what it holds.
// protocol/yjs decodes each and re-encodes it byte for byte.
//
//   node protocol.mjs > ../../protocol/yjs/testdata/golden.json
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import { b64 } from './lib/dump.mjs'

const cases = []
const msg = (name, write, expect) => {
  const e = encoding.createEncoder(); write(e)
  cases.push({ name, message: b64(encoding.toUint8Array(e)), ...expect })
}

const doc = new Y.Doc(); doc.clientID = 42
doc.getText('t').insert(0, 'héllo 😀')
doc.getMap('m').set('k', { a: [1, 2] })
const big = new Y.Doc(); big.clientID = 7
big.getText('t').insert(0, 'x'.repeat(20000))

for (const [name, d] of [['empty', new Y.Doc()], ['doc', doc], ['big', big]]) {
  msg('sync step 1 ' + name, e => { encoding.writeVarUint(e, 0); syncProtocol.writeSyncStep1(e, d) },
    { type: 0, sync: 0, payload: b64(Y.encodeStateVector(d)) })
  msg('sync step 2 ' + name, e => { encoding.writeVarUint(e, 0); syncProtocol.writeSyncStep2(e, d) },
    { type: 0, sync: 1, payload: b64(Y.encodeStateAsUpdate(d)) })
  msg('sync update ' + name, e => { encoding.writeVarUint(e, 0); syncProtocol.writeUpdate(e, Y.encodeStateAsUpdate(d)) },
    { type: 0, sync: 2, payload: b64(Y.encodeStateAsUpdate(d)) })
}

const awDoc = new Y.Doc(); awDoc.clientID = 1234567
const aw = new awarenessProtocol.Awareness(awDoc)
aw.setLocalState({ user: { name: 'Zoë ✓', color: '#30bced' }, cursor: { anchor: 3, head: 5 } })
const other = new Y.Doc(); other.clientID = 2 ** 31 + 5
const aw2 = new awarenessProtocol.Awareness(other)
aw2.setLocalState({ n: 1 })
awarenessProtocol.applyAwarenessUpdate(aw, awarenessProtocol.encodeAwarenessUpdate(aw2, [other.clientID]), 'remote')
const states = clients => clients.map(c => ({ client: c, clock: aw.meta.get(c).clock, state: JSON.stringify(aw.getStates().get(c) ?? null) }))
for (const [name, clients] of [['one', [awDoc.clientID]], ['two', [awDoc.clientID, other.clientID]], ['none', []]]) {
  const u = awarenessProtocol.encodeAwarenessUpdate(aw, clients)
  msg('awareness ' + name, e => { encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, u) },
    { type: 1, payload: b64(u), awareness: states(clients) })
}
awarenessProtocol.removeAwarenessStates(aw, [other.clientID], 'test')
{
  const u = awarenessProtocol.encodeAwarenessUpdate(aw, [other.clientID])
  msg('awareness removed', e => { encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, u) },
    { type: 1, payload: b64(u), awareness: [{ client: other.clientID, clock: aw.meta.get(other.clientID).clock, state: 'null' }] })
}
aw.destroy(); aw2.destroy()

msg('query awareness', e => { encoding.writeVarUint(e, 3) }, { type: 3 })
for (const reason of ['', 'permission denied: read-only ✗']) {
  msg('auth denied ' + JSON.stringify(reason), e => { encoding.writeVarUint(e, 2); encoding.writeVarUint(e, 0); encoding.writeVarString(e, reason) },
    { type: 2, reason })
}
process.stdout.write(JSON.stringify(cases, null, 1) + '\n')

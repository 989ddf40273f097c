// Frames of the Hocuspocus protocol from the real @hocuspocus/provider: a
// provider runs over a fake WebSocket; what it sends is captured, and
// frames a server sends (built with @hocuspocus/common's writers and
// y-protocols) are fed to it, with what the provider did with them. The
// output is protocol/yjs/testdata/hocuspocus.json: every frame with the
// fields it carries; protocol/yjs decodes each and re-encodes it byte for
// byte.
//
//   node hocuspocus.mjs > ../../protocol/yjs/testdata/hocuspocus.json
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import { HocuspocusProvider } from '@hocuspocus/provider'
import { writeAuthenticated, writePermissionDenied, writeTokenSyncRequest } from '@hocuspocus/common'
import { b64 } from './lib/dump.mjs'

const sockets = []
class FakeWS {
  constructor (url) {
    this.url = url; this.readyState = 0; this.sent = []; this.handlers = {}
    sockets.push(this)
    setTimeout(() => { this.readyState = 1; this.fire('open', {}) }, 0)
  }

  addEventListener (n, f) { (this.handlers[n] ??= []).push(f) }
  removeEventListener (n, f) { this.handlers[n] = (this.handlers[n] ?? []).filter(x => x !== f) }
  fire (n, e) { for (const f of this.handlers[n] ?? []) f(e) }
  send (b) { this.sent.push(new Uint8Array(b)) }
  close () { this.readyState = 3 }
  receive (u8) { this.fire('message', { data: u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength) }) }
}
const tick = (ms = 5) => new Promise(resolve => setTimeout(resolve, ms))

const frames = []
const name = 'notes/é 1'
const doc = new Y.Doc(); doc.clientID = 99
const provider = new HocuspocusProvider({ url: 'ws://collabd.test/hocuspocus', name, token: 'tok-123', document: doc, WebSocketPolyfill: FakeWS })
provider.awareness.setLocalStateField('user', { name: 'Zoë' })
await tick(20)
const ws = sockets[0]
const out = () => { const s = ws.sent.splice(0); for (const b of s) frames.push({ dir: 'out', frame: b64(b) }) }
out()

const server = new Y.Doc(); server.clientID = 7
server.getText('t').insert(0, 'hello from the server')
const msg = (write) => { const e = encoding.createEncoder(); encoding.writeVarString(e, name); write(e); return encoding.toUint8Array(e) }
const feed = (what, u8, check) => {
  ws.receive(u8)
  frames.push({ dir: 'in', what, frame: b64(u8), ...check() })
  out()
}
feed('authenticated', msg(e => { encoding.writeVarUint(e, 2); writeAuthenticated(e, 'read-write') }), () => ({ authenticated: provider.isAuthenticated, scope: provider.authorizedScope }))
feed('sync step 1', msg(e => { encoding.writeVarUint(e, 0); syncProtocol.writeSyncStep1(e, server) }), () => ({}))
feed('sync step 2', msg(e => { encoding.writeVarUint(e, 0); syncProtocol.writeSyncStep2(e, server) }), () => ({ text: doc.getText('t').toString() }))
server.getText('t').insert(0, '¡')
feed('update', msg(e => { encoding.writeVarUint(e, 0); syncProtocol.writeUpdate(e, Y.encodeStateAsUpdate(server)) }), () => ({ text: doc.getText('t').toString() }))
let stateless = null
provider.on('stateless', ({ payload }) => { stateless = payload })
feed('stateless', msg(e => { encoding.writeVarUint(e, 5); encoding.writeVarString(e, '{"kind":"saved","at":1}') }), () => ({ stateless }))
feed('sync status', msg(e => { encoding.writeVarUint(e, 8); encoding.writeVarInt(e, 1) }), () => ({ unsynced: provider.unsyncedChanges }))
feed('query awareness', msg(e => { encoding.writeVarUint(e, 3) }), () => ({}))
const otherDoc = new Y.Doc(); otherDoc.clientID = 12345
const other = new awarenessProtocol.Awareness(otherDoc); other.setLocalState({ user: { name: '李' } })
feed('awareness', msg(e => { encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(other, [other.clientID])) }), () => ({ peers: provider.awareness.getStates().size }))
other.destroy()
feed('token request', msg(e => { encoding.writeVarUint(e, 2); writeTokenSyncRequest(e) }), () => ({}))
{ // ping: a bare frame, answered with a bare pong
  ws.receive(new Uint8Array([9])); frames.push({ dir: 'in', what: 'ping', frame: b64(new Uint8Array([9])) }); out()
}
doc.getText('t').insert(0, 'client edit ')
await tick(50)
out()
provider.sendStateless('{"hello":true}')
out()
let denied = null
provider.on('authenticationFailed', ({ reason }) => { denied = reason })
feed('permission denied', msg(e => { encoding.writeVarUint(e, 2); writePermissionDenied(e, 'read-only ✗') }), () => ({ denied }))
feed('close', msg(e => { encoding.writeVarUint(e, 7); encoding.writeVarString(e, 'the server closed the document') }), () => ({}))
provider.destroy()
out()
process.stdout.write(JSON.stringify({ name, version: '4.8.0', frames }, null, 1) + '\n')
process.exit(0)

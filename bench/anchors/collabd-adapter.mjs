// Adapter for the reference load harness (shared/anchors/server/loadgen, interface at the
// top of its run.mjs): collabd over its own protocol (docs/PROTOCOL.md), using the collabd
// JS client (clients/js, dist/index.js) exactly as an app would. Modelled on the harness's
// yjs-hocuspocus.mjs adapter; bench/anchors/side-by-side.sh copies it into a temp copy of
// the harness (loadgen/adapters/) and runs it beside Hocuspocus and y-websocket.
//
// Full client: one Client (one WebSocket) per harness client, as a browser tab would have,
// joined to one document, edits in the root "t". Presence is on as the client's defaults
// have it: an empty presence heartbeat every 15 s, and setCursor when the scenario moves one.
//
// connect(doc, { light: true }) gives a replica-less subscriber (the harness's light mode):
// the same wire protocol as the client (hello, join with an empty state vector, answers the
// server's application pings) that only reads each update's inserted text (insertedText: no
// replica, no integration, no op objects). It keeps the raw updates and builds a
// replica only when text() is asked for, after the measurement.
//
// The client module is loaded from $COLLABD_CLIENT_JS (absolute path of clients/js/dist/
// index.js; side-by-side.sh sets it), else from ../../clients/js/dist/index.js relative to
// this file (when run from the repository). `ws` is the harness's own (the WebSocket for
// Node; the yjs adapters use the same package and version).
import WebSocket from 'ws'
import { pathToFileURL, fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'

export const name = 'collabd'

const clientPath = process.env.COLLABD_CLIENT_JS ||
  resolve(dirname(fileURLToPath(import.meta.url)), '../../clients/js/dist/index.js')
const C = await import(pathToFileURL(clientPath).href)

const ROOT = 't'
const EMPTY_SV = C.encodeStateVector(new Map())
// insertedText limits: a sync chunk of a 100k-char random history holds ~20k ops.
const DECODE_LIMITS = { maxOps: 1 << 22, maxInsertBytes: 1 << 26 }

// The server's WebSocket endpoint: --url may be given with or without the /v1/ws path.
function wsURL (url) {
  const u = new URL(url)
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/ws'
  return u.toString()
}

// The text an update inserts into ROOT: the client's insertedText (the same
// checks as decodeUpdateOps, no op objects).
const insertedText = (update) => C.insertedText(update, ROOT, DECODE_LIMITS)

export function create ({ url }) {
  const endpoint = wsURL(url)

  function connectLight (docName, timeoutMs) {
    return new Promise((resolveP, reject) => {
      const ws = new WebSocket(endpoint)
      ws.binaryType = 'nodebuffer'
      const updates = []
      let chars = 0
      let cb = null
      let done = false
      const client = {
        light: true,
        drops: 0,
        closing: false,
        insert () { throw new Error('light client is read-only') },
        onRemoteChange (f) { cb = f },
        length () { return chars }, // valid for the insert-only scenarios
        text () {
          const d = new C.Doc()
          for (const u of updates) d.applyUpdate(u)
          return d.rootNames().includes(ROOT) ? d.text(ROOT).toString() : ''
        },
        setCursor () {},
        close () { client.closing = true; try { ws.close() } catch {} }
      }
      const fail = (e) => {
        if (done) return
        done = true
        clearTimeout(timer)
        try { ws.terminate() } catch {}
        reject(e)
      }
      const timer = setTimeout(() => fail(new Error('connect+sync timeout')), timeoutMs)
      const send = (f) => ws.send(C.encodeFrame(f))
      const add = (u, notify) => {
        updates.push(u)
        const s = insertedText(u)
        chars += s.length
        if (notify && cb && s.length) cb(s)
      }
      ws.on('open', () => {
        send({ type: 1, version: C.PROTOCOL_VERSION, token: '', agents: [C.newAgentID()], client: 'anchors-light' })
      })
      ws.on('message', (data) => {
        let f
        try { f = C.decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) } catch (e) { fail(e); return }
        switch (f.type) {
          case 2: // welcome
            send({ type: 3, doc: docName, sv: EMPTY_SV, readOnly: false })
            return
          case 9: // application ping
            send({ type: 10, nonce: f.nonce })
            return
          case 4: // sync chunk
            if (f.update && f.update.length) add(f.update, false)
            if (f.final && !done) { done = true; clearTimeout(timer); resolveP(client) }
            return
          case 5: // a remote update
            add(f.update, true)
            return
          case 8: // error
            if (!done) fail(new Error(`collabd error ${f.code}: ${f.message}`))
        }
      })
      ws.on('close', () => { if (done && !client.closing) client.drops++ })
      ws.on('error', fail)
    })
  }

  return {
    name,
    connect (docName, { timeoutMs = 30000, light = false } = {}) {
      if (light) return connectLight(docName, timeoutMs)
      return new Promise((resolveP, reject) => {
        let done = false
        let cl = null
        let doc = null
        const text = () => doc.doc.rootNames().includes(ROOT) ? doc.doc.text(ROOT) : null
        const client = {
          drops: 0,
          closing: false,
          insert (pos, s) { doc.insert(ROOT, pos, s) }, // code points = UTF-16 units here (BMP only)
          onRemoteChange (f) { doc.on('change', () => f()) },
          text () { const t = text(); return t ? t.toString() : '' }, // cached by the Text until the next change
          length () { const t = text(); return t ? t.length : 0 },
          setCursor (pos) { doc.setCursor(ROOT, pos, pos) },
          // the bytes a cold joiner receives: the document's snapshot
          // (docs/PROTOCOL.md, cold join; before: every op as one update)
          stateSize () { return doc.doc.encodeSnapshot().length },
          // client-side share of a cold join: load the snapshot into a fresh
          // replica and read the text (the structure is built on the first op)
          localApplyMs () {
            const snap = doc.doc.encodeSnapshot()
            const t0 = performance.now()
            const d = C.Doc.loadSnapshot(snap)
            const n = d.text(ROOT).toString().length
            const ms = performance.now() - t0
            return n < 0 ? NaN : ms // n forces the text to be materialized
          },
          close () { client.closing = true; try { cl && cl.close() } catch {} }
        }
        const timer = setTimeout(() => {
          if (done) return
          done = true
          try { cl && cl.close() } catch {}
          reject(new Error('connect+sync timeout'))
        }, timeoutMs)
        const failed = (e) => {
          if (done) return
          done = true
          clearTimeout(timer)
          try { cl && cl.close() } catch {}
          reject(e)
        }
        try {
          cl = new C.Client(endpoint, { WebSocket, transport: 'websocket', clientName: 'anchors', connectTimeoutMs: timeoutMs })
        } catch (e) { failed(e); return }
        // a drop after the initial sync: the client reconnects by itself, the harness counts it
        cl.on('status', (s) => { if (done && !client.closing && s === 'offline') client.drops++ })
        cl.join(docName).then((d) => {
          doc = d
          if (done) return
          done = true
          clearTimeout(timer)
          resolveP(client)
        }, failed)
      })
    }
  }
}

// The Yjs doors against a running collabd, with the real client packages:
// y-websocket's WebsocketProvider and @hocuspocus/provider's
// HocuspocusProvider (pinned in package.json), over the `ws` package.
//
//   node doors.mjs SCENARIO BASE_URL [JSON args]
//
// BASE_URL is http://host:port. Each scenario prints one JSON line with
// what it saw and exits 0, or throws (exit 1) with what went wrong. The Go
// tests in e2e/yjs_doors_test.go run them and check the server's side.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'

const [scenario, base, rawArgs] = process.argv.slice(2)
const args = rawArgs ? JSON.parse(rawArgs) : {}
const wsBase = base.replace(/^http/, 'ws')

let seed = BigInt(args.seed ?? 1)
function rand (n) { // xorshift64*: reproducible from the seed the Go test logs
  seed ^= seed >> 12n; seed ^= (seed << 25n) & 0xffffffffffffffffn; seed ^= seed >> 27n
  return Number(((seed * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn) >> 11n) % n
}

function until (what, cond, ms = 20000) {
  return new Promise((resolve, reject) => {
    const start = Date.now()
    const tick = () => {
      let ok = false
      try { ok = cond() } catch (e) { reject(e); return }
      if (ok) { resolve(); return }
      if (Date.now() - start > ms) { reject(new Error(`timed out after ${ms} ms waiting for ${what}`)); return }
      setTimeout(tick, 10)
    }
    tick()
  })
}

function yws (name, opts = {}) {
  const doc = new Y.Doc()
  const p = new WebsocketProvider(`${wsBase}/v1/yjs`, name, doc, {
    WebSocketPolyfill: WebSocket, params: opts.token ? { token: opts.token } : {}, disableBc: true, resyncInterval: -1, maxBackoffTime: 200
  })
  return { kind: 'y-websocket', doc, p, awareness: p.awareness, synced: () => p.synced, destroy: () => p.destroy() }
}

function hocus (name, opts = {}) {
  const doc = new Y.Doc()
  const events = { denied: [], authenticated: [], stateless: [] }
  const p = new HocuspocusProvider({
    url: `${wsBase}/v1/hocuspocus`, name, document: doc, token: opts.token ?? '', WebSocketPolyfill: WebSocket,
    delay: 20, minDelay: 20, maxDelay: 200,
    onAuthenticationFailed: ({ reason }) => events.denied.push(reason),
    onAuthenticated: ({ scope }) => events.authenticated.push(scope),
    onStateless: ({ payload }) => events.stateless.push(payload)
  })
  return {
    kind: 'hocuspocus', doc, p, events, awareness: p.awareness,
    synced: () => p.synced && p.unsyncedChanges === 0,
    destroy: () => p.destroy()
  }
}

const make = { 'y-websocket': yws, hocuspocus: hocus }

// drop cuts a provider's connection without a close handshake (ws's
// terminate), as a network failure does.
function drop (c) {
  const ws = c.kind === 'y-websocket' ? c.p.ws : c.p.configuration.websocketProvider.webSocket
  ws?.terminate?.()
}

// One random edit of a client's document: text, map, array or a
// ProseMirror-shaped XmlFragment.
function edit (c, i) {
  const d = c.doc
  d.transact(() => {
    switch (rand(5)) {
      case 0: case 1: {
        const t = d.getText('t')
        if (t.length > 0 && rand(3) === 0) t.delete(rand(t.length), 1 + rand(Math.min(3, t.length)))
        else t.insert(rand(t.length + 1), `${c.kind[0]}${i}`)
        break
      }
      case 2: d.getMap('m').set(`k${rand(8)}`, rand(3) === 0 ? { n: i } : `${c.kind}-${i}`); break
      case 3: {
        const a = d.getArray('a')
        if (a.length > 0 && rand(3) === 0) a.delete(rand(a.length), 1)
        else a.insert(rand(a.length + 1), [i])
        break
      }
      case 4: {
        const f = d.getXmlFragment('prosemirror')
        const p = new Y.XmlElement('paragraph')
        p.insert(0, [new Y.XmlText(`para ${i}`)])
        if (f.length > 0 && rand(4) === 0) f.delete(rand(f.length), 1)
        else f.insert(rand(f.length + 1), [p])
        break
      }
    }
  })
}

// canonical orders a map's keys (a Y.Map's JSON keys come in the order
// each replica learned them, which differs).
function canonical (v) {
  if (Array.isArray(v)) return v.map(canonical)
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map(k => [k, canonical(v[k])]))
  return v
}

function view (d) {
  return {
    t: d.getText('t').toString(),
    m: canonical(d.getMap('m').toJSON()),
    a: d.getArray('a').toJSON(),
    prosemirror: d.getXmlFragment('prosemirror').toString()
  }
}

const scenarios = {
  // Several clients of both doors edit one document concurrently, each
  // dropping its connection now and then; at quiescence every replica is
  // the same (and the Go side compares it with the server's).
  async converge () {
    const name = args.doc ?? 'converge'
    const clients = []
    // args.tokens (auth mode): client i uses tokens[i % tokens.length]
    const tok = (i) => args.tokens ? { token: args.tokens[i % args.tokens.length] } : {}
    for (let i = 0; i < (args.clients ?? 3); i++) clients.push(yws(name, tok(2 * i)), hocus(name, tok(2 * i + 1)))
    await until('first sync', () => clients.every(c => c.synced()))
    for (let step = 0; step < (args.steps ?? 200); step++) {
      const c = clients[rand(clients.length)]
      edit(c, step)
      if (rand(25) === 0) drop(c) // the network drops: the provider reconnects and resyncs on its own
      if (step % 20 === 0) await new Promise(resolve => setTimeout(resolve, rand(20)))
    }
    const same = () => {
      const want = JSON.stringify(view(clients[0].doc))
      return clients.every(c => c.synced() && JSON.stringify(view(c.doc)) === want)
    }
    await until('convergence', same, 30000).catch(e => {
      const state = clients.map(c => ({ kind: c.kind, synced: c.p.synced, unsynced: c.p.unsyncedChanges, wsconnected: c.p.wsconnected, status: c.p.status, t: view(c.doc).t }))
      throw new Error(e.message + ': ' + JSON.stringify(state))
    })
    const out = view(clients[0].doc)
    clients.forEach(c => c.destroy())
    return out
  },

  // Awareness: B sees A's state (with the token's name in auth mode), and
  // sees it removed as soon as A's connection closes.
  async awareness () {
    const name = args.doc ?? 'aware'
    const a = make[args.a ?? 'hocuspocus'](name, { token: args.tokenA })
    const b = make[args.b ?? 'y-websocket'](name, { token: args.tokenB })
    await until('sync', () => a.synced() && b.synced())
    a.awareness.setLocalState({ cursor: { anchor: 3 }, user: { name: 'Mallory', color: '#000000' } })
    const id = a.doc.clientID
    await until('b sees a', () => b.awareness.getStates().get(id)?.cursor?.anchor === 3)
    const seen = b.awareness.getStates().get(id)
    const closed = Date.now()
    a.destroy()
    await until('a removed at b', () => !b.awareness.getStates().has(id), 5000)
    const removedMs = Date.now() - closed
    b.destroy()
    return { user: seen.user, removedMs }
  },

  // Writes markers through a door and returns once the provider says they
  // are stored (Hocuspocus: unsyncedChanges back to 0, sent by collabd only
  // when durable). The Go test then kills the server with SIGKILL.
  async write () {
    const c = make[args.door ?? 'hocuspocus'](args.doc ?? 'durable', { token: args.token })
    await until('sync', () => c.synced())
    const t = c.doc.getText('t')
    for (let i = 0; i < (args.markers ?? 100); i++) t.insert(t.length, `<${args.prefix ?? 'm'}${i}>`)
    await until('durable', () => c.synced(), 20000)
    const out = { text: t.toString(), unsynced: c.p.unsyncedChanges }
    c.destroy()
    return out
  },

  // Reads a document through a door.
  async read () {
    const c = make[args.door ?? 'y-websocket'](args.doc, { token: args.token })
    await until('sync', () => c.synced())
    const out = view(c.doc)
    c.destroy()
    return out
  },

  // What a door does with a token: authenticated scope or denial, and
  // whether a write reached the server (the Go side reads it back).
  async auth () {
    const c = make[args.door](args.doc, { token: args.token })
    if (args.door === 'hocuspocus') {
      await until('an auth answer', () => c.events.denied.length + c.events.authenticated.length > 0, 5000)
      const out = { denied: c.events.denied, scope: c.events.authenticated[0] ?? null }
      if (out.scope) {
        // A document the server cannot open (of the other kind, deleted)
        // is denied after the token was accepted.
        await until('sync or a denial', () => c.p.synced || c.events.denied.length > 0)
        out.denied = c.events.denied
        if (c.p.synced) {
          c.doc.getText('t').insert(0, 'written')
          await until('a sync status', () => c.p.unsyncedChanges === 0, 1000).catch(() => {})
          out.unsynced = c.p.unsyncedChanges
        }
      }
      c.destroy()
      return out
    }
    // y-websocket: a denial is the auth message, which the provider logs
    // (console.warn) and then the close.
    const warnings = []
    const warn = console.warn
    console.warn = (...a) => warnings.push(a.join(' '))
    const closes = []
    c.p.on('connection-close', e => closes.push(e?.code ?? null))
    await until('sync or a close', () => c.p.synced || closes.length > 0, 5000)
    const out = { synced: c.p.synced, closes, denied: warnings.filter(w => /Permission denied/.test(w)) }
    if (c.p.synced) {
      c.doc.getText('t').insert(0, 'written')
      await new Promise(resolve => setTimeout(resolve, 300)) // let the update reach the server; the Go side checks it was not applied
      out.denied = warnings.filter(w => /Permission denied/.test(w))
    }
    console.warn = warn
    c.destroy()
    return out
  },

  // Many documents on one Hocuspocus connection: one
  // HocuspocusProviderWebsocket, a provider per document, and two providers
  // of the same document told apart by sessionAwareness; each writes, and
  // y-websocket readers see every document's text.
  async multiplex () {
    const socket = new HocuspocusProviderWebsocket({ url: `${wsBase}/v1/hocuspocus`, WebSocketPolyfill: WebSocket, delay: 20, minDelay: 20, maxDelay: 200 })
    const names = ['mux/a', 'mux/b', 'mux/c', 'mux/same', 'mux/same']
    const ps = names.map((name, i) => {
      const doc = new Y.Doc()
      const p = new HocuspocusProvider({ websocketProvider: socket, name, document: doc, token: args.token ?? '', sessionAwareness: name === 'mux/same' })
      p.attach()
      return { name, doc, p, i }
    })
    await until('every provider synced', () => ps.every(x => x.p.synced))
    for (const x of ps) x.doc.getText('t').insert(0, `[${x.i}]`)
    await until('every provider durable', () => ps.every(x => x.p.unsyncedChanges === 0))
    const texts = {}
    for (const name of new Set(names)) {
      const r = yws(name)
      await until(`reader of ${name}`, () => r.synced())
      texts[name] = r.doc.getText('t').toString()
      r.destroy()
    }
    const same = ps.filter(x => x.name === 'mux/same').map(x => x.doc.getText('t').toString())
    await until('the two providers of one document converge', () => {
      const t = ps.filter(x => x.name === 'mux/same').map(x => x.doc.getText('t').toString())
      return t[0] === t[1] && t[0].length === 6
    })
    ps.forEach(x => x.p.destroy())
    socket.destroy()
    return { texts, same }
  },

  // Stateless messages: A sends one, B gets it.
  async stateless () {
    const name = args.doc ?? 'stateless'
    const a = hocus(name, { token: args.tokenA })
    const b = hocus(name, { token: args.tokenB })
    await until('sync', () => a.synced() && b.synced())
    a.p.sendStateless(JSON.stringify({ hello: 'world' }))
    await until('b gets the message', () => b.events.stateless.length > 0, 5000)
    const out = { got: b.events.stateless }
    a.destroy(); b.destroy()
    return out
  }
}

// Structured roots (the restore test): a Y.Map "m" with a nested Y.Map, a
// Y.Array "a" with a nested Y.Array, and a ProseMirror document in the
// XmlFragment "prosemirror" as y-prosemirror stores it (basic schema).
const structuredVersion = {
  type: 'doc',
  content: [
    { type: 'paragraph', content: [{ type: 'text', text: 'Hello ' }, { type: 'text', text: 'world', marks: [{ type: 'strong' }] }] },
    { type: 'heading', attrs: { level: 1 }, content: [{ type: 'text', text: 'Title' }] },
    { type: 'blockquote', content: [{ type: 'paragraph', content: [{ type: 'text', text: 'quoted', marks: [{ type: 'em' }, { type: 'link', attrs: { href: 'https://x/', title: null } }] }] }] },
    { type: 'paragraph', content: [{ type: 'text', text: 'last' }] }
  ]
}

async function structuredView (d) {
  const { schema } = await import('prosemirror-schema-basic')
  const { yXmlFragmentToProseMirrorRootNode } = await import('y-prosemirror')
  return {
    m: canonical(d.getMap('m').toJSON()),
    a: canonical(d.getArray('a').toJSON()),
    pm: yXmlFragmentToProseMirrorRootNode(d.getXmlFragment('prosemirror'), schema).toJSON()
  }
}

// structured: stage "version" writes the structured roots, stage "later"
// edits all three (keys set, deleted and added, nested values changed,
// elements inserted and deleted, a paragraph's text and marks, a heading's
// level, a block removed, a paragraph added); returns the provider's view
// once the server has it stored (Hocuspocus: unsyncedChanges 0).
scenarios.structured = async function () {
  const c = make[args.door ?? 'hocuspocus'](args.doc, { token: args.token })
  await until('sync', () => c.synced())
  const d = c.doc
  if (args.stage === 'version') {
    const { schema } = await import('prosemirror-schema-basic')
    const { prosemirrorJSONToYXmlFragment } = await import('y-prosemirror')
    d.transact(() => {
      const m = d.getMap('m')
      m.set('title', 'first'); m.set('count', 1); m.set('tags', ['x', 'y'])
      const nested = new Y.Map(); m.set('nested', nested); nested.set('a', [1, 2]); nested.set('b', { deep: true })
      const a = d.getArray('a'); const inner = new Y.Array()
      a.insert(0, [1, 'two', { three: 3 }, inner]); inner.insert(0, ['deep'])
    })
    prosemirrorJSONToYXmlFragment(schema, structuredVersion, d.getXmlFragment('prosemirror'))
  } else {
    d.transact(() => {
      const m = d.getMap('m')
      m.set('title', 'second'); m.delete('count'); m.set('added', true); m.get('nested').set('a', [9])
      const a = d.getArray('a')
      a.get(3).push(['more']); a.delete(1, 1); a.insert(0, ['new'])
      const f = d.getXmlFragment('prosemirror')
      f.get(0).get(0).insert(0, 'EDITED ', { em: {} })
      f.get(1).setAttribute('level', 3)
      f.delete(2, 1)
      const p = new Y.XmlElement('paragraph'); p.insert(0, [new Y.XmlText('added later')]); f.insert(f.length, [p])
    })
  }
  await until('durable', () => c.synced(), 20000)
  const out = await structuredView(d)
  c.destroy()
  return out
}

// readStructured: the structured roots as a provider of a door reads them.
scenarios.readStructured = async function () {
  const c = make[args.door ?? 'y-websocket'](args.doc, { token: args.token })
  await until('sync', () => c.synced())
  const out = await structuredView(c.doc)
  c.destroy()
  return out
}

const run = scenarios[scenario]
if (!run) throw new Error(`unknown scenario ${scenario}`)
const out = await run()
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(0)

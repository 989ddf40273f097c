// The fallback transport (SSE down, numbered POSTs up) against a real
// `collabd serve`: the same session semantics as the WebSocket, a dropped
// event stream resumed with Last-Event-ID, a POST whose answer was lost
// retried without applying it twice, and 'auto' switching to the fallback
// when WebSockets cannot be opened.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, fallbackURL } from '../dist/index.js';
import { haveGo, buildServer, startServer, trackingWebSocket, until, withDeadline } from './server.mjs';

const skip = haveGo() ? false : 'no Go toolchain to build collabd';
let build;
let srv;

before(async () => {
  if (skip) return;
  build = buildServer();
  srv = await startServer(build.bin);
});

after(async () => {
  await srv?.stop();
  build?.cleanup();
});

const fast = { baseMs: 5, maxMs: 100 };

/** A fetch that records event streams (so a test can cut them) and can lose the answer of chosen POSTs. */
function trackingFetch() {
  const streams = new Set();
  const t = {
    posts: 0,
    loseAnswerOf: new Set(), // POST numbers (1-based, counted over frame POSTs) whose answer is "lost"
    streamsOpened: 0,
    lastEventIDs: [],
    async fetch(url, init = {}) {
      if (url.includes('/events')) {
        const ac = new AbortController();
        init.signal?.addEventListener('abort', () => ac.abort());
        streams.add(ac);
        t.streamsOpened++;
        t.lastEventIDs.push(init.headers?.['Last-Event-ID'] ?? null);
        return fetch(url, { ...init, signal: ac.signal });
      }
      if (url.includes('/frames')) {
        const n = ++t.posts;
        const r = await fetch(url, init);
        if (t.loseAnswerOf.has(n)) throw new TypeError('fetch failed (answer lost, test)');
        return r;
      }
      return fetch(url, init);
    },
    /** Ends every open event stream abruptly. */
    cut() {
      for (const ac of streams) ac.abort();
      streams.clear();
    },
  };
  return t;
}

test('fallbackURL maps the WebSocket URL to the /v1/rt routes', () => {
  assert.equal(fallbackURL('ws://h:1/v1/ws'), 'http://h:1/v1/rt');
  assert.equal(fallbackURL('wss://h/x/v1/ws?token=a'), 'https://h/x/v1/rt?token=a');
});

test('fallback: sync, fan-out with a WebSocket client, durable acks, presence', { skip }, async () => {
  const f = trackingFetch();
  const a = await Client.connect(srv.url, { transport: 'fallback', fetch: f.fetch, backoff: fast });
  const b = await Client.connect(srv.url, { WebSocket: trackingWebSocket().WebSocket, transport: 'websocket', backoff: fast });
  try {
    assert.equal(a.transport, 'fallback');
    assert.equal(b.transport, 'websocket');
    const da = await a.join('fb-basic');
    const db = await b.join('fb-basic');
    da.insert('body', 0, 'over http 😀');
    await withDeadline(da.whenDurable(), 10_000, 'durable over POST');
    await until(() => db.text('body') === 'over http 😀', { docs: [db], what: 'fan-out to ws' });
    db.insert('body', 0, '> ');
    await until(() => da.text('body') === '> over http 😀', { docs: [da], what: 'fan-out to fallback', describe: () => da.text('body') });
    da.setCursor('body', 2, 6);
    await until(() => db.peers().some((p) => !p.self && p.cursor?.resolved && p.cursor.anchor === 2 && p.cursor.head === 6), {
      docs: [db], what: 'presence over POST', describe: () => JSON.stringify(db.peers().map((p) => p.cursor)),
    });
    await until(() => da.peers().length === 2, { docs: [da], what: 'presence over SSE' });
  } finally {
    a.close();
    b.close();
  }
});

test('fallback: a cut event stream resumes with Last-Event-ID (same session); a lost POST answer is retried once', { skip }, async () => {
  const f = trackingFetch();
  const a = await Client.connect(srv.url, { transport: 'fallback', fetch: f.fetch, backoff: fast });
  const b = await Client.connect(srv.url, { transport: 'fallback', backoff: fast });
  try {
    const da = await a.join('fb-resume');
    const db = await b.join('fb-resume');
    const session = a.session;
    f.loseAnswerOf.add(f.posts + 1); // the next POST is applied, but its answer never arrives
    da.insert('body', 0, 'abc');
    await withDeadline(da.whenDurable(), 10_000, 'durable after a retried POST');
    await until(() => db.text('body') === 'abc', { docs: [db], what: 'no double apply', describe: () => db.text('body') });
    for (let i = 0; i < 3; i++) {
      const opened = f.streamsOpened;
      f.cut();
      db.insert('body', db.text('body').length, `${i}`);
      await until(() => da.text('body') === db.text('body'), { docs: [da, db], what: `catch up after cut ${i}`, describe: () => `${da.text('body')} / ${db.text('body')}` });
      assert.ok(f.streamsOpened > opened, 'the stream was reattached');
    }
    assert.equal(a.session, session, 'the session survived the cuts');
    assert.ok(f.lastEventIDs.slice(1).every((id) => id !== null && Number(id) > 0), `resumed with Last-Event-ID: ${f.lastEventIDs}`);
    assert.equal(db.text('body'), 'abc012');
  } finally {
    a.close();
    b.close();
  }
});

test("auto: WebSockets that cannot be opened switch the client to the fallback", { skip }, async () => {
  let tries = 0;
  class Blocked {
    constructor() {
      tries++;
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.onerror?.({});
      }, 1);
    }
    send() {}
    close() {}
  }
  const a = await Client.connect(srv.url, { WebSocket: Blocked, backoff: fast });
  try {
    assert.equal(a.transport, 'fallback');
    assert.equal(tries, 2, 'two WebSocket attempts before the fallback');
    const da = await a.join('fb-auto');
    da.insert('body', 0, 'x');
    await withDeadline(da.whenDurable(), 10_000, 'durable');
  } finally {
    a.close();
  }
});

test('fallback: a server restart ends the session (410) and the client rejoins with its edits', { skip }, async () => {
  const own = await startServer(build.bin);
  const a = await Client.connect(own.url, { transport: 'fallback', backoff: fast });
  try {
    const da = await a.join('fb-restart');
    da.insert('body', 0, 'before');
    await withDeadline(da.whenDurable(), 10_000, 'durable');
    const old = a.session;
    const again = await own.restart();
    assert.equal(again, own.url);
    da.insert('body', 6, ' after');
    await until(() => a.status === 'connected' && a.session !== old && da.status === 'synced', { docs: [da], clients: [a], ms: 30_000, what: 'reconnect' });
    await withDeadline(da.whenDurable(), 10_000, 'durable after restart');
    const c = await Client.connect(own.url, { transport: 'fallback', backoff: fast });
    const dc = await c.join('fb-restart');
    assert.equal(dc.text('body'), 'before after');
    c.close();
  } finally {
    a.close();
    await own.stop();
  }
});

// Regression: `collabd serve` used to take its whole 10 s shutdown timeout
// with a fallback event stream attached (http.Server.Shutdown waited for the
// stream that only server.Shutdown ends; fixed in serve.go, d097d3b).
test('collabd serve stops promptly with a fallback stream attached', { skip }, async () => {
  const own = await startServer(build.bin);
  const a = await Client.connect(own.url, { transport: 'fallback', backoff: fast });
  try {
    await a.join('fb-stop');
    const t0 = Date.now();
    await own.restart();
    const ms = Date.now() - t0;
    assert.ok(ms < 3000, `restart took ${ms} ms`);
  } finally {
    a.close();
    await own.stop();
  }
});

// docs/AUTH.md's Node example, for real: an app backend mints tokens with
// `jose` exactly as the document shows, and a real `collabd serve
// --auth-secret` accepts them (WebSocket and HTTP), honours their grants,
// names and colors, and refuses what the specification says it refuses.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { Client, ServerError } from '../dist/index.js';
import { haveGo, buildServer, startServer, until, withDeadline } from './server.mjs';

const skip = haveGo() ? false : 'no Go toolchain to build collabd';
const SECRET = 'k2VhZ0mP5bq8Yx1nR7tLw3sD9fJc4uHa6gEo0iNvQzA'; // the server's COLLABD_AUTH_SECRET
let build;
let srv;

before(async () => {
  if (skip) return;
  build = buildServer();
  srv = await startServer(build.bin, ['--auth-secret', SECRET]);
});

after(async () => {
  await srv?.stop();
  build?.cleanup();
});

// ---- the example of docs/AUTH.md ("Node: jose"), unchanged ----
const key = new TextEncoder().encode(process.env.COLLABD_AUTH_SECRET ?? SECRET);

async function collabdToken(user, docs) {
  return new SignJWT({ docs, name: user.name, color: user.color })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user.id)
    .setIssuedAt()
    .setExpirationTime('15m')
    .sign(key);
}
// ---- end of the example ----

test('docs/AUTH.md still holds the example this file runs', () => {
  const doc = readFileSync(new URL('../../../docs/AUTH.md', import.meta.url), 'utf8');
  const src = readFileSync(new URL(import.meta.url), 'utf8');
  const example = src.slice(src.indexOf('async function collabdToken'), src.indexOf('// ---- end of the example'));
  assert.ok(doc.includes(example.trim()), 'update docs/AUTH.md and this test together');
  assert.ok(doc.includes("const key = new TextEncoder().encode(process.env.COLLABD_AUTH_SECRET);"));
});

const connect = (token) => Client.connect(srv.url, { WebSocket, token, backoff: { baseMs: 5, maxMs: 100 } });
const httpBase = () => `http://${srv.addr}`;

test('a jose-minted token is accepted: rw grant edits, r grant reads, name and color reach the peers', { skip }, async () => {
  const ann = await connect(await collabdToken({ id: 'u-ann', name: 'Ann', color: '#e5484d' }, ['notes/*:rw', 'wiki:r']));
  const bob = await connect(await collabdToken({ id: 'u-bob', name: 'Bob' }, ['notes/team:r']));
  try {
    const da = await ann.join('notes/team');
    da.insert('body', 0, 'minted in node');
    await withDeadline(da.whenDurable(), 10_000, 'durable');
    const db = await bob.join('notes/team', { readOnly: true });
    assert.equal(db.text('body'), 'minted in node');
    await until(() => db.peers().some((p) => p.userId === 'u-ann'), { docs: [db], what: 'ann listed' });
    const annPeer = db.peers().find((p) => p.userId === 'u-ann');
    assert.equal(annPeer.name, 'Ann');
    assert.equal(annPeer.color, '#e5484d');
    const bobSelf = db.peers().find((p) => p.self);
    assert.equal(bobSelf.name, 'Bob');
    assert.match(bobSelf.color, /^#[0-9a-f]{6}$/, 'a color derived from the subject when the token has none');
    assert.equal(bobSelf.readOnly, true);

    // HTTP: the same token as a bearer; the r grant reads, not writes.
    const bobToken = await collabdToken({ id: 'u-bob', name: 'Bob' }, ['notes/team:r']);
    const text = await fetch(`${httpBase()}/v1/docs/${encodeURIComponent('notes/team')}/text`, { headers: { Authorization: `Bearer ${bobToken}` } });
    assert.equal(text.status, 200);
    assert.equal(await text.text(), 'minted in node');
    const post = await fetch(`${httpBase()}/v1/docs/${encodeURIComponent('notes/team')}/edits`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${bobToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ edits: [[0, 0, 'x']] }),
    });
    assert.equal(post.status, 403, 'an r grant does not write');
    const other = await fetch(`${httpBase()}/v1/docs/${encodeURIComponent('notes/other')}/text`, { headers: { Authorization: `Bearer ${bobToken}` } });
    assert.equal(other.status, 403, 'a document outside the grants');
  } finally {
    ann.close();
    bob.close();
  }
});

test('refresh: a new token for the same subject keeps the session', { skip }, async () => {
  const user = { id: 'u-cy', name: 'Cy' };
  const c = await connect(await collabdToken(user, ['refresh/*:rw']));
  try {
    const d = await c.join('refresh/a');
    c.refresh(await collabdToken(user, ['refresh/*:rw']));
    d.insert('body', 0, 'after refresh');
    await withDeadline(d.whenDurable(), 10_000, 'durable after refresh');
    assert.equal(c.status, 'connected');
  } finally {
    c.close();
  }
});

/** The close code a token gets from the server. */
async function refusal(token) {
  const c = new Client(srv.url, { WebSocket, token, transport: 'websocket' });
  try {
    await until(() => c.status === 'closed', { clients: [c], what: 'refused' });
    assert.ok(c.error instanceof ServerError, `error ${c.error}`);
    return c.error.code;
  } finally {
    c.close();
  }
}

test('refused: wrong secret, other algorithm, no exp, expired, no sub, malformed grant', { skip }, async () => {
  const good = { docs: ['x:rw'] };
  const sign = (claims, { alg = 'HS256', k = key, sub = 'u', exp = '15m' } = {}) => {
    let j = new SignJWT(claims).setProtectedHeader({ alg }).setIssuedAt();
    if (sub) j = j.setSubject(sub);
    if (exp) j = j.setExpirationTime(exp);
    return j.sign(k);
  };
  assert.equal(await refusal(await sign(good, { k: new TextEncoder().encode('another-secret-another-secret-32') })), 4501, 'wrong secret');
  assert.equal(await refusal(await sign(good, { alg: 'HS512' })), 4501, 'HS512 is not accepted');
  assert.equal(await refusal(await sign(good, { exp: null })), 4501, 'exp is required');
  assert.equal(await refusal(await sign(good, { exp: Math.floor(Date.now() / 1000) - 5 })), 4503, 'expired');
  assert.equal(await refusal(await sign(good, { sub: null })), 4501, 'sub is required');
  assert.equal(await refusal(await sign({ docs: ['x:write'] })), 4501, 'grants are pattern:r or pattern:rw');
});

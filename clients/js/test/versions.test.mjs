// Version history through the client (Document.versions, version,
// saveVersion, restore) against a real `collabd serve`: a restore reaches
// every joined replica as remote changes and all of them converge.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, ServerError, httpBase } from '../dist/index.js';
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

function connect() {
  const ws = trackingWebSocket();
  return Client.connect(srv.url, { WebSocket: ws.WebSocket, backoff: { baseMs: 5, maxMs: 100 } });
}

test('httpBase strips the WebSocket path and query', () => {
  assert.equal(httpBase('ws://h:1/v1/ws?token=x'), 'http://h:1');
  assert.equal(httpBase('wss://h/app/v1/ws'), 'https://h/app');
});

test('versions, view, restore while another client edits: every replica converges', { skip }, async () => {
  const a = await connect();
  const b = await connect();
  try {
    const da = await a.join('hist');
    const db = await b.join('hist');
    da.insert('body', 0, 'hello world');
    await withDeadline(da.whenDurable(), 10_000, 'durable');
    const v1 = await da.saveVersion('first');
    assert.equal(v1.kind, 'named');
    assert.equal(v1.label, 'first');
    assert.equal(v1.seq, 1);

    da.delete('body', 6, 5);
    da.insert('body', 6, 'there');
    await withDeadline(da.whenDurable(), 10_000, 'durable');
    await until(() => db.text('body') === 'hello there', { docs: [db], what: 'fan-out' });

    const page = await db.versions();
    assert.deepEqual(page.versions.map((v) => v.seq), [1]);
    const view = await db.version(1);
    assert.equal(view.text.body, 'hello world');

    // b edits while a restores: whatever the order, every replica ends
    // with the restored text, b's edit merged or replaced with the rest.
    db.insert('body', 0, 'B:');
    const res = await da.restore(1);
    assert.equal(res.restored, 1);
    assert.ok(res.applied > 0);
    await withDeadline(db.whenDurable(), 10_000, 'b durable');
    await until(() => da.text('body') === db.text('body') && da.text('body').replace('B:', '') === 'hello world', {
      docs: [da, db],
      what: 'convergence after restore',
      describe: () => `${JSON.stringify(da.text('body'))} ${JSON.stringify(db.text('body'))}`,
    });
    // The restore kept the replaced state as an automatic version.
    const after = await da.versions({ limit: 10 });
    assert.equal(after.versions[0].kind, 'auto');
    assert.equal(after.versions.length, 2);

    await assert.rejects(da.restore(99), (e) => e instanceof ServerError && e.code === 4508);
    await assert.rejects(da.saveVersion('x'.repeat(201)), (e) => e instanceof ServerError && e.code === 4500);
    await assert.rejects(da.restore(0), RangeError);
  } finally {
    a.close();
    b.close();
  }
});

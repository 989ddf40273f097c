// Test helpers for runs against a real server: build `collabd` once, start
// `collabd serve` on a free loopback port, wait on client events with
// deadlines (no sleeps).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';

const repo = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');

/** Whether the Go toolchain is there to build the server. */
export function haveGo() {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds cmd/collabd into a temporary directory; returns the binary and a
 * cleanup. COLLABD_BIN names an already built binary instead.
 */
export function buildServer() {
  if (process.env.COLLABD_BIN) return { bin: process.env.COLLABD_BIN, cleanup: () => {} };
  const dir = mkdtempSync(join(tmpdir(), 'collabd-js-'));
  const bin = join(dir, 'collabd');
  execFileSync('go', ['build', '-o', bin, './cmd/collabd'], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  return { bin, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Starts `bin serve` on 127.0.0.1:0 over a fresh data directory; resolves with
 * its ws URL once it listens. restart() stops it and starts it again on the
 * same address and data (a server restart as clients see it).
 */
export async function startServer(bin, extra = []) {
  const data = mkdtempSync(join(tmpdir(), 'collabd-data-'));
  let stderr = '';
  let proc;
  let exited;
  const launch = async (addr) => {
    const p = spawn(bin, ['serve', '--addr', addr, '--data', data, '--log-level', 'warn', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stderr.on('data', (b) => (stderr += b));
    proc = p;
    exited = new Promise((res) => p.once('exit', res));
    return withDeadline(
      new Promise((res, rej) => {
        const rl = createInterface({ input: p.stdout });
        rl.on('line', (l) => {
          const m = /^listening on (\S+)/.exec(l);
          if (m) res(m[1]);
        });
        p.once('exit', (code) => rej(new Error(`collabd exited (${code}) before listening: ${stderr}`)));
      }),
      20_000,
      'server start',
    );
  };
  const halt = async () => {
    proc.kill('SIGTERM');
    await withDeadline(exited, 15_000, 'server stop').catch(() => proc.kill('SIGKILL'));
  };
  const addr = await launch('127.0.0.1:0');
  return {
    url: `ws://${addr}/v1/ws`,
    addr,
    stderr: () => stderr,
    /** Stops the server and starts it again on the same address and data; resolves with the URL. */
    async restart() {
      await halt();
      return `ws://${await launch(addr)}/v1/ws`;
    },
    async stop() {
      await halt();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** A `ws` WebSocket class that records its sockets so a test can cut them abruptly. */
export function trackingWebSocket() {
  const sockets = new Set();
  class TrackingWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      sockets.add(this);
      this.once('close', () => sockets.delete(this));
    }
  }
  return {
    WebSocket: TrackingWebSocket,
    /** Drops every open socket without a close frame (the client sees 1006). */
    cut() {
      for (const s of sockets) s.terminate();
    },
  };
}

export function withDeadline(p, ms, what) {
  let t;
  const timeout = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/**
 * Resolves once cond() holds, re-checking it whenever one of the documents
 * or clients emits an event; rejects after ms with describe().
 */
export function until(cond, { docs = [], clients = [], ms = 20_000, what = 'condition', describe = () => '' } = {}) {
  return new Promise((res, rej) => {
    const offs = [];
    let t;
    const done = (err) => {
      clearTimeout(t);
      for (const off of offs) off();
      if (err) rej(err);
      else res();
    };
    const check = () => {
      let ok = false;
      try {
        ok = cond();
      } catch (e) {
        done(e);
        return;
      }
      if (ok) done();
    };
    for (const d of docs) for (const k of ['change', 'version', 'status', 'unsaved', 'presence', 'message']) offs.push(d.on(k, check));
    for (const c of clients) offs.push(c.on('status', check));
    t = setTimeout(() => done(new Error(`timeout after ${ms} ms waiting for ${what}: ${describe()}`)), ms);
    check();
  });
}

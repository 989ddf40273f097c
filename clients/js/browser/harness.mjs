// The browser tests' shared set-up: a real `collabd serve` (built once per
// file) and Debian's Chromium through playwright-core
// (scripts/browser-setup.sh installs both).
import { before, after } from 'node:test';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { haveGo, buildServer, startServer } from '../test/server.mjs';

export const exe = process.env.CHROMIUM || '/usr/bin/chromium';
/** Why the browser tests cannot run here (a reason), or false. */
export const skip = !haveGo() ? 'no Go toolchain' : !existsSync(exe) ? `no ${exe} (run scripts/browser-setup.sh)` : false;
/** The deadline of every wait in the browser tests. */
export const WAIT = { timeout: 20_000 };

/**
 * Registers the file's before/after hooks and returns what they set up:
 * h.build (the server binary), h.srv (a running server), h.browser.
 */
export function useBrowser() {
  const h = { build: null, srv: null, browser: null };
  before(async () => {
    if (skip) return;
    h.build = buildServer();
    h.srv = await startServer(h.build.bin);
    h.browser = await chromium.launch({
      executablePath: exe,
      headless: true,
      args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await h.browser?.close();
    await h.srv?.stop();
    h.build?.cleanup();
  });
  return h;
}

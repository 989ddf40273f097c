// The demo assets committed in internal/demo/static are what `make demo`
// builds from demo/ and src/ now (a fresh clone serves them without Node).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(`../${p}`, import.meta.url));

test('internal/demo/static is up to date (run `make demo`)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'collabd-demo-'));
  try {
    execFileSync(process.execPath, [here('scripts/build.mjs'), '--demo', '--out', dir], { stdio: 'inherit' });
    for (const f of ['index.html', 'app.js']) {
      const built = readFileSync(join(dir, f));
      const committed = readFileSync(here(`../../internal/demo/static/${f}`));
      assert.ok(built.equals(committed), `internal/demo/static/${f} differs from a fresh build: run \`make demo\` and commit it`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

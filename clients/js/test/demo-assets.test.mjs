// The demo assets committed in internal/demo/static are what `make demo`
// builds from demo/ and src/ now (a fresh clone serves them without Node).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(`../${p}`, import.meta.url));

test('internal/demo/static is up to date (run `make demo`)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'collabd-demo-'));
  try {
    execFileSync(process.execPath, [here('scripts/build.mjs'), '--demo', '--out', dir], { stdio: 'inherit' });
    const static_ = here('../../internal/demo/static');
    const files = readdirSync(dir).sort();
    // the same files (chunk names carry a content hash), with the same bytes
    assert.deepEqual(readdirSync(static_).sort(), files, 'internal/demo/static has other files than a fresh build: run `make demo` and commit it (git add -A)');
    for (const f of files) {
      const built = readFileSync(join(dir, f));
      const committed = readFileSync(join(static_, f));
      assert.ok(built.equals(committed), `internal/demo/static/${f} differs from a fresh build: run \`make demo\` and commit it`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

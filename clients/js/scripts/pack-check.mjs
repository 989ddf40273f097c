// The package as an app gets it: `npm pack`s clients/js (after `npm run
// build`), installs the tarball into a fresh app beside react and the
// CodeMirror packages (its peers), and checks that
//   - the tarball holds dist (JS, maps, .d.ts), README.md and LICENSE, and no
//     sources or tests;
//   - a consumer importing every entry point (".", "./codemirror", "./react")
//     type-checks with `tsc` under moduleResolution "bundler" and "nodenext"
//     (and a wrong call is still an error: the types are real, not any);
//   - esbuild bundles it with one copy of @codemirror/state and of react;
//   - Node imports every entry point of the installed package.
// The app's node_modules (react, @types/react, @codemirror/*) is kept in
// node_modules/.cache/pack-app-<hash of its dependencies> and reused; only the
// tarball is installed again on each run. Run by scripts/check.sh (make test).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = resolve(fileURLToPath(new URL('..', import.meta.url)));
const bin = (p) => join(pkgDir, 'node_modules', p);
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const fail = (msg) => {
  console.error(`pack-check: ${msg}`);
  process.exit(1);
};
const installed = (name) => JSON.parse(readFileSync(bin(`${name}/package.json`), 'utf8')).version;

// 1. Pack.
const tmp = mkdtempSync(join(tmpdir(), 'collabd-pack-'));
try {
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tmp], pkgDir));
  const files = packed.files.map((f) => f.path).sort();
  for (const want of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/codemirror.js', 'dist/codemirror.d.ts', 'dist/react.js', 'dist/react.d.ts', 'dist/document.d.ts']) {
    if (!files.includes(want)) fail(`the tarball lacks ${want}: ${files.join(' ')}`);
  }
  const stray = files.filter((f) => /^(src|test|browser|demo|scripts|bench)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'));
  if (stray.length > 0) fail(`the tarball holds sources or tests: ${stray.join(' ')}`);
  const tgz = join(tmp, packed.filename);

  // 2. The app: its dependencies installed once per hash, then the tarball.
  const deps = {
    '@codemirror/state': installed('@codemirror/state'),
    '@codemirror/view': installed('@codemirror/view'),
    react: installed('react'),
    '@types/react': installed('@types/react'),
  };
  const appPkg = { name: 'collabd-pack-app', private: true, type: 'module', dependencies: deps };
  const hash = createHash('sha256').update(JSON.stringify(appPkg)).digest('hex').slice(0, 16);
  const app = bin(`.cache/pack-app-${hash}`);
  if (!existsSync(join(app, 'node_modules/react'))) {
    rmSync(app, { recursive: true, force: true });
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify(appPkg, null, 2));
    run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], app);
  }
  run('npm', ['install', '--no-save', '--prefer-offline', '--no-audit', '--no-fund', tgz], app);
  const inst = JSON.parse(readFileSync(join(app, 'node_modules/@collabd/client/package.json'), 'utf8'));
  if (inst.private) fail('the installed package is private');

  // 3. The consumer, type-checked under both resolutions.
  rmSync(join(app, 'src'), { recursive: true, force: true });
  cpSync(join(pkgDir, 'scripts/pack-app'), join(app, 'src'), { recursive: true });
  const tsc = bin('typescript/bin/tsc');
  for (const resolution of ['bundler', 'nodenext']) {
    const module = resolution === 'bundler' ? 'esnext' : 'nodenext';
    const cfg = {
      compilerOptions: { target: 'es2022', module, moduleResolution: resolution, lib: ['es2022', 'dom'], strict: true, noEmit: true, skipLibCheck: false, types: [] },
      include: ['src/consumer.ts'],
    };
    writeFileSync(join(app, `tsconfig.${resolution}.json`), JSON.stringify(cfg, null, 2));
    try {
      run('node', [tsc, '-p', `tsconfig.${resolution}.json`], app);
    } catch (e) {
      fail(`tsc (moduleResolution ${resolution}) failed:\n${e.stdout}${e.stderr}`);
    }
  }

  // 4. Bundled by esbuild: every import resolves, one copy of each peer.
  const meta = join(app, 'meta.json');
  try {
    run(bin('.bin/esbuild'), ['src/consumer.ts', '--bundle', '--format=esm', '--platform=browser', '--outfile=out/app.js', `--metafile=${meta}`, '--log-level=warning'], app);
  } catch (e) {
    fail(`esbuild failed:\n${e.stdout}${e.stderr}`);
  }
  const inputs = Object.keys(JSON.parse(readFileSync(meta, 'utf8')).inputs);
  for (const peer of ['@codemirror/state', 'react']) {
    const copies = new Set(inputs.filter((p) => p.includes(`node_modules/${peer}/`)).map((p) => p.slice(0, p.lastIndexOf(`node_modules/${peer}/`))));
    if (copies.size !== 1) fail(`the bundle holds ${copies.size} copies of ${peer}: ${[...copies].join(', ')}`);
  }
  if (!inputs.some((p) => p.includes('node_modules/@collabd/client/dist/react.js'))) fail('the bundle does not use the package\'s dist/react.js');

  // 5. Node resolves every entry point of the installed package.
  const out = run('node', ['src/node-import.mjs'], app).trim();
  if (out !== 'ok') fail(`node-import.mjs printed ${JSON.stringify(out)}`);
  console.log(`pack-check: ${packed.filename} (${files.length} files, ${packed.size} bytes) installs, type-checks (bundler, nodenext), bundles and imports`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

// Builds the package's JavaScript (dist/index.js: the client and CRDT;
// dist/codemirror.js: the CodeMirror 6 binding, with @codemirror/* left to the
// application; dist/react.js: the React hooks, with react left to the
// application). The .d.ts files beside them come from `tsc -p
// tsconfig.build.json` (npm run build runs both).
// With --demo it builds the demo page instead, minified, into
// internal/demo/static (committed, so a fresh clone builds without Node), or
// into the directory after --out (test/demo-assets.test.mjs compares): the
// small entry app.js loads one mode's module (plain.js, rich.js, code.js);
// code they share goes into chunk-<hash>.js files. The directory's old .js
// files are removed first, so no stale chunk stays behind.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(`../${p}`, import.meta.url));
const common = { bundle: true, format: 'esm', target: 'es2020', logLevel: 'warning' };

if (process.argv.includes('--demo')) {
  const o = process.argv.indexOf('--out');
  const out = o > 0 ? process.argv[o + 1] : here('../../internal/demo/static');
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(out)) if (f.endsWith('.js')) rmSync(`${out}/${f}`);
  await build({
    ...common,
    entryPoints: { app: here('demo/main.ts'), plain: here('demo/plain.ts'), rich: here('demo/rich.ts'), code: here('demo/code.ts') },
    outdir: out,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    platform: 'browser',
    minify: true,
    legalComments: 'none',
  });
  copyFileSync(here('demo/index.html'), `${out}/index.html`);
} else {
  const lib = { ...common, platform: 'neutral', mainFields: ['module', 'main'], sourcemap: true };
  await build({ ...lib, entryPoints: [here('src/index.ts')], outfile: here('dist/index.js') });
  await build({ ...lib, entryPoints: [here('src/codemirror.ts')], outfile: here('dist/codemirror.js'), external: ['@codemirror/*'] });
  await build({ ...lib, entryPoints: [here('src/react.ts')], outfile: here('dist/react.js'), external: ['react'] });
}

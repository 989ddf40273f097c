// Builds the package's JavaScript (dist/index.js: the client and CRDT;
// dist/codemirror.js: the CodeMirror 6 binding, with @codemirror/* left to the
// application; dist/react.js: the React hooks, with react left to the
// application). The .d.ts files beside them come from `tsc -p
// tsconfig.build.json` (npm run build runs both).
// With --demo it builds the demo page instead, minified, into
// internal/demo/static (committed, so a fresh clone builds without Node), or
// into the directory after --out (test/demo-assets.test.mjs compares).
import { build } from 'esbuild';
import { copyFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(`../${p}`, import.meta.url));
const common = { bundle: true, format: 'esm', target: 'es2020', logLevel: 'warning' };

if (process.argv.includes('--demo')) {
  const o = process.argv.indexOf('--out');
  const out = o > 0 ? process.argv[o + 1] : here('../../internal/demo/static');
  await build({ ...common, entryPoints: [here('demo/main.ts')], outfile: `${out}/app.js`, platform: 'browser', minify: true, legalComments: 'none' });
  copyFileSync(here('demo/index.html'), `${out}/index.html`);
} else {
  const lib = { ...common, platform: 'neutral', mainFields: ['module', 'main'], sourcemap: true };
  await build({ ...lib, entryPoints: [here('src/index.ts')], outfile: here('dist/index.js') });
  await build({ ...lib, entryPoints: [here('src/codemirror.ts')], outfile: here('dist/codemirror.js'), external: ['@codemirror/*'] });
  await build({ ...lib, entryPoints: [here('src/react.ts')], outfile: here('dist/react.js'), external: ['react'] });
}

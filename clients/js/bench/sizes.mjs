// Bundle sizes for BENCHMARKS.md: each entry bundled for browsers by esbuild
// with --minify, then gzip -9 (Node's zlib). With YJS=<dir holding
// node_modules/yjs and node_modules/y-websocket> the reference (Yjs +
// y-websocket) is measured in the same run.
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(`../${p}`, import.meta.url));

async function size(name, contents, resolveDir, external = []) {
  const r = await build({
    stdin: { contents, resolveDir, loader: 'ts' }, bundle: true, minify: true, format: 'esm', platform: 'browser',
    target: 'es2020', write: false, external, legalComments: 'none', logLevel: 'error',
  });
  const b = r.outputFiles[0].contents;
  return { name, min: b.length, gzip: gzipSync(b, { level: 9 }).length };
}

const rows = [
  await size('client + CRDT (`Client`, `Document`, `Doc`, fallback transport; @msgpack/msgpack, fflate)', "export * from './src/index.ts';", here('.')),
  await size('CRDT only (`Doc`, snapshots; fflate)', "export { Doc, encodeStateVector, decodeStateVector, encodeRelPos, decodeRelPos } from './src/index.ts';", here('.')),
  await size('CodeMirror binding alone (@codemirror/* external)', "export * from './src/codemirror.ts';", here('.'), ['@codemirror/*']),
  await size('CodeMirror binding + @codemirror/state + @codemirror/view', "export * from './src/codemirror.ts';", here('.')),
];
if (process.env.YJS) {
  rows.push(await size('reference: Yjs', "export * from 'yjs';", process.env.YJS));
  rows.push(await size('reference: Yjs + y-websocket (WebsocketProvider)', "export * from 'yjs'; export { WebsocketProvider } from 'y-websocket';", process.env.YJS));
}
console.log('| bundle | minified | min + gzip -9 |\n|---|---|---|');
for (const r of rows) console.log(`| ${r.name} | ${(r.min / 1024).toFixed(1)} KiB | ${(r.gzip / 1024).toFixed(1)} KiB |`);

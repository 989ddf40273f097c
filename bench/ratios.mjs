// Prints a markdown table comparing collabd's trace results with the anchor
// libraries' raw results from the same run: node ratios.mjs RAW_DIR COLLABD_TXT
import fs from 'node:fs';
import path from 'node:path';

const [rawDir, collabdTxt] = process.argv.slice(2);
const ours = {};
for (const line of fs.readFileSync(collabdTxt, 'utf8').split('\n')) {
  if (!line.startsWith('trace=')) continue;
  const kv = Object.fromEntries(line.split(' ').filter(f => f.includes('=')).map(f => f.split('=')));
  ours[kv.trace] = {
    replay: +kv.local_ms, remote: +kv.remote_ms, bytes: +kv.snapshot_bytes,
    encode: +kv.encode_ms, load: +kv.load_ms,
  };
}
const fmt = v => v === undefined || Number.isNaN(v) ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
const ratio = (theirs, mine) => theirs && mine ? `${(theirs / mine).toFixed(1)}×` : '–';
for (const trace of Object.keys(ours)) {
  const c = ours[trace];
  console.log(`\n### ${trace}\n`);
  console.log('| library | replay ms | remote apply ms | snapshot bytes | encode ms | load+read ms |');
  console.log('|---|---|---|---|---|---|');
  console.log(`| **collabd** | **${fmt(c.replay)}** | **${fmt(c.remote)}** | **${c.bytes}** | **${fmt(c.encode)}** | **${fmt(c.load)}** |`);
  const files = fs.readdirSync(rawDir).filter(f => f.startsWith(`${trace}__`));
  for (const f of files.sort()) {
    const j = JSON.parse(fs.readFileSync(path.join(rawDir, f), 'utf8'));
    const t = j.time || {}, r = j.remote || {};
    const replay = t.replay_ms?.median, remote = r.remote_ms?.median;
    const enc = t.encode_ms?.median, load = t.load_ms?.median, bytes = t.encoded_bytes;
    console.log(`| ${j.lib} ${t.version ?? ''} | ${fmt(replay)} (${ratio(replay, c.replay)}) | ${fmt(remote)} (${ratio(remote, c.remote)}) | ${bytes ?? '–'} (${bytes ? (bytes / c.bytes).toFixed(2) + '×' : '–'}) | ${fmt(enc)} | ${fmt(load)} (${ratio(load, c.load)}) |`);
  }
}
console.log('\nRatios are the library\'s figure divided by collabd\'s (above 1×: collabd is faster or smaller).');

// Random ProseMirror documents (prosemirror-schema-basic) made into Yjs
// documents by y-prosemirror, edited by two replicas at the Yjs level
// (text with marks, formatting, new blocks, deletions) and merged; for each,
// what y-prosemirror reads back (yXmlFragmentToProseMirrorRootNode(…).toJSON(),
// the JSON TipTap's getJSON() returns) — the expectation of the Go
// engine's ProseMirrorJSON.
//
//   node prosemirror.mjs --seed 1 --cases 100 --out pm.jsonl
import * as Y from 'yjs'
import { writeFileSync } from 'node:fs'
import { schema } from 'prosemirror-schema-basic'
import { yXmlFragmentToProseMirrorRootNode, prosemirrorJSONToYDoc } from 'y-prosemirror'
import { b64 } from './lib/dump.mjs'

const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) => (x.startsWith('--') ? [...a, [x.slice(2), all[i + 1]]] : a), []))
function mulberry32 (a) {
  return () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a); t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296 }
}
const MARKS = Object.keys(schema.marks)
function makeCase (seed) {
  const rnd = mulberry32(seed); const int = n => Math.floor(rnd() * n); const pick = a => a[int(a.length)]
  const word = () => pick(['alpha', 'beta ', 'γάμμα', ' 😀 ', 'x', 'end. '])
  const marks = () => {
    const m = []
    if (rnd() < 0.3) m.push({ type: 'strong' })
    if (rnd() < 0.3) m.push({ type: 'em' })
    if (rnd() < 0.15) m.push({ type: 'link', attrs: { href: 'https://x/' + int(3), title: rnd() < 0.5 ? 't' : null } })
    if (rnd() < 0.1) m.push({ type: 'code' })
    return m
  }
  const inline = () => { const c = []; const n = 1 + int(3); for (let i = 0; i < n; i++) { const t = { type: 'text', text: word() }; const m = marks(); if (m.length) t.marks = m; c.push(t) } return c }
  const block = () => {
    switch (int(5)) {
      case 0: return { type: 'heading', attrs: { level: 1 + int(3) }, content: inline() }
      case 1: return { type: 'blockquote', content: [{ type: 'paragraph', content: inline() }] }
      case 2: return { type: 'horizontal_rule' }
      default: return { type: 'paragraph', content: inline() }
    }
  }
  const content = []; for (let i = 0, n = 1 + int(4); i < n; i++) content.push(block())
  const a = prosemirrorJSONToYDoc(schema, { type: 'doc', content }, 'prosemirror')
  a.clientID = 11
  const b = new Y.Doc(); b.clientID = 22
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  const texts = d => { const out = []; const walk = t => { for (const c of t.toArray()) { if (c instanceof Y.XmlText) out.push(c); else if (c instanceof Y.XmlElement) walk(c) } }; walk(d.getXmlFragment('prosemirror')); return out }
  for (const d of [a, b]) {
    for (let k = 0; k < 4; k++) {
      const ts = texts(d)
      if (ts.length && rnd() < 0.8) {
        const t = pick(ts); const len = t.length
        const r = rnd()
        if (r < 0.5) { const attrs = {}; for (const m of marks()) attrs[m.type] = m.attrs || {}; t.insert(int(len + 1), word(), attrs) }
        else if (r < 0.75 && len > 0) { const p = int(len); t.format(p, 1 + int(len - p), rnd() < 0.5 ? { strong: {} } : { em: null }) }
        else if (len > 1) { const p = int(len - 1); const s = t.toString(); const cp = s.charCodeAt(p); if (!(cp >= 0xDC00 && cp <= 0xDFFF)) t.delete(p, 1) }
      } else {
        const f = d.getXmlFragment('prosemirror')
        const el = new Y.XmlElement('paragraph'); const tx = new Y.XmlText(); tx.insert(0, word(), rnd() < 0.5 ? { em: {} } : {})
        el.insert(0, [tx]); f.insert(int(f.length + 1), [el])
      }
    }
  }
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b)); Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  const pm = yXmlFragmentToProseMirrorRootNode(a.getXmlFragment('prosemirror'), schema).toJSON()
  return { seed, state: b64(Y.encodeStateAsUpdate(a)), markOrder: MARKS, pm }
}
const out = []
for (let i = 0; i < Number(args.cases ?? 50); i++) out.push(JSON.stringify(makeCase(Number(args.seed ?? 1) + i)))
writeFileSync(args.out, out.join('\n') + '\n')

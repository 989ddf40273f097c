// Checks the Go engine's server-side edits against the same edits made by
// Yjs itself.
//
//   node edits.mjs edits.jsonl
//
// Each line: { state (base64 v1: the document before), client, op: {kind:
// "insert"|"delete"|"set"|"unset", name, index, text, length, key, value},
// update (base64: what Go produced) }. Yjs loads the state, makes the same
// edit with the same clientID, and its update must be byte-for-byte Go's;
// Go's update applied to the state must give the same document.
// Prints {"checked":n,"identical":k,"failures":[…]}; exits 1 on a failure.
import * as Y from 'yjs'
import { readFileSync } from 'node:fs'
import { unb64, b64, dumpDoc, loadAll } from './lib/dump.mjs'

const roots = { t: 'Text', m: 'Map' }
const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l))
const failures = []
let identical = 0
for (const [i, e] of lines.entries()) {
  const doc = loadAll([unb64(e.state)])
  doc.clientID = e.client
  let got = null
  doc.on('update', u => { got = got ? Y.mergeUpdates([got, u]) : u })
  const op = e.op
  doc.transact(() => {
    if (op.kind === 'insert') doc.getText(op.name).insert(op.index, op.text)
    else if (op.kind === 'delete') doc.getText(op.name).delete(op.index, op.length)
    else if (op.kind === 'set') doc.getMap(op.name).set(op.key, op.value)
    else if (op.kind === 'unset') doc.getMap(op.name).delete(op.key)
  })
  const goDoc = loadAll([unb64(e.state), unb64(e.update)])
  const a = JSON.stringify(dumpDoc(goDoc, roots)); const b = JSON.stringify(dumpDoc(doc, roots))
  if (a !== b) failures.push({ i, op, what: 'document after the edit', go: a, yjs: b })
  const want = got ? b64(got) : null
  if (want === e.update) identical++
  else if (op.kind !== 'delete') failures.push({ i, op, what: 'update bytes', go: e.update, yjs: want })
}
process.stdout.write(JSON.stringify({ checked: lines.length, identical, failures: failures.slice(0, 10), failed: failures.length }) + '\n')
process.exit(failures.length ? 1 : 0)

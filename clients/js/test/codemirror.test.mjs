// The CodeMirror binding's mapping logic in Node (no browser): editor
// changes (UTF-16) → CRDT splices (code points) and back, astral characters
// never split, selections kept in place across remote changes, cursors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EditorState, EditorSelection } from '@codemirror/state';
import { Doc } from '../dist/index.js';
import { editorToSplices, splicesToEditor, remoteCursors, transactionSplices, remoteChangeSet, codePoints, cpToUtf16 } from '../dist/codemirror.js';
import { prng } from './helpers.mjs';

test('editorToSplices: table', () => {
  const cases = [
    { old: 'hello', ch: [{ fromA: 5, toA: 5, insert: '!' }], want: [{ pos: 5, del: 0, ins: '!' }] },
    { old: 'a😀b', ch: [{ fromA: 3, toA: 4, insert: '' }], want: [{ pos: 2, del: 1, ins: '' }] },
    { old: 'a😀b', ch: [{ fromA: 1, toA: 3, insert: '👍' }], want: [{ pos: 1, del: 1, ins: '👍' }] },
    // several changes of one transaction: positions of the old text, applied in turn
    { old: '😀x😀y', ch: [{ fromA: 0, toA: 2, insert: 'A' }, { fromA: 3, toA: 5, insert: 'BB' }], want: [{ pos: 0, del: 1, ins: 'A' }, { pos: 2, del: 1, ins: 'BB' }] },
    // a boundary inside a surrogate pair is widened to the whole character
    { old: 'a😀b', ch: [{ fromA: 2, toA: 3, insert: '' }], want: [{ pos: 1, del: 1, ins: '' }] },
    { old: 'a😀b', ch: [{ fromA: 1, toA: 2, insert: '' }], want: [{ pos: 1, del: 1, ins: '' }] },
    { old: 'a😀b', ch: [{ fromA: 2, toA: 2, insert: 'x' }], want: [{ pos: 1, del: 0, ins: 'x' }] },
  ];
  for (const c of cases) assert.deepEqual(editorToSplices(c.old, c.ch), c.want, `editorToSplices(${JSON.stringify(c.old)}, ${JSON.stringify(c.ch)})`);
});

test('splicesToEditor and code point helpers', () => {
  const { splices, text } = splicesToEditor('a😀b', [{ pos: 2, del: 1, ins: '🎉' }, { pos: 0, del: 1, ins: '' }]);
  assert.deepEqual(splices, [{ from: 3, to: 4, insert: '🎉' }, { from: 0, to: 1, insert: '' }]);
  assert.equal(text, '😀🎉');
  assert.equal(codePoints('a😀b'), 3);
  assert.equal(cpToUtf16('a😀b', 2), 3);
  assert.equal(cpToUtf16('a😀b', 9), 4);
});

const alphabet = [...'abc xyz😀👍🏽é中\n'];

/** A random transaction on state: 1-3 non-overlapping changes at character boundaries. */
function randomChanges(r, s) {
  const bounds = [0];
  for (let u = 0; u < s.length;) {
    u += s.codePointAt(u) > 0xffff ? 2 : 1;
    bounds.push(u);
  }
  const picks = [...new Set(Array.from({ length: 2 * (1 + r.int(3)) }, () => r.pick(bounds)))].sort((a, b) => a - b);
  const changes = [];
  for (let i = 0; i + 1 < picks.length || i === 0; i += 2) {
    const from = picks[i] ?? 0;
    const to = picks[i + 1] ?? from;
    let insert = '';
    for (let k = r.int(4); k > 0; k--) insert += r.pick(alphabet);
    changes.push({ from, to: r.int(2) ? to : from, insert });
  }
  return changes;
}

test('local transactions keep the CRDT text equal to the editor text (random, astral)', () => {
  for (const seed of [1, 2, 3]) {
    const r = prng(seed);
    const d = new Doc({ agent: 7n });
    const t = d.text('body');
    let st = EditorState.create({ doc: '' });
    for (let i = 0; i < 300; i++) {
      const tr = st.update({ changes: randomChanges(r, st.doc.toString()) });
      for (const s of transactionSplices(st.doc, tr.changes)) {
        if (s.del > 0) t.delete(s.pos, s.del);
        if (s.ins) t.insert(s.pos, s.ins);
      }
      st = tr.state;
      assert.equal(t.toString(), st.doc.toString(), `seed ${seed} step ${i}`);
    }
  }
});

test('remote changes become one transaction; the local selection stays on its characters', () => {
  for (const seed of [4, 5, 6]) {
    const r = prng(seed);
    const a = new Doc({ agent: 1n });
    const b = new Doc({ agent: 2n });
    a.text('body').insert(0, 'start 😀 of the text');
    b.applyUpdate(a.takeUpdate());
    let st = EditorState.create({ doc: b.text('body').toString() });
    for (let i = 0; i < 100; i++) {
      // the local user selects a word-ish range on b
      const len = st.doc.length;
      const from = Math.min(len, r.int(len + 1));
      const sel = EditorSelection.single(from, Math.min(len, from + r.int(4)));
      const s0 = st.doc.toString();
      const selected = s0.slice(sel.main.from, sel.main.to);
      st = st.update({ selection: sel }).state;
      // a edits remotely, away from b's selection or across it
      const at = a.text('body');
      for (let k = 1 + r.int(3); k > 0; k--) {
        if (at.length > 0 && r.int(3) === 0) {
          const p = r.int(at.length);
          at.delete(p, 1);
        } else at.insert(r.int(at.length + 1), r.pick(alphabet));
      }
      const changes = [];
      b.observe((c) => changes.push(c));
      b.applyUpdate(a.takeUpdate());
      b.observe(null);
      const tr = st.update({ changes: remoteChangeSet(st.doc, changes) });
      st = tr.state;
      assert.equal(st.doc.toString(), b.text('body').toString(), `seed ${seed} step ${i}`);
      const now = st.doc.sliceString(st.selection.main.from, st.selection.main.to);
      // the selection maps through the changes: the characters it held are
      // still inside it unless someone deleted or typed into them
      if (changes.every((c) => c.del === 0) && now.length === selected.length) assert.equal(now, selected);
      st = EditorState.create({ doc: st.doc.toString(), selection: st.selection });
    }
  }
});

test('remoteCursors: others only, in root, resolved, clamped, names and colors', () => {
  const cur = (root, a, h, resolved = true) => ({ root, anchor: a, head: h, anchorUtf16: a, headUtf16: h, resolved, anchorPos: null, headPos: null });
  const peers = [
    { session: 's1', userId: 'u1', name: 'Ann', color: '#f00', readOnly: false, self: false, meta: {}, cursor: cur('body', 5, 2) },
    { session: 's2', userId: '', name: 'Guest 1', color: '#123', readOnly: false, self: false, meta: { name: 'Bob', color: '#0a0' }, cursor: cur('body', 1, 99) },
    { session: 's3', userId: '', name: '', color: '', readOnly: false, self: true, meta: {}, cursor: cur('body', 0, 0) },
    { session: 's4', userId: '', name: 'Cy', color: '', readOnly: false, self: false, meta: {}, cursor: cur('title', 0, 0) },
    { session: 's5', userId: '', name: 'Di', color: '', readOnly: false, self: false, meta: {}, cursor: cur('body', 0, 0, false) },
    { session: 's6', userId: '', name: '', color: '', readOnly: false, self: false, meta: {}, cursor: null },
  ];
  assert.deepEqual(remoteCursors(peers, 'body', 10), [
    { session: 's1', name: 'Ann', color: '#f00', from: 2, to: 5, head: 2 },
    { session: 's2', name: 'Bob', color: '#0a0', from: 1, to: 10, head: 10 },
  ]);
});

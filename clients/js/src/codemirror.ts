// The CodeMirror 6 binding: one text root of a collabd Document in an
// EditorView.
//
//   const doc = await client.join('notes/42');
//   new EditorView({ parent, doc: doc.text('body'), extensions: [basicSetup, collabd(doc, { root: 'body' })] });
//
// - Editor transactions become CRDT splices (UTF-16 → code points; an astral
//   character is never split).
// - Remote changes become one editor transaction each, not added to the undo
//   history; the local selection is mapped through them, so it stays on its
//   characters.
// - The local selection is shared as presence (relative positions, so others
//   see it move with the text), and the other peers' selections and carets
//   are drawn in their color with their name.
//
// The binding holds the invariant "editor text == CRDT text of root"; if it
// ever breaks (an edit the CRDT refused, a split surrogate pair), the editor
// text is replaced by the CRDT's.
//
// Build entry: dist/codemirror.js, with @codemirror/state and
// @codemirror/view left to the application (there must be one copy of each).

import { Annotation, ChangeSet, type Extension, StateEffect, StateField, Transaction, type Text } from '@codemirror/state';
import { Decoration, type DecorationSet, EditorView, ViewPlugin, type ViewUpdate, WidgetType } from '@codemirror/view';
import type { Document } from './document.js';
import { type EditorChange, type RemoteCursor, editorToSplices, remoteCursors, splicesToEditor } from './cmmap.js';

export { type EditorChange, type Splice, type EditorSplice, type RemoteCursor, editorToSplices, splicesToEditor, remoteCursors, codePoints, cpToUtf16, fallbackColor, peerName, peerColor } from './cmmap.js';

export interface BindingOptions {
  /** The text root edited (default "body"). */
  root?: string;
  /** Share the local selection as presence (default true). */
  presence?: boolean;
}

/** Marks the transactions the binding makes from remote changes. */
export const remoteChange = Annotation.define<boolean>();

const setCursors = StateEffect.define<RemoteCursor[]>();

class CaretWidget extends WidgetType {
  constructor(readonly c: RemoteCursor) {
    super();
  }
  override eq(o: CaretWidget): boolean {
    return o.c.name === this.c.name && o.c.color === this.c.color && o.c.session === this.c.session;
  }
  toDOM(): HTMLElement {
    const caret = document.createElement('span');
    caret.className = 'cm-collab-caret';
    caret.style.borderLeftColor = this.c.color;
    caret.dataset.session = this.c.session;
    const label = document.createElement('span');
    label.className = 'cm-collab-name';
    label.style.backgroundColor = this.c.color;
    label.textContent = this.c.name;
    caret.appendChild(label);
    return caret;
  }
  override ignoreEvent(): boolean {
    return true;
  }
}

function decorate(cs: readonly RemoteCursor[]): DecorationSet {
  const ranges = [];
  for (const c of cs) {
    if (c.from < c.to) {
      ranges.push(Decoration.mark({ class: 'cm-collab-selection', attributes: { style: `background-color: color-mix(in srgb, ${c.color} 25%, transparent)` } }).range(c.from, c.to));
    }
    ranges.push(Decoration.widget({ widget: new CaretWidget(c), side: c.head === c.to && c.from < c.to ? -1 : 1 }).range(c.head));
  }
  return Decoration.set(ranges, true);
}

const cursorField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(deco, tr) {
    deco = deco.map(tr.changes);
    for (const e of tr.effects) if (e.is(setCursors)) deco = decorate(e.value);
    return deco;
  },
  provide: (f) => EditorView.decorations.from(f),
});

const theme = EditorView.baseTheme({
  '.cm-collab-caret': { position: 'relative', borderLeft: '2px solid', marginLeft: '-1px', marginRight: '-1px', pointerEvents: 'none' },
  '.cm-collab-name': {
    position: 'absolute', left: '-2px', top: '-1.35em', fontSize: '11px', lineHeight: '1.3', padding: '0 4px',
    color: 'white', borderRadius: '3px 3px 3px 0', whiteSpace: 'nowrap', fontFamily: 'sans-serif', userSelect: 'none',
  },
});

/** The CRDT splices of a transaction's changes (exported for tests). */
export function transactionSplices(old: Text, changes: ChangeSet): ReturnType<typeof editorToSplices> {
  const cs: EditorChange[] = [];
  changes.iterChanges((fromA, toA, _fromB, _toB, ins) => cs.push({ fromA, toA, insert: ins.toString() }));
  return editorToSplices(old.toString(), cs);
}

/** The ChangeSet of CRDT splices observed on a text that was old before them (exported for tests). */
export function remoteChangeSet(old: Text, changes: Parameters<typeof splicesToEditor>[1]): ChangeSet {
  const { splices } = splicesToEditor(old.toString(), changes);
  let cs = ChangeSet.empty(old.length);
  for (const s of splices) cs = cs.compose(ChangeSet.of([{ from: s.from, to: s.to, insert: s.insert }], cs.newLength));
  return cs;
}

/** The binding of root of doc to the editor it is added to. */
export function collabd(doc: Document, opts: BindingOptions = {}): Extension {
  const root = opts.root ?? 'body';
  const share = opts.presence ?? true;
  const plugin = ViewPlugin.fromClass(
    class {
      private readonly offs: (() => void)[] = [];
      private destroyed = false;
      constructor(readonly view: EditorView) {
        this.offs.push(doc.on('change', ({ changes }) => this.remote(changes.filter((c) => c.root === root))));
        this.offs.push(doc.on('presence', () => this.drawCursors()));
        // Plugins may not dispatch while constructed: catch up right after.
        queueMicrotask(() => {
          if (this.destroyed) return;
          if (view.state.doc.toString() !== doc.text(root)) this.replaceAll();
          this.drawCursors();
        });
      }

      update(u: ViewUpdate): void {
        let local = false;
        for (const tr of u.transactions) {
          if (!tr.docChanged || tr.annotation(remoteChange)) continue;
          local = true;
          try {
            for (const s of transactionSplices(tr.startState.doc, tr.changes)) {
              if (s.del > 0) doc.delete(root, s.pos, s.del);
              if (s.ins !== '') doc.insert(root, s.pos, s.ins);
            }
          } catch {
            // refused (e.g. a lone surrogate): the check below repairs the editor
          }
        }
        if (local && u.state.doc.toString() !== doc.text(root)) queueMicrotask(() => this.replaceAll());
        if (share && (u.selectionSet || local) && !u.transactions.some((tr) => tr.annotation(remoteChange))) this.shareSelection(u.state.selection.main);
      }

      destroy(): void {
        this.destroyed = true;
        for (const off of this.offs) off();
      }

      private shareSelection(sel: { anchor: number; head: number }): void {
        try {
          if (doc.status !== 'closed') doc.setCursorUtf16(root, sel.anchor, sel.head);
        } catch {
          // a refused presence is reported on doc 'error'
        }
      }

      private remote(changes: Parameters<typeof splicesToEditor>[1]): void {
        if (this.destroyed || changes.length === 0) return;
        const cs = remoteChangeSet(this.view.state.doc, changes);
        this.view.dispatch({ changes: cs, annotations: [remoteChange.of(true), Transaction.addToHistory.of(false)] });
        if (this.view.state.doc.toString() !== doc.text(root)) this.replaceAll();
        this.drawCursors();
      }

      /** Replaces the editor text by the CRDT's (keeping the selection where it can). */
      private replaceAll(): void {
        if (this.destroyed) return;
        const text = doc.text(root);
        const cur = this.view.state.doc.toString();
        if (cur === text) return;
        let a = 0;
        while (a < cur.length && a < text.length && cur.charCodeAt(a) === text.charCodeAt(a)) a++;
        let b = 0;
        while (b < cur.length - a && b < text.length - a && cur.charCodeAt(cur.length - 1 - b) === text.charCodeAt(text.length - 1 - b)) b++;
        this.view.dispatch({
          changes: { from: a, to: cur.length - b, insert: text.slice(a, text.length - b) },
          annotations: [remoteChange.of(true), Transaction.addToHistory.of(false)],
        });
      }

      private drawCursors(): void {
        if (this.destroyed) return;
        this.view.dispatch({ effects: setCursors.of(remoteCursors(doc.peers(), root, this.view.state.doc.length)) });
      }
    },
  );
  return [cursorField, plugin, theme];
}

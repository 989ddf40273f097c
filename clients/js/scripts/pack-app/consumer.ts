// A small app using every entry point of @collabd/client, type-checked and
// bundled by scripts/pack-check.mjs against the packed package.
import { Client, Doc, type Document, type DocStatus, type Peer, ServerError, Code } from '@collabd/client';
import { collabd, editorToSplices } from '@collabd/client/codemirror';
import { useDocument, usePeers, type DocumentState } from '@collabd/client/react';
import { EditorView } from '@codemirror/view';
import { createElement, type ReactElement } from 'react';

export function local(): string {
  const d = new Doc({ agent: 7n });
  d.text('body').insert(0, 'hello');
  return d.text('body').toString();
}

export async function editor(parent: HTMLElement, token: string): Promise<EditorView> {
  const client = new Client('wss://collab.example.com/v1/ws', { token, transport: 'auto' });
  const doc: Document = await client.join('notes/42');
  const status: DocStatus = doc.status;
  doc.on('unsaved', ({ unsaved }) => console.log(status, unsaved));
  // @ts-expect-error positions are numbers: the package's types are real, not any
  doc.insert('body', '0', 'x');
  console.log(editorToSplices.length, Code.Unauthorized, ServerError.name);
  return new EditorView({ parent, doc: doc.text('body'), extensions: [collabd(doc, { root: 'body' })] });
}

export function Notes(props: { client: Client | null; id: string }): ReactElement {
  const state: DocumentState = useDocument(props.client, props.id, { leave: true });
  const peers: Peer[] = usePeers(state.doc);
  const names = peers.filter((p) => !p.self).map((p) => p.name);
  return createElement('p', null, state.doc ? state.doc.text('body') : state.status, ` (${names.join(', ')})`);
}

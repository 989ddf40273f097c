// Code mode (?mode=yjs-code): CodeMirror 6 bound to a Y.Text (named "code")
// by y-codemirror.next, on y-websocket's WebsocketProvider connected to this
// server's y-websocket door (/v1/yjs/{doc}), with everyone's cursors and
// selections. y-websocket has no acknowledgements, so the status line shows
// the connection and sync state only (no data-unsaved). Exposes
// window.collabdCode = { view, provider, ydoc, ytext } for tests.
import { basicSetup } from 'codemirror';
import { EditorView, keymap } from '@codemirror/view';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next';
import { $, colorFor, showError, showPeers, showStatus, wsURL, type Params } from './page.js';

/** The Y.Text root this mode edits (GET /v1/docs/{id}/text?root=code reads it). */
export const root = 'code';

export function start(p: Params): void {
  const ydoc = new Y.Doc();
  const ytext = ydoc.getText(root);
  // disableBc: pages of one browser would otherwise sync through a
  // BroadcastChannel; the demo shows the server doing it.
  const provider = new WebsocketProvider(wsURL('/v1/yjs'), p.doc, ydoc, { params: p.token ? { token: p.token } : {}, disableBc: true });
  const color = colorFor(p.name);
  provider.awareness.setLocalStateField('user', { name: p.name, color, colorLight: `${color}33` });

  const view = new EditorView({
    parent: $('editor'),
    doc: ytext.toString(),
    // Yjs's undo manager (only this page's edits) before basicSetup's history.
    extensions: [keymap.of(yUndoManagerKeymap), basicSetup, EditorView.lineWrapping, yCollab(ytext, provider.awareness)],
  });

  let socket = 'connecting';
  let closed = '';
  const show = (): void => {
    if (closed) return showError(closed);
    const status = socket === 'connected' && provider.synced ? 'synced' : socket === 'disconnected' ? 'offline' : 'connecting';
    showStatus({ transport: 'y-websocket', status });
  };
  provider.on('status', ({ status }) => {
    socket = status;
    show();
  });
  provider.on('sync', show);
  provider.on('connection-close', (ev) => {
    // collabd's terminal close codes (4500–4999: denied, wrong kind,
    // deleted…) would only repeat: stop and say why.
    if (ev && ev.code >= 4500 && ev.code < 5000) {
      closed = `closed by the server: ${ev.code} ${ev.reason}`;
      provider.disconnect();
      show();
    }
  });
  const peers = (): void => {
    const list: { name: string; color: string; self: boolean }[] = [];
    provider.awareness.getStates().forEach((s, id) => {
      const u = s.user as { name?: string; color?: string } | undefined;
      if (u?.name) list.push({ name: u.name, color: u.color || '#888', self: id === ydoc.clientID });
    });
    showPeers(list);
  };
  provider.awareness.on('change', peers);
  show();
  peers();
  view.focus();
  Object.assign(window, { collabdCode: { view, provider, ydoc, ytext } });
}

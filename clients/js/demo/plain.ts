// Plain-text mode (the default): a document in CodeMirror on collabd's own
// client, with everyone's cursors and a status line (transport, synced /
// unsaved). URL parameters beyond page.ts's: transport (auto, websocket or
// fallback), persist (0 turns off keeping the document in IndexedDB, on by
// default: a page reloaded offline shows its last state and sends its edits
// when online). Exposes window.collabdDemo = { client, doc, view }.
import { basicSetup } from 'codemirror';
import { EditorView } from '@codemirror/view';
import { Client, type TransportMode } from '../src/index.js';
import { collabd, fallbackColor, peerColor, peerName } from '../src/codemirror.js';
import { $, showPeers, showStatus, wsURL, type Params } from './page.js';

export async function start(p: Params): Promise<void> {
  const transport = (p.q.get('transport') || 'auto') as TransportMode;
  const persist = p.q.get('persist') !== '0' && typeof indexedDB !== 'undefined' ? 'indexeddb' : null;
  const client = new Client(wsURL('/v1/ws'), { token: p.token, transport, persist, backoff: { baseMs: 250, maxMs: 5000 } });
  const doc = await client.join(p.doc);
  doc.setMeta({ name: p.name, color: fallbackColor(p.name) });
  const view = new EditorView({ parent: $('editor'), doc: doc.text('body'), extensions: [basicSetup, EditorView.lineWrapping, collabd(doc, { root: 'body' })] });
  const show = (): void => showStatus({ transport: client.transport ?? 'none', status: doc.status, unsaved: doc.unsaved });
  const peers = (): void => showPeers(doc.peers().map((x) => ({ name: peerName(x), color: peerColor(x), self: x.self })));
  client.on('status', show);
  doc.on('status', show);
  doc.on('unsaved', show);
  doc.on('presence', peers);
  show();
  peers();
  view.focus();
  Object.assign(window, { collabdDemo: { client, doc, view } });
}

// The demo page served by `collabd serve` at /: a document in CodeMirror
// with everyone's cursors, and a status line (transport, synced / unsaved).
// URL parameters: doc (document id), name (shown to others in development
// mode), token (auth mode), transport (auto, websocket or fallback), persist
// (0 turns off keeping the document in IndexedDB, on by default: a page
// reloaded offline shows its last state and sends its edits when online).
import { basicSetup } from 'codemirror';
import { EditorView } from '@codemirror/view';
import { Client, type TransportMode } from '../src/index.js';
import { collabd, fallbackColor, peerColor, peerName } from '../src/codemirror.js';

const q = new URLSearchParams(location.search);
const docName = q.get('doc') || 'welcome';
const name = q.get('name') || `guest-${Math.floor(Math.random() * 1000)}`;
const token = q.get('token') ?? '';
const transport = (q.get('transport') || 'auto') as TransportMode;
const $ = (id: string): HTMLElement => document.getElementById(id)!;
($('docname') as HTMLInputElement).value = docName;
($('username') as HTMLInputElement).value = name;
$('open').addEventListener('submit', (e) => {
  e.preventDefault();
  const u = new URL(location.href);
  u.searchParams.set('doc', ($('docname') as HTMLInputElement).value || 'welcome');
  u.searchParams.set('name', ($('username') as HTMLInputElement).value || name);
  location.href = u.toString();
});

const wsURL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
const persist = q.get('persist') !== '0' && typeof indexedDB !== 'undefined' ? 'indexeddb' : null;
const client = new Client(wsURL, { token, transport, persist, backoff: { baseMs: 250, maxMs: 5000 } });
const status = $('status');

async function main(): Promise<void> {
  const doc = await client.join(docName);
  doc.setMeta({ name, color: fallbackColor(name) });
  const view = new EditorView({ parent: $('editor'), doc: doc.text('body'), extensions: [basicSetup, EditorView.lineWrapping, collabd(doc, { root: 'body' })] });
  const show = (): void => {
    const tr = client.transport ?? 'none';
    const n = doc.unsaved;
    const save = n === 0 ? 'all saved' : `${n} unsaved`;
    status.textContent = `transport: ${tr} · ${doc.status} · ${save}`;
    status.dataset.transport = tr;
    status.dataset.status = doc.status;
    status.dataset.unsaved = String(n);
  };
  const showPeers = (): void => {
    const el = $('peers');
    el.replaceChildren(...doc.peers().map((p) => {
      const s = document.createElement('span');
      s.textContent = peerName(p) + (p.self ? ' (you)' : '');
      s.style.background = peerColor(p);
      return s;
    }));
  };
  client.on('status', show);
  doc.on('status', show);
  doc.on('unsaved', show);
  doc.on('presence', showPeers);
  show();
  showPeers();
  view.focus();
  Object.assign(window, { collabdDemo: { client, doc, view } });
}

main().catch((e: unknown) => {
  status.textContent = `error: ${e instanceof Error ? e.message : String(e)}`;
});

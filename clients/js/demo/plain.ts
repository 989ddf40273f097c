// Plain-text mode (the default): a document in CodeMirror on collabd's own
// client, with everyone's cursors and a status line (transport, synced /
// unsaved). URL parameters beyond page.ts's: transport (auto, websocket or
// fallback), persist (0 turns off keeping the document in IndexedDB, on by
// default: a page reloaded offline shows its last state and sends its edits
// when online). The history panel lists the document's versions (GET
// …/versions), shows one (preview), takes a named one and restores one
// (CRDT-safe: the server's edits arrive here as remote changes). Exposes
// window.collabdDemo = { client, doc, view, history }.
import { basicSetup } from 'codemirror';
import { EditorView } from '@codemirror/view';
import { Client, type Document, type TransportMode, type Version } from '../src/index.js';
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
  const history = historyPanel(doc);
  Object.assign(window, { collabdDemo: { client, doc, view, history } });
}

/** The history panel: list, preview, save, restore. */
function historyPanel(doc: Document): { refresh: () => Promise<void> } {
  $('history').hidden = false; // the panel is this mode's (the Yjs modes have none yet)
  const list = $('versions');
  const preview = $('preview');
  const note = $('history-status');
  const say = (s: string): void => {
    note.textContent = s;
  };
  const button = (label: string, cls: string, f: () => Promise<void>): HTMLButtonElement => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.className = cls;
    b.addEventListener('click', () => {
      f().catch((e: unknown) => say(`error: ${e instanceof Error ? e.message : String(e)}`));
    });
    return b;
  };
  const row = (v: Version): HTMLLIElement => {
    const li = document.createElement('li');
    li.dataset.seq = String(v.seq);
    li.className = v.kind;
    const what = document.createElement('span');
    what.className = 'what';
    const when = new Date(v.time).toLocaleString();
    what.textContent = `#${v.seq} ${v.kind === 'named' ? v.label : 'auto'} · ${when}${v.authors.length ? ` · ${v.authors.join(', ')}` : ''}`;
    li.append(
      what,
      button('preview', 'preview', async () => {
        const full = await doc.version(v.seq);
        preview.textContent = full.text?.body ?? '';
        preview.dataset.seq = String(v.seq);
      }),
      button('restore', 'restore', async () => {
        await doc.whenDurable();
        const r = await doc.restore(v.seq);
        say(`restored #${r.restored} (${r.applied} edits)`);
        preview.textContent = '';
        await refresh();
      }),
    );
    return li;
  };
  const refresh = async (): Promise<void> => {
    const page = await doc.versions({ limit: 50 });
    list.replaceChildren(...page.versions.map(row));
    list.dataset.count = String(page.versions.length);
  };
  $('save-version').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('version-label') as HTMLInputElement;
    (async () => {
      await doc.whenDurable();
      const v = await doc.saveVersion(input.value || 'saved from the demo');
      input.value = '';
      say(`saved #${v.seq}`);
      await refresh();
    })().catch((err: unknown) => say(`error: ${err instanceof Error ? err.message : String(err)}`));
  });
  $('refresh-versions').addEventListener('click', () => {
    refresh().catch((err: unknown) => say(`error: ${err instanceof Error ? err.message : String(err)}`));
  });
  refresh().catch(() => {}); // a new document has no history yet (404)
  return { refresh };
}

// The demo page served by `collabd serve` at /: a document in CodeMirror
// with everyone's cursors, and a status line (transport, synced / unsaved).
// URL parameters: doc (document id), name (shown to others in development
// mode), token (auth mode), transport (auto, websocket or fallback), persist
// (0 turns off keeping the document in IndexedDB, on by default: a page
// reloaded offline shows its last state and sends its edits when online).
// The history panel lists the document's versions (GET …/versions), shows
// one (preview), takes a named one and restores one (CRDT-safe: the server's
// edits arrive here as remote changes).
import { basicSetup } from 'codemirror';
import { EditorView } from '@codemirror/view';
import { Client, type Document, type TransportMode, type Version } from '../src/index.js';
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
  const history = historyPanel(doc);
  Object.assign(window, { collabdDemo: { client, doc, view, history } });
}

/** The history panel: list, preview, save, restore. */
function historyPanel(doc: Document): { refresh: () => Promise<void> } {
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

main().catch((e: unknown) => {
  status.textContent = `error: ${e instanceof Error ? e.message : String(e)}`;
});

// What every mode of the demo page shares: the URL parameters, the header
// form (document, name, mode), the status line and the list of peers.
// Bundled into a chunk of its own that every mode's entry imports.

/** The demo's modes (the `mode` URL parameter) and their labels in the header. */
export const modes = {
  text: 'plain text',
  rich: 'rich text (TipTap)',
  'yjs-code': 'code (Yjs)',
} as const;
export type Mode = keyof typeof modes;

export interface Params {
  mode: Mode;
  doc: string;
  name: string;
  token: string;
  q: URLSearchParams;
}

/** The page's URL parameters, with the defaults the plain page always had. */
export function params(): Params {
  const q = new URLSearchParams(location.search);
  const m = q.get('mode') || 'text';
  return {
    mode: m in modes ? (m as Mode) : 'text',
    doc: q.get('doc') || 'welcome',
    name: q.get('name') || `guest-${Math.floor(Math.random() * 1000)}`,
    token: q.get('token') ?? '',
    q,
  };
}

export const $ = (id: string): HTMLElement => document.getElementById(id)!;

/** Fills the header form from p and makes it reopen the page with its values. */
export function wireForm(p: Params): void {
  const docInput = $('docname') as HTMLInputElement;
  const nameInput = $('username') as HTMLInputElement;
  const modeSelect = $('mode') as HTMLSelectElement;
  docInput.value = p.doc;
  nameInput.value = p.name;
  modeSelect.replaceChildren(...Object.entries(modes).map(([k, label]) => new Option(label, k, false, k === p.mode)));
  $('open').addEventListener('submit', (e) => {
    e.preventDefault();
    const u = new URL(location.href);
    u.searchParams.set('doc', docInput.value || 'welcome');
    u.searchParams.set('name', nameInput.value || p.name);
    if (modeSelect.value === 'text') u.searchParams.delete('mode');
    else u.searchParams.set('mode', modeSelect.value);
    location.href = u.toString();
  });
}

// The server's cursor palette (presence.palette): colors as #rrggbb, the
// only form TipTap's caret extension accepts.
const palette = ['#e5484d', '#f76b15', '#ffc53d', '#46a758', '#12a594', '#00a2c7', '#0090ff', '#3e63dd', '#6e56cf', '#8e4ec6', '#d6409f', '#ad7f58'];

/** A stable #rrggbb color for a name (FNV-1a over the palette, as the server picks one for a user id). */
export function colorFor(name: string): string {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return palette[h % palette.length]!;
}

/**
 * Shows the state in the status line, as text and as data attributes tests
 * wait on: data-status (connecting, synced, offline, error…) and, when the
 * protocol has acknowledgements, data-unsaved (edits not yet durable).
 */
export function showStatus(fields: { transport: string; status: string; unsaved?: number }): void {
  const el = $('status');
  const parts = [`transport: ${fields.transport}`, fields.status];
  if (fields.unsaved !== undefined) parts.push(fields.unsaved === 0 ? 'all saved' : `${fields.unsaved} unsaved`);
  el.textContent = parts.join(' · ');
  el.dataset.transport = fields.transport;
  el.dataset.status = fields.status;
  if (fields.unsaved === undefined) delete el.dataset.unsaved;
  else el.dataset.unsaved = String(fields.unsaved);
}

/** Shows an error in the status line ("error: …", which tests look for). */
export function showError(e: unknown): void {
  const el = $('status');
  el.textContent = `error: ${e instanceof Error ? e.message : String(e)}`;
  el.dataset.status = 'error';
}

/** Lists the peers as colored name tags. */
export function showPeers(peers: { name: string; color: string; self: boolean }[]): void {
  $('peers').replaceChildren(...peers.map((p) => {
    const s = document.createElement('span');
    s.textContent = p.name + (p.self ? ' (you)' : '');
    s.style.background = p.color;
    return s;
  }));
}

/** The ws: or wss: URL of path on the page's own host. */
export const wsURL = (path: string): string => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;

// Rich-text mode (?mode=rich): a TipTap editor on a HocuspocusProvider
// connected to this server's Hocuspocus door (/v1/hocuspocus), exactly as an
// application moving from Hocuspocus would set it up (docs/YJS.md): the
// StarterKit with its own undo/redo off (Collaboration brings Yjs's undo
// manager), Collaboration on the provider's Y.Doc (the XmlFragment
// "default"), and CollaborationCaret for named carets. The status line shows
// "synced" once the provider has synced and data-unsaved =
// provider.unsyncedChanges, which collabd lowers only when an update is on
// disk. Exposes window.collabdRich = { editor, provider, ydoc } for tests.
import { Editor } from '@tiptap/core';
import StarterKit from '@tiptap/starter-kit';
import Collaboration from '@tiptap/extension-collaboration';
import CollaborationCaret from '@tiptap/extension-collaboration-caret';
import { HocuspocusProvider, WebSocketStatus } from '@hocuspocus/provider';
import { $, colorFor, showError, showPeers, showStatus, wsURL, type Params } from './page.js';

interface Tool {
  cmd: string;
  label: string;
  title: string;
  run: (e: Editor) => boolean;
  active?: (e: Editor) => boolean;
  enabled?: (e: Editor) => boolean;
}

const tools: Tool[] = [
  { cmd: 'bold', label: 'B', title: 'Bold (Ctrl+B)', run: (e) => e.chain().focus().toggleBold().run(), active: (e) => e.isActive('bold') },
  { cmd: 'bulletList', label: '• list', title: 'Bullet list (Ctrl+Shift+8)', run: (e) => e.chain().focus().toggleBulletList().run(), active: (e) => e.isActive('bulletList') },
  { cmd: 'undo', label: '↶ undo', title: 'Undo your last change (Ctrl+Z)', run: (e) => e.chain().focus().undo().run(), enabled: (e) => e.can().undo() },
  { cmd: 'redo', label: '↷ redo', title: 'Redo (Ctrl+Shift+Z)', run: (e) => e.chain().focus().redo().run(), enabled: (e) => e.can().redo() },
];

export function start(p: Params): void {
  const provider = new HocuspocusProvider({ url: wsURL('/v1/hocuspocus'), name: p.doc, token: p.token });
  const ydoc = provider.document;

  const bar = document.createElement('div');
  bar.className = 'toolbar';
  const buttons = tools.map((t) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = t.label;
    b.title = t.title;
    b.dataset.cmd = t.cmd;
    b.addEventListener('mousedown', (ev) => ev.preventDefault()); // keep the editor's selection
    b.addEventListener('click', () => t.run(editor));
    bar.append(b);
    return b;
  });
  const mount = document.createElement('div');
  $('editor').replaceChildren(bar, mount);

  const editor = new Editor({
    element: mount,
    extensions: [
      StarterKit.configure({ undoRedo: false }),
      Collaboration.configure({ document: ydoc }),
      CollaborationCaret.configure({ provider, user: { name: p.name, color: colorFor(p.name) } }),
    ],
    editorProps: { attributes: { class: 'rich-doc', spellcheck: 'false' } },
  });
  const refreshTools = (): void => {
    tools.forEach((t, i) => {
      const b = buttons[i]!;
      if (t.active) b.setAttribute('aria-pressed', String(t.active(editor)));
      if (t.enabled) b.disabled = !t.enabled(editor);
    });
  };
  editor.on('transaction', refreshTools);
  refreshTools();

  let socket: string = WebSocketStatus.Connecting;
  let denied = '';
  const show = (): void => {
    if (denied) return showError(`permission denied (${denied})`);
    const status = socket === WebSocketStatus.Connected && provider.isSynced ? 'synced' : socket === WebSocketStatus.Disconnected ? 'offline' : 'connecting';
    showStatus({ transport: 'hocuspocus', status, unsaved: provider.unsyncedChanges });
  };
  provider.on('status', ({ status }: { status: string }) => {
    socket = status;
    show();
  });
  provider.on('synced', show);
  provider.on('unsyncedChanges', show);
  provider.on('authenticated', () => {
    denied = '';
    show();
  });
  provider.on('authenticationFailed', ({ reason }: { reason: string }) => {
    denied = reason || 'denied';
    show();
  });
  provider.on('awarenessChange', ({ states }: { states: { clientId: number; user?: { name?: string; color?: string } }[] }) => {
    showPeers(states.filter((s) => s.user?.name).map((s) => ({ name: s.user!.name!, color: s.user!.color || '#888', self: s.clientId === ydoc.clientID })));
  });
  show();
  editor.commands.focus();
  Object.assign(window, { collabdRich: { editor, provider, ydoc } });
}

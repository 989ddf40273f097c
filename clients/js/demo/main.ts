// The demo page served by `collabd serve` at /. This entry is small: it reads
// ?mode= and loads that mode's module (its own file, so the plain-text page
// never downloads TipTap and the rich-text page never downloads the collabd
// client):
//   (none) or text  plain.ts: CodeMirror on collabd's client (/v1/ws)
//   rich            rich.ts: TipTap on a HocuspocusProvider (/v1/hocuspocus)
//   yjs-code        code.ts: CodeMirror with y-codemirror.next on y-websocket (/v1/yjs)
// Every mode takes doc (document id), name (shown to others in development
// mode; in auth mode the server takes it from the token) and token.
import { params, showError, wireForm } from './page.js';

const p = params();
wireForm(p);
document.body.dataset.mode = p.mode;
const load = p.mode === 'rich' ? import('./rich.js') : p.mode === 'yjs-code' ? import('./code.js') : import('./plain.js');
load.then((m) => m.start(p)).catch(showError);

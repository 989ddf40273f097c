// Node resolves and runs every entry point of the installed package.
import { Doc } from '@collabd/client';
import { editorToSplices } from '@collabd/client/codemirror';
import { useDocument, usePeers } from '@collabd/client/react';

const d = new Doc({ agent: 7n });
d.text('body').insert(0, 'hello');
const ok = d.text('body').toString() === 'hello' && typeof editorToSplices === 'function' && typeof useDocument === 'function' && typeof usePeers === 'function';
console.log(ok ? 'ok' : 'broken');

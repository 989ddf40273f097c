// Transports carry frames (whole binary messages) between the client and
// the server. The WebSocket one is the only one today; a fallback (SSE down,
// HTTP POST up) can implement the same interface.

/** What a transport tells its owner. */
export interface TransportEvents {
  /** The connection is open: frames may be sent. */
  onopen(): void;
  /** One whole frame from the server. */
  onmessage(frame: Uint8Array): void;
  /**
   * The connection ended (or never opened). code is the close code (1006 for
   * a drop without a close frame); called once, never after close().
   */
  onclose(code: number, reason: string): void;
}

/** One connection attempt. */
export interface Transport {
  /** The transport's name, e.g. "websocket". */
  readonly name: string;
  /** Sends one frame; frames sent before onopen or after close are dropped. */
  send(frame: Uint8Array): void;
  /** Closes the connection (no onclose follows). */
  close(code?: number, reason?: string): void;
}

/** Opens a transport to url; events arrive on ev. */
export type TransportFactory = (url: string, ev: TransportEvents) => Transport;

/** The part of the WebSocket API (browsers' and the `ws` package's) used here. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** A transport over a WebSocket (ws:// or wss:// .../v1/ws). */
export function webSocketTransport(WS: WebSocketConstructor): TransportFactory {
  return (url, ev) => {
    let done = false;
    const ws = new WS(url);
    ws.binaryType = 'arraybuffer';
    const finish = (code: number, reason: string): void => {
      if (done) return;
      done = true;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      ev.onclose(code, reason);
    };
    ws.onopen = () => {
      if (!done) ev.onopen();
    };
    ws.onmessage = (m) => {
      if (done) return;
      const d = m.data;
      if (d instanceof ArrayBuffer) ev.onmessage(new Uint8Array(d));
      else if (ArrayBuffer.isView(d)) ev.onmessage(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      // text messages are not frames: ignore them
    };
    ws.onclose = (c) => finish(c.code || 1005, c.reason || '');
    ws.onerror = () => {
      // an error is always followed by a close; some implementations skip it
      // when the socket never opened, so end here too
      if (ws.readyState !== 1) finish(1006, 'connection failed');
    };
    return {
      name: 'websocket',
      send(frame) {
        if (!done && ws.readyState === 1) ws.send(frame);
      },
      close(code = 1000, reason = '') {
        if (done) return;
        done = true;
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close(code, reason);
        } catch {
          ws.close();
        }
      },
    };
  };
}

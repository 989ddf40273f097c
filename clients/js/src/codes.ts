// Error and close codes (docs/PROTOCOL.md "Codes"; Go: protocol/codes.go)
// and the reconnect delay.

/** Codes the client acts on by name; any other code is judged by its range. */
export const Code = {
  GoingAway: 4001,
  DocUnloading: 4002,
  RateLimited: 4003,
  StorageFailed: 4006,
  PendingFull: 4007,
  NoPong: 4009,
  AgentInUse: 4011,
  BadFrame: 4500,
  Unauthorized: 4501,
  Forbidden: 4502,
  TokenExpired: 4503,
  NotJoined: 4508,
  ReadOnly: 4513,
  PresenceRefused: 4516,
  WrongKind: 4517,
} as const;

/**
 * Whether a code (an error frame's or a WebSocket close code) means "retry
 * after backoff": 4000-4499 and the standard closes 1001, 1005, 1006 and
 * 1011-1014. Everything else (4500-4999 above all) is terminal.
 */
export function isRetryCode(code: number): boolean {
  return (code >= 4000 && code <= 4499) || code === 1001 || code === 1005 || code === 1006 || (code >= 1011 && code <= 1014);
}

/** An error the server sent (an error frame, or a close with a code). */
export class ServerError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly doc = '',
    readonly batch: number | bigint = 0,
    readonly retryAfterMs = 0,
  ) {
    super(`collabd: ${code}${doc ? ` (doc ${JSON.stringify(doc)})` : ''}: ${message}`);
    this.name = 'ServerError';
  }

  /** Whether the code asks to retry (reconnect or rejoin) rather than stop. */
  get retry(): boolean {
    return isRetryCode(this.code);
  }
}

/** Reconnect delay shape; the protocol's defaults are 250 ms and 30 s. */
export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
}

export const BACKOFF_BASE_MS = 250;
export const BACKOFF_MAX_MS = 30_000;

/**
 * The delay before reconnect attempt number attempt (from 0) with full
 * jitter: retryAfterMs + r × min(max, base × 2^attempt), r uniform in [0, 1).
 * Never less than the server's hint (Go: protocol.Backoff).
 */
export function backoffDelay(attempt: number, retryAfterMs: number, r: number, o: BackoffOptions = {}): number {
  const base = o.baseMs ?? BACKOFF_BASE_MS;
  const max = o.maxMs ?? BACKOFF_MAX_MS;
  const ceil = attempt >= 0 && attempt < 40 ? Math.min(max, base * 2 ** attempt) : max;
  return Math.max(retryAfterMs, 0) + Math.max(0, Math.min(r, 1)) * ceil;
}

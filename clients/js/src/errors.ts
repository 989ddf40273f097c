// Errors of the crdt port. They mirror the Go package's sentinels: decode
// failures are DecodeError (with the byte offset), the others CrdtError with a
// stable code.

/** A value that is not a valid encoding. Nothing of such an input is applied. */
export class DecodeError extends Error {
  readonly what: string;
  readonly offset: number;
  readonly reason: string;
  constructor(what: string, offset: number, reason: string, cause?: unknown) {
    let msg = `crdt: bad ${what} at byte ${offset}: ${reason}`;
    if (cause instanceof Error) msg += `: ${cause.message}`;
    super(msg, cause === undefined ? undefined : { cause });
    this.name = 'DecodeError';
    this.what = what;
    this.offset = offset;
    this.reason = reason;
  }
}

/** Codes of CrdtError, one per sentinel error of the Go package. */
export type CrdtErrorCode = 'pending-full' | 'too-large' | 'invalid-op' | 'position' | 'invalid-text';

/** An update, edit or document that breaks a rule or a limit. */
export class CrdtError extends Error {
  readonly code: CrdtErrorCode;
  constructor(code: CrdtErrorCode, message: string) {
    super(`crdt: ${message}`);
    this.name = 'CrdtError';
    this.code = code;
  }
}

/** Thrown when an internal invariant is broken (a bug, never bad input). */
export function invariant(msg: string): never {
  throw new Error(`crdt: invariant violated: ${msg}`);
}

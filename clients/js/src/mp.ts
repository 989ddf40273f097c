// A minimal MessagePack writer and reader for the crdt formats (Go:
// internal/mp). The writer produces the smallest encoding of each value, as
// Go does, so encodings are byte-identical; the reader accepts any valid
// encoding of the types it reads and checks every declared length against
// the bytes that remain before using it.

const utf8 = new TextEncoder();

/** A growable byte buffer with msgpack and varint appenders. */
export class Writer {
  private buf = new Uint8Array(256);
  len = 0;

  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }

  byte(b: number): void {
    this.grow(1);
    this.buf[this.len++] = b;
  }

  bytes(p: Uint8Array): void {
    this.grow(p.length);
    this.buf.set(p, this.len);
    this.len += p.length;
  }

  private be(v: number, n: number): void {
    this.grow(n);
    for (let i = n - 1; i >= 0; i--) {
      this.buf[this.len + i] = v & 0xff;
      v = Math.floor(v / 256);
    }
    this.len += n;
  }

  /** An unsigned integer in its smallest encoding (exact up to 2^53, or a bigint). */
  uint(v: number | bigint): void {
    if (typeof v === 'bigint') {
      if (v <= 0xffffffffn) return this.uint(Number(v));
      this.byte(0xcf);
      this.be(Number(v >> 32n), 4);
      this.be(Number(v & 0xffffffffn), 4);
      return;
    }
    if (v < 128) this.byte(v);
    else if (v <= 0xff) (this.byte(0xcc), this.be(v, 1));
    else if (v <= 0xffff) (this.byte(0xcd), this.be(v, 2));
    else if (v <= 0xffffffff) (this.byte(0xce), this.be(v, 4));
    else (this.byte(0xcf), this.be(Math.floor(v / 4294967296), 4), this.be(v % 4294967296, 4));
  }

  arrayLen(n: number): void {
    if (n < 16) this.byte(0x90 | n);
    else if (n <= 0xffff) (this.byte(0xdc), this.be(n, 2));
    else (this.byte(0xdd), this.be(n, 4));
  }

  bool(v: boolean): void {
    this.byte(v ? 0xc3 : 0xc2);
  }

  strHeader(n: number): void {
    if (n < 32) this.byte(0xa0 | n);
    else if (n <= 0xff) (this.byte(0xd9), this.be(n, 1));
    else if (n <= 0xffff) (this.byte(0xda), this.be(n, 2));
    else (this.byte(0xdb), this.be(n, 4));
  }

  str(s: string): void {
    this.strBytes(utf8.encode(s));
  }

  strBytes(p: Uint8Array): void {
    this.strHeader(p.length);
    this.bytes(p);
  }

  bin(p: Uint8Array): void {
    const n = p.length;
    if (n <= 0xff) (this.byte(0xc4), this.be(n, 1));
    else if (n <= 0xffff) (this.byte(0xc5), this.be(n, 2));
    else (this.byte(0xc6), this.be(n, 4));
    this.bytes(p);
  }

  /** Unsigned LEB128 (Go binary.AppendUvarint), exact up to 2^53 or a bigint. */
  uvarint(v: number | bigint): void {
    if (typeof v === 'bigint') {
      while (v >= 0x80n) {
        this.byte(Number(v & 0x7fn) | 0x80);
        v >>= 7n;
      }
      this.byte(Number(v));
      return;
    }
    while (v >= 0x80) {
      this.byte((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    this.byte(v);
  }

  /** Zigzag signed LEB128 (Go binary.AppendVarint). */
  varint(v: number): void {
    this.uvarint(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Utf8 byte length of a code point. */
export function runeLen(c: number): number {
  return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

/** Appends code points as UTF-8. */
export function writeRunes(w: Writer, cps: ArrayLike<number>, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const c = cps[i]!;
    if (c < 0x80) w.byte(c);
    else if (c < 0x800) (w.byte(0xc0 | (c >> 6)), w.byte(0x80 | (c & 0x3f)));
    else if (c < 0x10000) (w.byte(0xe0 | (c >> 12)), w.byte(0x80 | ((c >> 6) & 0x3f)), w.byte(0x80 | (c & 0x3f)));
    else {
      w.byte(0xf0 | (c >> 18));
      w.byte(0x80 | ((c >> 12) & 0x3f));
      w.byte(0x80 | ((c >> 6) & 0x3f));
      w.byte(0x80 | (c & 0x3f));
    }
  }
}

/** A reader failure at a byte offset. */
export class MpError extends Error {
  constructor(
    readonly offset: number,
    readonly kind: 'short' | 'type' | 'too-large' | 'trailing',
    readonly want: string,
  ) {
    super(`mp: ${kind} at byte ${offset}${want ? ` (want ${want})` : ''}`);
  }
}

/** Reads msgpack values from bytes; never allocates from a declared length. */
export class Reader {
  off = 0;
  /** First failure of the sticky reader u(). */
  err: MpError | null = null;
  constructor(readonly b: Uint8Array) {}

  remaining(): number {
    return this.b.length - this.off;
  }

  private fail(kind: MpError['kind'], want: string): MpError {
    return new MpError(this.off, kind, want);
  }

  private be(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + this.b[this.off + i]!;
    this.off += n;
    return v;
  }

  /** Like uint, but records a failure in err and returns 0 (check err once). */
  u(): number {
    const c = this.b[this.off];
    if (c !== undefined && c < 0x80) {
      this.off++;
      return c;
    }
    if (this.err) return 0;
    try {
      return this.uint();
    } catch (e) {
      this.err = e as MpError;
      return 0;
    }
  }

  /**
   * A non-negative integer as a number: exact up to 2^53; larger values come
   * back rounded (still larger than any bound a caller checks them against).
   */
  uint(): number {
    const v = this.uintRaw();
    return typeof v === 'number' ? v : Number(v);
  }

  /** A non-negative integer as an exact bigint (agents). */
  uint64(): bigint {
    const v = this.uintRaw();
    return typeof v === 'number' ? BigInt(v) : v;
  }

  private uintRaw(): number | bigint {
    if (this.off >= this.b.length) throw this.fail('short', 'uint');
    const c = this.b[this.off]!;
    if (c < 0x80) {
      this.off++;
      return c;
    }
    let n: number;
    let signed = false;
    switch (c) {
      case 0xcc: n = 1; break;
      case 0xcd: n = 2; break;
      case 0xce: n = 4; break;
      case 0xcf: n = 8; break;
      case 0xd0: n = 1; signed = true; break;
      case 0xd1: n = 2; signed = true; break;
      case 0xd2: n = 4; signed = true; break;
      case 0xd3: n = 8; signed = true; break;
      default: throw this.fail('type', 'uint');
    }
    const start = this.off;
    this.off++;
    if (this.remaining() < n) {
      this.off = start;
      throw this.fail('short', 'uint');
    }
    if (signed && this.b[this.off]! & 0x80) {
      this.off = start;
      throw this.fail('type', 'non-negative integer');
    }
    if (n < 8) return this.be(n);
    const hi = this.be(4);
    const lo = this.be(4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  bool(): boolean {
    const c = this.b[this.off];
    if (c === undefined) throw this.fail('short', 'bool');
    if (c === 0xc2 || c === 0xc3) {
      this.off++;
      return c === 0xc3;
    }
    throw this.fail('type', 'bool');
  }

  peekString(): boolean {
    const c = this.b[this.off];
    return c !== undefined && ((c & 0xe0) === 0xa0 || c === 0xd9 || c === 0xda || c === 0xdb);
  }

  /** An array header; the count is at most the bytes remaining. */
  arrayLen(): number {
    const c = this.b[this.off];
    if (c === undefined) throw this.fail('short', 'array');
    const start = this.off;
    let n: number;
    if ((c & 0xf0) === 0x90) {
      n = c & 0x0f;
      this.off++;
    } else if (c === 0xdc || c === 0xdd) {
      const w = c === 0xdc ? 2 : 4;
      this.off++;
      if (this.remaining() < w) {
        this.off = start;
        throw this.fail('short', 'array');
      }
      n = this.be(w);
    } else throw this.fail('type', 'array');
    if (n > this.remaining()) {
      this.off = start;
      throw this.fail('too-large', 'array');
    }
    return n;
  }

  private lenPrefixed(want: string, fixMask: number, fix: number, fixMax: number, b8: number, b16: number, b32: number): Uint8Array {
    const c = this.b[this.off];
    if (c === undefined) throw this.fail('short', want);
    const start = this.off;
    let n: number;
    if (fixMask !== 0 && (c & fixMask) === fix) {
      n = c & fixMax;
      this.off++;
    } else if (c === b8 || c === b16 || c === b32) {
      const w = c === b8 ? 1 : c === b16 ? 2 : 4;
      this.off++;
      if (this.remaining() < w) {
        this.off = start;
        throw this.fail('short', want);
      }
      n = this.be(w);
    } else throw this.fail('type', want);
    if (n > this.remaining()) {
      this.off = start;
      throw this.fail('too-large', want);
    }
    const p = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return p;
  }

  /** A str's bytes (a view into the input). */
  strBytes(): Uint8Array {
    return this.lenPrefixed('str', 0xe0, 0xa0, 0x1f, 0xd9, 0xda, 0xdb);
  }

  /** A bin's bytes (a view into the input). */
  bin(): Uint8Array {
    return this.lenPrefixed('bin', 0, 0, 0, 0xc4, 0xc5, 0xc6);
  }

  done(): void {
    if (this.off !== this.b.length) throw this.fail('trailing', '');
  }
}

// The LZ4 block format (no frame), as the Go side's snapshots use it
// (github.com/pierrec/lz4 UncompressBlock / CompressBlockHC). Decompression
// checks every length against both buffers; compression is a small greedy
// single-pass compressor: its output is a valid block any LZ4 reader accepts,
// but not the same bytes as Go's high-compression encoder.

const MIN_MATCH = 4;
const LAST_LITERALS = 5; // the last 5 bytes are always literals
const MF_LIMIT = 12; // the last match starts at least 12 bytes before the end

/** Decompresses an LZ4 block into exactly n bytes, or returns null. */
export function lz4Decompress(src: Uint8Array, n: number): Uint8Array | null {
  const dst = new Uint8Array(n);
  let si = 0;
  let di = 0;
  while (si < src.length) {
    const token = src[si++]!;
    let lit = token >> 4;
    if (lit === 15) {
      for (;;) {
        if (si >= src.length) return null;
        const b = src[si++]!;
        lit += b;
        if (b !== 255) break;
      }
    }
    if (lit > src.length - si || lit > n - di) return null;
    dst.set(src.subarray(si, si + lit), di);
    si += lit;
    di += lit;
    if (si === src.length) break; // the last sequence has no match
    if (src.length - si < 2) return null;
    const off = src[si]! | (src[si + 1]! << 8);
    si += 2;
    if (off === 0 || off > di) return null;
    let ml = token & 15;
    if (ml === 15) {
      for (;;) {
        if (si >= src.length) return null;
        const b = src[si++]!;
        ml += b;
        if (b !== 255) break;
      }
    }
    ml += MIN_MATCH;
    if (ml > n - di) return null;
    if (ml <= 16) {
      for (let k = 0; k < ml; k++, di++) dst[di] = dst[di - off]!;
    } else {
      // A long match: copy in blocks of at most off bytes (an overlapping
      // match repeats its last off bytes), each block a native copy.
      const end = di + ml;
      let step = off;
      while (di < end) {
        const k = Math.min(step, end - di);
        dst.copyWithin(di, di - step, di - step + k);
        di += k;
        step *= 2; // the repeated pattern has doubled: copy twice as much
      }
    }
  }
  return di === n ? dst : null;
}

/**
 * The length an LZ4 block decompresses to, found by scanning its sequences
 * without producing output, so a header's claim can be checked before memory
 * is allocated for it. Stops as soon as the length passes limit (returning
 * more than limit); null for a malformed block.
 */
export function lz4DecompressedLength(src: Uint8Array, limit: number): number | null {
  let si = 0;
  let n = 0;
  const readLen = (v: number): number | null => {
    for (;;) {
      if (si >= src.length) return null;
      const b = src[si++]!;
      v += b;
      if (b !== 255 || v > limit) return v;
    }
  };
  while (si < src.length) {
    const token = src[si++]!;
    let lit: number | null = token >> 4;
    if (lit === 15 && (lit = readLen(lit)) === null) return null;
    if (lit > src.length - si) return null;
    si += lit;
    n += lit;
    if (n > limit) return n;
    if (si === src.length) return n; // the last sequence has no match
    if (src.length - si < 2) return null;
    const off = src[si]! | (src[si + 1]! << 8);
    si += 2;
    if (off === 0 || off > n) return null;
    let ml: number | null = token & 15;
    if (ml === 15 && (ml = readLen(ml)) === null) return null;
    n += ml + MIN_MATCH;
    if (n > limit) return n;
  }
  return n;
}

/** The worst-case size of a compressed block of n bytes. */
export function lz4Bound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

/** Compresses src as one LZ4 block. */
export function lz4Compress(src: Uint8Array): Uint8Array {
  const n = src.length;
  const out = new Uint8Array(lz4Bound(n));
  let o = 0;
  const putLen = (v: number): void => {
    while (v >= 255) {
      out[o++] = 255;
      v -= 255;
    }
    out[o++] = v;
  };
  const emit = (anchor: number, lit: number, off: number, ml: number): void => {
    const tok = o++;
    out[tok] = (Math.min(lit, 15) << 4) | (ml > 0 ? Math.min(ml - MIN_MATCH, 15) : 0);
    if (lit >= 15) putLen(lit - 15);
    out.set(src.subarray(anchor, anchor + lit), o);
    o += lit;
    if (ml === 0) return;
    out[o++] = off & 0xff;
    out[o++] = off >> 8;
    if (ml - MIN_MATCH >= 15) putLen(ml - MIN_MATCH - 15);
  };
  const read32 = (i: number): number => (src[i]! | (src[i + 1]! << 8) | (src[i + 2]! << 16) | (src[i + 3]! << 24)) >>> 0;
  const table = new Int32Array(1 << 14).fill(-1);
  let anchor = 0;
  let i = 0;
  while (i + MF_LIMIT <= n) {
    const seq = read32(i);
    const h = Math.imul(seq, 2654435761) >>> 18;
    const ref = table[h]!;
    table[h] = i;
    if (ref >= 0 && i - ref <= 65535 && read32(ref) === seq) {
      let ml = MIN_MATCH;
      while (i + ml < n - LAST_LITERALS && src[ref + ml] === src[i + ml]) ml++;
      emit(anchor, i - anchor, i - ref, ml);
      i += ml;
      anchor = i;
    } else {
      i++;
    }
  }
  emit(anchor, n - anchor, 0, 0);
  return out.slice(0, o);
}

package crdt

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
)

// Snapshot bodies are decompressed without trusting the length their header
// declares (decompression bombs): see unpackBody and docs/FORMATS.md.

// unpackBody decompresses a snapshot body of the given kind whose header
// declares rawLen bytes (already checked against Limits.MaxSnapshot). It
// never trusts rawLen: before allocating rawLen bytes it measures what the
// body really decompresses to, in constant memory (an LZ4 block is scanned
// without copying; DEFLATE is inflated into a discarding counter through a
// hard cap of rawLen+1 bytes), and a body that decompresses to more or less
// than declared is refused with a *DecodeError (wrapping ErrTooLarge when it
// is more). So a lying header costs no memory, and a truthful one at most
// rawLen.
func unpackBody(kind uint64, body []byte, rawLen int) ([]byte, error) {
	switch kind {
	case snapRaw:
		if len(body) != rawLen {
			return nil, &DecodeError{What: "snapshot", Reason: "body length differs from the header"}
		}
		return body, nil
	case snapLZ4:
		// LZ4 expands at most 255:1; a larger claim is a lie.
		if uint64(rawLen) > 255*uint64(len(body))+16 {
			return nil, &DecodeError{What: "snapshot", Reason: "body length impossible for its compressed size"}
		}
		if n, ok := lz4BlockLen(body, rawLen); !ok || n != rawLen {
			return nil, bodySizeError(n, rawLen, ok)
		}
		raw := make([]byte, rawLen)
		n, err := lz4.UncompressBlock(body, raw)
		if err != nil || n != rawLen {
			return nil, &DecodeError{What: "snapshot", Reason: "decompress body", Err: err}
		}
		return raw, nil
	case snapDeflate:
		// DEFLATE expands at most 1032:1.
		if uint64(rawLen) > 1032*uint64(len(body))+16 {
			return nil, &DecodeError{What: "snapshot", Reason: "body length impossible for its compressed size"}
		}
		inflate := func(w io.Writer) (int64, error) {
			zr := flate.NewReader(bytes.NewReader(body))
			return io.Copy(w, io.LimitReader(zr, int64(rawLen)+1))
		}
		if rawLen > inflateCheckAbove {
			n, err := inflate(io.Discard)
			if err != nil {
				return nil, &DecodeError{What: "snapshot", Reason: "inflate body", Err: err}
			}
			if n != int64(rawLen) {
				return nil, bodySizeError(int(n), rawLen, true)
			}
		}
		buf := bytes.NewBuffer(make([]byte, 0, rawLen+bytes.MinRead))
		n, err := inflate(buf)
		if err != nil {
			return nil, &DecodeError{What: "snapshot", Reason: "inflate body", Err: err}
		}
		if n != int64(rawLen) {
			return nil, bodySizeError(int(n), rawLen, true)
		}
		return buf.Bytes(), nil
	}
	return nil, &DecodeError{What: "snapshot", Reason: fmt.Sprintf("unknown compression %d", kind)}
}

// inflateCheckAbove is the declared size above which a DEFLATE body is
// inflated once into a counter before memory is allocated for it (below it,
// the cost of a lie is small).
const inflateCheckAbove = 1 << 20

func bodySizeError(n, rawLen int, ok bool) error {
	switch {
	case !ok:
		return &DecodeError{What: "snapshot", Reason: "decompress body: malformed LZ4 block"}
	case n > rawLen:
		return &DecodeError{What: "snapshot", Err: ErrTooLarge,
			Reason: fmt.Sprintf("body decompresses to more than the %d bytes declared", rawLen)}
	}
	return &DecodeError{What: "snapshot", Reason: fmt.Sprintf("body decompresses to %d bytes, header says %d", n, rawLen)}
}

// lz4BlockLen returns the length an LZ4 block decompresses to, scanning its
// sequences without producing output, and stops (returning more than limit)
// as soon as it passes limit. ok is false for a malformed block.
func lz4BlockLen(src []byte, limit int) (n int, ok bool) {
	si := 0
	readLen := func(v int) (int, bool) {
		for {
			if si >= len(src) {
				return 0, false
			}
			b := src[si]
			si++
			v += int(b)
			if b != 255 {
				return v, true
			}
			if v > limit {
				return v, true // caught by the caller's limit check
			}
		}
	}
	for si < len(src) {
		token := src[si]
		si++
		lit := int(token >> 4)
		if lit == 15 {
			if lit, ok = readLen(lit); !ok {
				return n, false
			}
		}
		if lit > len(src)-si {
			return n, false
		}
		si += lit
		n += lit
		if n > limit {
			return n, true
		}
		if si == len(src) {
			return n, true // the last sequence has no match
		}
		if len(src)-si < 2 {
			return n, false
		}
		off := int(src[si]) | int(src[si+1])<<8
		si += 2
		if off == 0 || off > n {
			return n, false
		}
		ml := int(token & 15)
		if ml == 15 {
			if ml, ok = readLen(ml); !ok {
				return n, false
			}
		}
		n += ml + 4
		if n > limit {
			return n, true
		}
	}
	return n, true
}

package protocol_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/collabd/collabd/protocol"
)

// killers are the length-prefix bombs and deep nesting that make decoders allocate without bound,
// bare and wrapped in otherwise valid frames.
func killers(nest int) [][]byte {
	bomb := func(h ...byte) []byte { return h }
	return [][]byte{
		bomb(0xdd, 0xff, 0xff, 0xff, 0xff),                                                       // array32 of 2^32-1
		bomb(0xdc, 0xff, 0xff),                                                                   // array16 of 65535
		bomb(0xc6, 0xff, 0xff, 0xff, 0xff),                                                       // bin32 of 4 GiB
		bomb(0xdb, 0xff, 0xff, 0xff, 0xff),                                                       // str32 of 4 GiB
		bomb(0xdf, 0xff, 0xff, 0xff, 0xff),                                                       // map32 of 2^32-1
		bytes.Repeat([]byte{0x91}, nest),                                                         // nested one-element arrays
		frame(5, u(1), u(1), s("t"), []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, s("")),                // hello, agents bomb
		frame(5, u(1), u(1), []byte{0xdb, 0xff, 0xff, 0xff, 0xff}),                               // hello, token bomb
		frame(4, u(3), s("d"), []byte{0xc6, 0xff, 0xff, 0xff, 0xff}),                             // join, sv bomb
		frame(4, u(3), s("d"), bin([]byte{0x92, 1, 0xdd, 0xff, 0xff, 0xff, 0xff}), []byte{0xc2}), // join, bomb inside the sv
		frame(4, u(3), s("d"), bin([]byte{0x92, 1, 0xdc, 0xff, 0xff}), []byte{0xc2}),
		frame(4, u(5), s("d"), u(1), []byte{0xc6, 0xff, 0xff, 0xff, 0xff}),                         // update, bin bomb
		frame(4, u(5), s("d"), u(1), bin(bytes.Repeat([]byte{0x91}, nest))),                        // update of nested arrays
		frame(6, u(4), s("d"), u(0), []byte{0xc3}, bin(nil), []byte{0xdf, 0xff, 0xff, 0xff, 0xff}), // sync, map bomb as sv
		frame(4, u(2), u(1), s("s"), []byte{0xdd, 0xff, 0xff, 0xff, 0xff}),                         // welcome, limits bomb
		append([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, u(9)...),                                      // ping with array32 header
		frame(2, u(7), []byte{0xdb, 0xff, 0xff, 0xff, 0xff}),                                       // leave, doc bomb
	}
}

// seeds are valid frames of every type and the killers.
func seeds() [][]byte {
	var out [][]byte
	for _, m := range messages() {
		out = append(out, protocol.Encode(m))
	}
	return append(out, killers(4096)...)
}

// TestFuzzCorpus keeps testdata/fuzz/FuzzFrame in step with seeds(); run it
// with PROTOCOL_WRITE_CORPUS=1 to rewrite the files.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzFrame")
	write := os.Getenv("PROTOCOL_WRITE_CORPUS") != ""
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range seeds() {
		name := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if write {
			if err := os.WriteFile(name, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (err %v); run PROTOCOL_WRITE_CORPUS=1 go test -run TestFuzzCorpus", name, err)
		}
	}
}

func FuzzFrame(f *testing.F) {
	for _, b := range seeds() {
		f.Add(b)
	}
	f.Add(bytes.Repeat([]byte{0x91}, 1<<20)) // 1M nested arrays: in code, too big for a corpus file
	f.Fuzz(func(t *testing.T, b []byte) {
		var m protocol.Message
		var err error
		checkAlloc(t, b, func() { m, err = protocol.Decode(b, protocol.DecodeLimits{}) })
		// Frame boundaries: every prefix split must fail cleanly or decode.
		_, _ = protocol.Decode(b[:len(b)/2], protocol.DecodeLimits{})
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned %+v with error %v", m, err)
			}
			return
		}
		enc := protocol.Encode(m)
		m2, err := protocol.Decode(enc, protocol.DecodeLimits{})
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(b))) error: %v\nb   = % x\nenc = % x", err, b, enc)
		}
		if !equal(m2, m) {
			t.Fatalf("Decode(Encode(m)) = %+v, want %+v", m2, m)
		}
		if enc2 := protocol.Encode(m2); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding not canonical: % x then % x", enc, enc2)
		}
	})
}

// checkAlloc fails if f allocates more than 64 bytes per input byte plus 1
// MiB, or takes more than a second. MemStats and the clock are process-wide
// (the fuzzing engine's goroutines, a loaded machine): f is deterministic, so
// a real excess shows in every attempt; it fails only if three all exceed.
func checkAlloc(t *testing.T, in []byte, f func()) {
	t.Helper()
	limit := uint64(64*len(in) + 1<<20)
	var got uint64
	var took time.Duration
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		f()
		took = time.Since(start)
		runtime.ReadMemStats(&after)
		if got = after.TotalAlloc - before.TotalAlloc; got <= limit && took <= time.Second {
			return
		}
	}
	if got > limit {
		t.Fatalf("Decode of %d bytes allocated %d bytes (limit %d)", len(in), got, limit)
	}
	t.Fatalf("Decode of %d bytes took %v", len(in), took)
}

package jetstream

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// FuzzParseCursor: a list cursor comes from a query string; it parses to
// the number it prints, or is refused, never panics.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"c0", "c1", "c18446744073709551615", "c18446744073709551616", "c", "x1", "c-1", "c1 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseCursor(s)
		if err != nil {
			return
		}
		if m, err := parseCursor(fmt.Sprintf("c%d", n)); err != nil || m != n {
			t.Fatalf("parseCursor(%q) = %d, and of its printing %d, %v", s, n, m, err)
		}
	})
}

// FuzzVersionOf: a version's metadata header is read from the stream
// (disk, network): bounded, decoded or refused, never a panic.
func FuzzVersionOf(f *testing.F) {
	for _, s := range []string{"", base64.StdEncoding.EncodeToString([]byte(`{"v":1}`)), "!!", "QQ", "QQ=="} {
		f.Add(s, "12")
	}
	f.Fuzz(func(t *testing.T, meta, size string) {
		h := nats.Header{}
		h.Set(VersionMetaHeader, meta)
		h.Set("Nats-Msg-Size", size)
		v, err := versionOf(7, time.Unix(1, 0), h, nil)
		if err != nil {
			return
		}
		if len(v.Meta) > MaxVersionMeta || v.Size < 0 || v.Seq != 7 {
			t.Fatalf("versionOf = %+v", v)
		}
	})
}

package server_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/collabd/collabd/protocol"
)

// clientFrame is m as a client's binary WebSocket frame, masked with a zero
// key (so the payload goes out as is).
func clientFrame(m protocol.Message) []byte {
	p := protocol.Encode(m)
	f := []byte{0x82}
	switch n := len(p); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, 0, 0, 0, 0)
	return append(f, p...)
}

// The read loop waits for its socket to be readable outside gorilla's
// reader (session.readWS) and reads frames until that reader holds no more
// bytes, taking control pongs itself. Frames that arrive together (one write holding several, bytes of
// the next frame behind the one read) or in pieces (a frame over several
// writes, a write per byte) are all handled, none left waiting for bytes
// that already came.
func TestFramesArrivingTogetherOrInPieces(t *testing.T) {
	big := strings.Repeat("long text that does not fit the read buffer. ", 40) // ~1.8 KB update
	for _, tc := range []struct {
		name  string
		split func(b []byte) [][]byte // the writes
	}{
		{"one write", func(b []byte) [][]byte { return [][]byte{b} }},
		{"halves", func(b []byte) [][]byte { return [][]byte{b[:len(b)/2], b[len(b)/2:]} }},
		{"a write per 7 bytes", func(b []byte) [][]byte {
			var ws [][]byte
			for len(b) > 7 {
				ws, b = append(ws, b[:7]), b[7:]
			}
			return append(ws, b)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, t.TempDir())
			c := dial(t, ts.url, 1)
			// Control pongs (what browsers answer WebSocket pings with)
			// between the frames, taken before gorilla sees them.
			pong := []byte{0x8a, 0x82, 0, 0, 0, 0, 'o', 'k'}
			var raw []byte
			raw = append(raw, pong...)
			raw = append(raw, clientFrame(&protocol.Join{Doc: "d", SV: c.doc.StateVector()})...)
			const batches = 4
			for b := uint64(1); b <= batches; b++ {
				text := "x"
				if b == 2 {
					text = big
				}
				if err := c.doc.Text("body").Insert(0, text); err != nil {
					t.Fatal(err)
				}
				raw = append(raw, clientFrame(&protocol.Update{Doc: "d", Batch: b, Update: c.doc.TakeUpdate()})...)
				raw = append(raw, pong...)
			}
			for _, w := range tc.split(raw) {
				if _, err := c.conn.NetConn().Write(w); err != nil {
					t.Fatal(err)
				}
			}
			applied := 0
			for applied < batches {
				switch m := c.read().(type) {
				case *protocol.Sync:
				case *protocol.Ack:
					if m.Status == protocol.AckApplied {
						if m.Batch != uint64(applied+1) {
							t.Fatalf("applied ack for batch %d, want %d", m.Batch, applied+1)
						}
						applied++
					}
				default:
					t.Fatalf("got %T %+v, want sync and acks", m, m)
				}
			}
			// The document has every batch: a second client sees it whole.
			c2 := dial(t, ts.url, 2)
			c2.join("d")
			if got, want := c2.doc.Text("body").String(), c.doc.Text("body").String(); got != want {
				t.Fatalf("second client has %d code points, want %d", len([]rune(got)), len([]rune(want)))
			}
		})
	}
}

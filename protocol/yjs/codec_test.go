package yjs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"
)

type golden struct {
	Name      string `json:"name"`
	Message   string `json:"message"`
	Type      Type   `json:"type"`
	Sync      SyncType
	Payload   string `json:"payload"`
	Reason    string `json:"reason"`
	Awareness []struct {
		Client uint64 `json:"client"`
		Clock  uint64 `json:"clock"`
		State  string `json:"state"`
	} `json:"awareness"`
}

func loadGolden(t testing.TB, path string) []golden {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	out := make([]golden, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			t.Fatal(err)
		}
		var s struct {
			Sync SyncType `json:"sync"`
		}
		_ = json.Unmarshal(r, &s)
		out[i].Sync = s.Sync
	}
	return out
}

func unb64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGolden: every message y-protocols makes decodes to what it holds and
// re-encodes byte for byte.
func TestGolden(t *testing.T) {
	cases := loadGolden(t, "testdata/golden.json")
	if len(cases) < 16 {
		t.Fatalf("%d golden cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			wire := unb64(t, c.Message)
			m, err := Decode(wire, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != c.Type || m.Reason != c.Reason || !bytes.Equal(m.Payload, unb64(t, c.Payload)) {
				t.Fatalf("decoded %+v", m)
			}
			var again []byte
			switch m.Type {
			case TypeSync:
				if m.Sync != c.Sync {
					t.Fatalf("sync type %d, want %d", m.Sync, c.Sync)
				}
				again = AppendSync(nil, m.Sync, m.Payload)
			case TypeAwareness:
				entries, err := DecodeAwareness(m.Payload, Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if len(entries) != len(c.Awareness) {
					t.Fatalf("%d entries, want %d", len(entries), len(c.Awareness))
				}
				for i, e := range entries {
					w := c.Awareness[i]
					if e.Client != w.Client || e.Clock != w.Clock || e.State != w.State || e.Removed() != (w.State == "null") {
						t.Fatalf("entry %d: %+v, want %+v", i, e, w)
					}
				}
				if u := AppendAwarenessUpdate(nil, entries); !bytes.Equal(u, m.Payload) {
					t.Fatalf("awareness update re-encodes to %x, want %x", u, m.Payload)
				}
				again = AppendAwareness(nil, m.Payload)
			case TypeAuth:
				again = AppendAuthDenied(nil, m.Reason)
			case TypeQueryAwareness:
				again = AppendQueryAwareness(nil)
			}
			if !bytes.Equal(again, wire) {
				t.Fatalf("re-encoded %x, want %x", again, wire)
			}
		})
	}
}

// TestGoldenFreshYjs: with the Yjs oracle installed (`make yjs-oracle`),
// the checked-in vectors are what y-protocols makes today.
func TestGoldenFreshYjs(t *testing.T) { checkFresh(t, "protocol.mjs", "testdata/golden.json") }

// checkFresh reruns an interop/yjs script and compares its output with the
// checked-in file it wrote.
func checkFresh(t *testing.T, script, file string) {
	t.Helper()
	cmd := exec.Command("node", script)
	cmd.Dir = oracleDir(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("%s differs from what the pinned packages make: run `node %s > ../../protocol/yjs/%s` in interop/yjs", file, script, file)
	}
}

// TestHostile: lengths past the input, oversized fields, bad UTF-8 and
// JSON, unknown types and trailing bytes are typed errors; nothing panics
// or allocates what the input only declares.
func TestHostile(t *testing.T) {
	lim := Limits{MaxMessage: 1 << 10, MaxAwareness: 4, MaxStateBytes: 16, MaxReasonBytes: 8}
	for _, c := range []struct {
		name string
		msg  []byte
		err  error
	}{
		{"empty", nil, ErrMalformed},
		{"unknown type", []byte{9}, ErrMalformed},
		{"sync subtype 3", []byte{0, 3, 0}, ErrMalformed},
		{"payload past the end", []byte{0, 2, 5, 1, 2}, ErrMalformed},
		{"payload length 2^53", []byte{0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrMalformed},
		{"varUint of 10 bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0}, ErrMalformed},
		{"trailing bytes", []byte{3, 0}, ErrMalformed},
		{"auth not denied", []byte{2, 1, 0}, ErrMalformed},
		{"auth reason bad UTF-8", []byte{2, 0, 2, 0xc3, 0x28}, ErrMalformed},
		{"auth reason too long", append([]byte{2, 0, 9}, "123456789"...), ErrTooLarge},
		{"message too large", append([]byte{0, 2, 0x80, 0x08}, make([]byte, 1024)...), ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.msg, lim)
			var de *DecodeError
			if !errors.Is(err, c.err) || !errors.As(err, &de) {
				t.Fatalf("err %v, want %v in a *DecodeError", err, c.err)
			}
		})
	}
	for _, c := range []struct {
		name string
		upd  []byte
		err  error
	}{
		{"count past the input", []byte{3, 1, 1, 1, '1'}, ErrMalformed},
		{"count over the limit", []byte{5}, ErrTooLarge},
		{"count 2^53-1", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrTooLarge},
		{"state not JSON", []byte{1, 1, 1, 2, '{', 'x'}, ErrMalformed},
		{"state too long", append([]byte{1, 1, 1, 17}, `"1234567890123456"`[:17]...), ErrTooLarge},
		{"state bad UTF-8", []byte{1, 1, 1, 3, '"', 0xff, '"'}, ErrMalformed},
		{"trailing bytes", []byte{0, 0}, ErrMalformed},
	} {
		t.Run("awareness "+c.name, func(t *testing.T) {
			_, err := DecodeAwareness(c.upd, lim)
			var de *DecodeError
			if !errors.Is(err, c.err) || !errors.As(err, &de) {
				t.Fatalf("err %v, want %v in a *DecodeError", err, c.err)
			}
		})
	}
}

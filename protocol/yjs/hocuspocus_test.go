package yjs

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

type hpFile struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Frames  []struct {
		Dir       string  `json:"dir"`
		What      string  `json:"what"`
		Frame     string  `json:"frame"`
		Scope     string  `json:"scope"`
		Stateless *string `json:"stateless"`
		Denied    *string `json:"denied"`
	} `json:"frames"`
}

func loadHocuspocus(t testing.TB) hpFile {
	t.Helper()
	b, err := os.ReadFile("testdata/hocuspocus.json")
	if err != nil {
		t.Fatal(err)
	}
	var f hpFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestHocuspocusFrames: every frame the real @hocuspocus/provider sent, and
// every frame it accepted from a server, decodes to what it carries and
// re-encodes byte for byte.
func TestHocuspocusFrames(t *testing.T) {
	f := loadHocuspocus(t)
	seen := map[HType]int{}
	var token, pong, edit bool
	for i, fr := range f.Frames {
		wire := unb64(t, fr.Frame)
		m, err := DecodeHocuspocus(wire, Limits{})
		if err != nil {
			t.Fatalf("frame %d (%s %s): %v", i, fr.Dir, fr.What, err)
		}
		seen[m.Type]++
		if again := AppendHocuspocus(nil, m); !bytes.Equal(again, wire) {
			t.Fatalf("frame %d (%s %s): re-encoded %x, want %x", i, fr.Dir, fr.What, again, wire)
		}
		if m.Type != HPing && m.Type != HPong && (m.Doc != f.Name || m.HasKey) {
			t.Fatalf("frame %d: document %q (session %v), want %q", i, m.Doc, m.HasKey, f.Name)
		}
		switch {
		case fr.Dir == "out" && m.Type == HAuth:
			token = m.Auth == AuthToken && m.Text == "tok-123" && m.Version == f.Version
		case fr.Dir == "out" && m.Type == HPong:
			pong = true
		case fr.Dir == "out" && m.Type == HSync && m.Sync == SyncUpdate:
			edit = len(m.Payload) > 0
		case fr.What == "authenticated":
			if m.Auth != AuthAuthenticated || m.Text != fr.Scope {
				t.Fatalf("authenticated: %+v", m)
			}
		case fr.What == "stateless":
			if m.Stateless != *fr.Stateless {
				t.Fatalf("stateless %q, provider got %q", m.Stateless, *fr.Stateless)
			}
		case fr.What == "permission denied":
			if m.Auth != AuthPermissionDenied || m.Text != *fr.Denied {
				t.Fatalf("denied: %+v, provider got %q", m, *fr.Denied)
			}
		case fr.What == "token request":
			if m.Auth != AuthToken || m.HasText {
				t.Fatalf("token request: %+v", m)
			}
		case fr.What == "sync status":
			if !m.Synced {
				t.Fatalf("sync status: %+v", m)
			}
		case fr.What == "close":
			if m.Reason == "" {
				t.Fatalf("close: %+v", m)
			}
		}
	}
	if !token || !pong || !edit {
		t.Fatalf("token %v, pong %v, edit %v", token, pong, edit)
	}
	for _, ty := range []HType{HSync, HAwareness, HAuth, HQueryAwareness, HStateless, HClose, HSyncStatus, HPing, HPong} {
		if seen[ty] == 0 {
			t.Errorf("no frame of type %d", ty)
		}
	}
}

// TestHocuspocusFreshYjs: the checked-in frames are what the pinned
// provider makes today.
func TestHocuspocusFreshYjs(t *testing.T) {
	checkFresh(t, "hocuspocus.mjs", "testdata/hocuspocus.json")
}

func TestHocuspocusHostile(t *testing.T) {
	doc := []byte{1, 'd'}
	with := func(b ...byte) []byte { return append(append([]byte{}, doc...), b...) }
	for _, c := range []struct {
		name string
		msg  []byte
		err  error
	}{
		{"empty", nil, ErrMalformed},
		{"name past the end", []byte{5, 'a'}, ErrMalformed},
		{"name too long", append([]byte{0x81, 0x08}, make([]byte, 1025)...), ErrTooLarge},
		{"unknown type", with(4), ErrMalformed},
		{"ping with a document", with(9), ErrMalformed},
		{"auth subtype 3", with(2, 3), ErrMalformed},
		{"sync status 2", with(8, 2), ErrMalformed},
		{"sync status negative", with(8, 0x41), ErrMalformed},
		{"sync status missing", with(8), ErrMalformed},
		{"stateless bad UTF-8", with(5, 1, 0xff), ErrMalformed},
		{"trailing bytes", with(3, 0), ErrMalformed},
		{"varInt too long", with(8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0), ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeHocuspocus(c.msg, Limits{})
			var de *DecodeError
			if !errors.Is(err, c.err) || !errors.As(err, &de) {
				t.Fatalf("err %v, want %v in a *DecodeError", err, c.err)
			}
		})
	}
	// a session id after "\x00" is kept and written back
	m, err := DecodeHocuspocus(append([]byte{4}, "d\x00s1\x03"...), Limits{})
	if err != nil || m.Doc != "d" || m.Session != "s1" || !m.HasKey || m.Type != HQueryAwareness {
		t.Fatalf("%+v, %v", m, err)
	}
}

// FuzzDecodeHocuspocus: any frame decodes to a message that re-encodes
// and decodes the same, or to a typed error.
func FuzzDecodeHocuspocus(f *testing.F) {
	hp := loadHocuspocus(f)
	for _, fr := range hp.Frames {
		if b := unb64(f, fr.Frame); len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := Limits{MaxMessage: 1 << 16}
		m, err := DecodeHocuspocus(b, lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again := AppendHocuspocus(nil, m)
		m2, err := DecodeHocuspocus(again, lim)
		if err != nil {
			t.Fatalf("round trip of %+v: %v", m, err)
		}
		// an explicitly empty close reason or provider version is written
		// back as absent
		if m.Type == HClose {
			m.Reason, m2.Reason = "", ""
		}
		m.Version, m2.Version = "", ""
		if m.Type != m2.Type || m.Doc != m2.Doc || m.Session != m2.Session || m.HasKey != m2.HasKey || m.Sync != m2.Sync ||
			!bytes.Equal(m.Payload, m2.Payload) || m.Auth != m2.Auth || m.Text != m2.Text || m.HasText != m2.HasText ||
			m.Stateless != m2.Stateless || m.Synced != m2.Synced {
			t.Fatalf("round trip: %+v → %x → %+v", m, again, m2)
		}
	})
}

package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/collabd/collabd/storage"
)

// backupBytes returns the bytes of a backup of a store holding a few hundred
// KiB of documents, and the page size it uses.
func backupBytes(t *testing.T) ([]byte, int) {
	t.Helper()
	s, _ := openStore(t, storage.Options{})
	for i := range 300 {
		mustAppend(t, s, fmt.Sprintf("doc-%d", i%30), strings.Repeat(fmt.Sprint(i), 300))
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := s.BackupFile(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	if len(b)%ps != 0 || len(b) < 32*ps {
		t.Fatalf("backup of %d bytes with %d-byte pages", len(b), ps)
	}
	return b, ps
}

// TestTruncatedOrCorruptFile is issue 11 item 11 for the storage API: a
// truncated or damaged file is an error naming it "truncated or corrupt",
// from CheckFile, Verify and Open (read-only and read-write), never a SIGBUS
// (which would kill this test binary). Open leaves the file as it was.
func TestTruncatedOrCorruptFile(t *testing.T) {
	good, ps := backupBytes(t)
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x40
		return b
	}
	tests := []struct {
		name string
		b    []byte
		// open: Open accepts the file (one meta page damaged: bbolt falls
		// back to the other, as after a torn write).
		open   bool
		format bool // ErrFormat (not a bbolt file) rather than ErrCorrupt
	}{
		{name: "empty", b: nil},
		{name: "inside the first meta page", b: good[:40]},
		{name: "after the first meta page", b: good[:ps]},
		{name: "inside the second meta page", b: good[:ps+40]},
		{name: "after the meta pages", b: good[:2*ps]},
		{name: "mid-file", b: good[:len(good)/2]},
		{name: "6000000-style cut, not on a page boundary", b: good[:len(good)/2+123]},
		{name: "last page missing", b: good[:len(good)-ps]},
		{name: "last byte missing", b: good[:len(good)-1]},
		{name: "flipped byte in the first meta page", b: flip(16 + 40), open: true},
		{name: "flipped byte in the second meta page", b: flip(ps + 16 + 40), open: true},
		{name: "flipped checksum of the first meta page", b: flip(16 + 56), open: true},
		{name: "flipped page size in both meta pages", b: func() []byte { b := flip(16 + 9); b[ps+16+9] ^= 0x40; return b }()},
		{name: "not a bbolt file", b: bytes.Repeat([]byte("not a database "), 5000), format: true},
		{name: "short text file", b: []byte("hello\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.db")
			if err := os.WriteFile(path, tt.b, 0o600); err != nil {
				t.Fatal(err)
			}
			want := storage.ErrCorrupt
			if tt.format {
				want = storage.ErrFormat
			}
			err := storage.CheckFile(path)
			if !errors.Is(err, want) {
				t.Fatalf("CheckFile = %v, want %v", err, want)
			}
			if !tt.format && !strings.Contains(err.Error(), "truncated or corrupt") {
				t.Errorf("CheckFile = %q, want it to say truncated or corrupt", err)
			}
			if _, err := storage.Verify(context.Background(), path, storage.Options{}); !errors.Is(err, want) {
				t.Errorf("Verify = %v, want %v", err, want)
			}
			for _, ro := range []bool{true, false} {
				s, err := storage.Open(path, storage.Options{ReadOnly: ro})
				if tt.open {
					if err != nil {
						t.Errorf("Open(read-only %v) = %v, want it to fall back to the intact meta page", ro, err)
						continue
					}
					if _, err := s.List(context.Background(), storage.ListOptions{}); err != nil {
						t.Errorf("List = %v", err)
					}
					if err := s.Close(); err != nil {
						t.Errorf("Close = %v", err)
					}
					continue
				}
				if err == nil {
					_ = s.Close()
					t.Fatalf("Open(read-only %v) = nil error", ro)
				}
				if !errors.Is(err, want) {
					t.Errorf("Open(read-only %v) = %v, want %v", ro, err, want)
				}
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, tt.b) && !tt.open {
				t.Errorf("the file changed (%d bytes, was %d): %v", len(got), len(tt.b), err)
			}
		})
	}
	t.Run("intact", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "t.db")
		if err := os.WriteFile(path, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := storage.CheckFile(path); err != nil {
			t.Fatalf("CheckFile(intact) = %v", err)
		}
		mustVerify(t, path)
	})
}

// TestAcceptedAppendsLoad is "anything acked can be reloaded" for storage:
// an id or update that Append accepts loads back after a reopen, and one it
// refuses gets a typed error (ErrInvalidID, ErrTooLarge) before anything is
// stored; CheckID tells a caller the same in advance.
func TestAcceptedAppendsLoad(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "collabd.db")
	s, err := storage.Open(path, storage.Options{MaxUpdateBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"a", strings.Repeat("x", storage.MaxIDBytes-1), strings.Repeat("y", storage.MaxIDBytes),
		strings.Repeat("z", storage.MaxIDBytes+1), strings.Repeat("é", storage.MaxIDBytes/2+1), strings.Repeat("é", storage.MaxIDBytes/2),
		"", "bad\xff", "notes/a", "with\x00nul"}
	sizes := []int{0, 1, 999, 1000, 1001}
	accepted := map[string][]string{}
	for _, id := range ids {
		for _, n := range sizes {
			data := strings.Repeat("u", n)
			_, err := s.Append(ctx, id, []byte(data))
			checkErr := storage.CheckID(id)
			valid := id != "" && len(id) <= storage.MaxIDBytes && utf8.ValidString(id)
			switch {
			case !valid:
				if !errors.Is(err, storage.ErrInvalidID) || !errors.Is(checkErr, storage.ErrInvalidID) {
					t.Errorf("Append(id of %d bytes) = %v, CheckID = %v, want ErrInvalidID", len(id), err, checkErr)
				}
			case n > 1000:
				if !errors.Is(err, storage.ErrTooLarge) {
					t.Errorf("Append(%d bytes) = %v, want ErrTooLarge", n, err)
				}
			case err != nil || checkErr != nil:
				t.Errorf("Append(id of %d bytes, %d bytes) = %v, CheckID = %v", len(id), n, err, checkErr)
			default:
				accepted[id] = append(accepted[id], data)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = storage.Open(path, storage.Options{MaxUpdateBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, want := range accepted {
		d := mustLoad(t, s, id)
		var got []string
		for _, e := range d.Tail {
			got = append(got, string(e.Data))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("Load(id of %d bytes) = %d entries, want %d", len(id), len(got), len(want))
		}
	}
}

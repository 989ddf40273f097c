package storage_test

import (
	"bytes"
	"context"
	"encoding/binary"
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

// TestVerifyRefusesBadPageIDs damages the pages inside an intact-looking
// file (meta pages fine, size fine): a bucket or branch pointing past the
// pages in use, an element pointing outside its page, a huge overflow
// count. bbolt would read those through its memory map, in Tx.Check's
// goroutine where a fault cannot be recovered; Verify refuses them first.
func TestVerifyRefusesBadPageIDs(t *testing.T) {
	// Enough documents for the docs bucket to need branch pages.
	s, _ := openStore(t, storage.Options{})
	var ps []*storage.Pending
	for i := range 3000 {
		p, err := s.Submit(context.Background(), fmt.Sprintf("document-%05d", i), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if _, err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := s.BackupFile(context.Background(), backup); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, backup) // the page walk accepts a store with branch pages
	good, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	le := binary.LittleEndian
	pgid := le.Uint64(good[16+40:])
	type site struct {
		name  string
		off   int
		val   uint64
		width int
	}
	var sites []site
	for id := 2; id < int(pgid); id++ {
		p := good[id*pageSize : (id+1)*pageSize]
		flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
		if le.Uint64(p[0:]) != uint64(id) || count == 0 {
			continue
		}
		base := id * pageSize
		switch {
		case flags&0x01 != 0 && len(sites) < 12:
			sites = append(sites, site{"branch child past the end", base + 16 + 8, pgid + 1000, 8},
				site{"branch key outside the page", base + 16, 1 << 30, 4})
		case flags&0x02 != 0:
			for i := 0; i < count; i++ {
				e := 16 + 16*i
				if le.Uint32(p[e:])&1 != 0 && len(sites) < 8 {
					pos, ksize := int(le.Uint32(p[e+4:])), int(le.Uint32(p[e+8:]))
					if root := le.Uint64(p[e+pos+ksize:]); root != 0 {
						sites = append(sites, site{"bucket root past the end", base + e + pos + ksize, 1 << 40, 8})
					}
				}
			}
			if len(sites) < 8 {
				sites = append(sites, site{"leaf value outside the page", base + 16 + 12, 1 << 31, 4},
					site{"overflow past the end", base + 12, 1 << 30, 4})
			}
		}
	}
	branches := 0
	for _, st := range sites {
		if strings.HasPrefix(st.name, "branch") {
			branches++
		}
	}
	if len(sites) < 4 || branches == 0 {
		t.Fatalf("found only %d places to damage, %d in branch pages", len(sites), branches)
	}
	refused := map[bool]int{}
	for _, s := range sites {
		b := bytes.Clone(good)
		if s.width == 8 {
			le.PutUint64(b[s.off:], s.val)
		} else {
			le.PutUint32(b[s.off:], uint32(s.val))
		}
		path := filepath.Join(t.TempDir(), "t.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := storage.CheckFile(path); err != nil {
			t.Fatalf("%s: CheckFile = %v; the damage is past the meta pages", s.name, err)
		}
		// A page that is not reachable (a free page of an old
		// transaction) may hold anything: Verify passes it. Every
		// reachable one must be refused, and nothing may crash.
		_, err := storage.Verify(context.Background(), path, storage.Options{})
		switch {
		case errors.Is(err, storage.ErrCorrupt):
			refused[strings.HasPrefix(s.name, "branch")]++
			t.Logf("%s: %v", s.name, err)
		case err != nil:
			t.Errorf("%s (byte %d): Verify = %v, want ErrCorrupt", s.name, s.off, err)
		}
	}
	if refused[true] == 0 || refused[false] < 3 {
		t.Errorf("refused %d damaged branch pages and %d others; want some of each", refused[true], refused[false])
	}
}

// TestImportCheck: ImportOptions.Check sees the decoded document before
// anything is stored, and its refusal writes nothing.
func TestImportCheck(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	mustAppend(t, s, "src", "one")
	mustAppend(t, s, "src", "two")
	var exp bytes.Buffer
	if err := s.Export(ctx, "src", &exp); err != nil {
		t.Fatal(err)
	}
	refusal := errors.New("over the loader's limits")
	var seen []string
	_, err := s.Import(ctx, bytes.NewReader(exp.Bytes()), storage.ImportOptions{ID: "dst", Check: func(d *storage.Document) error {
		for _, e := range d.Tail {
			seen = append(seen, string(e.Data))
		}
		return refusal
	}})
	if !errors.Is(err, refusal) || strings.Join(seen, ",") != "one,two" {
		t.Fatalf("Import = %v, Check saw %q", err, seen)
	}
	if _, err := s.Load(ctx, "dst"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Load after a refused import = %v, want ErrNotFound", err)
	}
	if _, err := s.Import(ctx, bytes.NewReader(exp.Bytes()), storage.ImportOptions{ID: "dst", Check: func(*storage.Document) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	if got := tailStrings(mustLoad(t, s, "dst")); strings.Join(got, ",") != "1:one,2:two" {
		t.Fatalf("imported %q", got)
	}
}

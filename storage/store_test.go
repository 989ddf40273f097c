package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/collabd/collabd/storage"
)

// openStore opens a fresh store in a temporary directory and closes it (and
// checks the file) when the test ends.
func openStore(t *testing.T, opts storage.Options) (*storage.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "collabd.db")
	s, err := storage.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		mustVerify(t, path)
	})
	return s, path
}

// mustVerify runs Verify on a file no process holds open.
func mustVerify(t *testing.T, path string) storage.Report {
	t.Helper()
	rep, err := storage.Verify(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatalf("Verify(%s) = %v, problems %q", path, err, rep.Problems)
	}
	return rep
}

// verifyLive checks a live store through a hot backup.
func verifyLive(t *testing.T, s *storage.Store) storage.Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := s.BackupFile(context.Background(), path); err != nil {
		t.Fatalf("BackupFile() = %v", err)
	}
	return mustVerify(t, path)
}

func mustAppend(t *testing.T, s *storage.Store, id string, data string) uint64 {
	t.Helper()
	seq, err := s.Append(context.Background(), id, []byte(data))
	if err != nil {
		t.Fatalf("Append(%q, %q) = %v", id, data, err)
	}
	return seq
}

func mustLoad(t *testing.T, s *storage.Store, id string) *storage.Document {
	t.Helper()
	d, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("Load(%q) = %v", id, err)
	}
	return d
}

func tailStrings(d *storage.Document) []string {
	var out []string
	for _, e := range d.Tail {
		out = append(out, fmt.Sprintf("%d:%s", e.Seq, e.Data))
	}
	return out
}

func TestAppendLoadReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "collabd.db")
	s, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		for _, id := range []string{"a", "b", "日本"} {
			if got, want := mustAppend(t, s, id, fmt.Sprintf("%s%d", id, i)), uint64(i+1); got != want {
				t.Fatalf("Append(%q) seq = %d, want %d", id, got, want)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, path)

	s, err = storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := mustLoad(t, s, "b")
	if got, want := tailStrings(d), []string{"1:b0", "2:b1", "3:b2"}; !slices.Equal(got, want) {
		t.Errorf("Load(b).Tail = %q, want %q", got, want)
	}
	if d.Snapshot != nil || d.Info.HasSnapshot || d.Info.LastSeq != 3 || d.Info.LogEntries != 3 || d.Info.LogBytes != 6 {
		t.Errorf("Load(b).Info = %+v", d.Info)
	}
	if d.Info.Created.IsZero() || d.Info.Updated.Before(d.Info.Created) {
		t.Errorf("Load(b) times: created %v, updated %v", d.Info.Created, d.Info.Updated)
	}
	if seq := mustAppend(t, s, "b", "b3"); seq != 4 {
		t.Errorf("Append after reopen: seq = %d, want 4", seq)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Documents != 3 || st.LogEntries != 10 || st.Commits != 1 || st.FileBytes <= 0 {
		t.Errorf("Stats() = %+v", st)
	}
}

func TestLoadNeverCreates(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	if _, err := s.Load(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Load(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Since(ctx, "nope", 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Since(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Compact(ctx, "nope", []byte("x"), 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Compact(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Delete(missing) = %v, want ErrNotFound", err)
	}
	if docs, err := s.List(ctx, storage.ListOptions{IncludeDeleted: true}); err != nil || len(docs) != 0 {
		t.Errorf("List() = %v, %v; want nothing", docs, err)
	}
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{MaxUpdateBytes: 10, MaxSnapshotBytes: 20})
	for _, id := range []string{"", string(bytes.Repeat([]byte("x"), storage.MaxIDBytes+1)), "\xff"} {
		if _, err := s.Append(ctx, id, nil); !errors.Is(err, storage.ErrInvalidID) {
			t.Errorf("Append(%q) = %v, want ErrInvalidID", id, err)
		}
		if _, err := s.Load(ctx, id); !errors.Is(err, storage.ErrInvalidID) {
			t.Errorf("Load(%q) = %v, want ErrInvalidID", id, err)
		}
	}
	if _, err := s.Append(ctx, "d", make([]byte, 11)); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("Append(11 bytes) = %v, want ErrTooLarge", err)
	}
	mustAppend(t, s, "d", "0123456789")
	mustAppend(t, s, "d", "") // empty updates are stored too
	if err := s.Compact(ctx, "d", make([]byte, 21), 1); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("Compact(21 bytes) = %v, want ErrTooLarge", err)
	}
	if _, err := storage.Open(filepath.Join(t.TempDir(), "x.db"), storage.Options{QueueLen: -1}); err == nil {
		t.Errorf("Open(QueueLen -1) = nil error")
	}
	if got := tailStrings(mustLoad(t, s, "d")); !slices.Equal(got, []string{"1:0123456789", "2:"}) {
		t.Errorf("Load(d).Tail = %q", got)
	}
}

func TestCompact(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	for i := 1; i <= 10; i++ {
		mustAppend(t, s, "doc", fmt.Sprint(i))
	}
	tests := []struct {
		through uint64
		snap    string
		wantErr error
		tail    []string
	}{
		{through: 11, wantErr: storage.ErrRange},
		{through: 6, snap: "S6", tail: []string{"7:7", "8:8", "9:9", "10:10"}},
		{through: 5, wantErr: storage.ErrRange}, // behind the current snapshot
		{through: 6, snap: "S6b", tail: []string{"7:7", "8:8", "9:9", "10:10"}},
		{through: 8, snap: "S8", tail: []string{"9:9", "10:10"}},
		{through: 10, snap: "S10", tail: nil},
	}
	for _, tt := range tests {
		err := s.Compact(ctx, "doc", []byte(tt.snap), tt.through)
		if !errors.Is(err, tt.wantErr) {
			t.Fatalf("Compact(through %d) = %v, want %v", tt.through, err, tt.wantErr)
		}
		if err != nil {
			continue
		}
		d := mustLoad(t, s, "doc")
		if string(d.Snapshot) != tt.snap || d.Info.SnapshotSeq != tt.through || !slices.Equal(tailStrings(d), tt.tail) {
			t.Errorf("after Compact(%d): snapshot %q@%d, tail %q; want %q@%d, %q",
				tt.through, d.Snapshot, d.Info.SnapshotSeq, tailStrings(d), tt.snap, tt.through, tt.tail)
		}
		if d.Info.LogEntries != int64(len(tt.tail)) || d.Info.SnapshotBytes != int64(len(tt.snap)) {
			t.Errorf("after Compact(%d): info %+v", tt.through, d.Info)
		}
		verifyLive(t, s)
	}
	if seq := mustAppend(t, s, "doc", "11"); seq != 11 {
		t.Errorf("Append after full compaction: seq %d, want 11", seq)
	}
	if _, err := s.Since(ctx, "doc", 9, 0); !errors.Is(err, storage.ErrCompacted) {
		t.Errorf("Since(9) = %v, want ErrCompacted", err)
	}
	es, err := s.Since(ctx, "doc", 10, 0)
	if err != nil || len(es) != 1 || es[0].Seq != 11 {
		t.Errorf("Since(10) = %v, %v; want [11]", es, err)
	}
	info, err := s.Stat(ctx, "doc")
	if err != nil || info.Compactions != 4 || info.LastSeq != 11 || info.LogEntries != 1 {
		t.Errorf("Stat() = %+v, %v", info, err)
	}
}

func TestSinceLimit(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	for i := 1; i <= 5; i++ {
		mustAppend(t, s, "d", fmt.Sprint(i))
	}
	for _, tt := range []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 0, []uint64{1, 2, 3, 4, 5}},
		{0, 2, []uint64{1, 2}},
		{3, 0, []uint64{4, 5}},
		{5, 0, nil},
		{9, 0, nil},
	} {
		es, err := s.Since(ctx, "d", tt.after, tt.limit)
		var got []uint64
		for _, e := range es {
			got = append(got, e.Seq)
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Since(%d, %d) = %v, %v; want %v", tt.after, tt.limit, got, err, tt.want)
		}
	}
}

func TestDeleteTombstone(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	mustAppend(t, s, "gone", "x")
	mustAppend(t, s, "gone", "y")
	if err := s.Compact(ctx, "gone", []byte("S"), 1); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "kept", "z")
	var exp bytes.Buffer
	if err := s.Export(ctx, "gone", &exp); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "gone"); err != nil {
		t.Fatalf("Delete() = %v", err)
	}
	for name, err := range map[string]error{
		"Load":    func() error { _, err := s.Load(ctx, "gone"); return err }(),
		"Append":  func() error { _, err := s.Append(ctx, "gone", []byte("w")); return err }(),
		"Since":   func() error { _, err := s.Since(ctx, "gone", 0, 0); return err }(),
		"Compact": s.Compact(ctx, "gone", nil, 0),
		"Delete":  s.Delete(ctx, "gone"),
		"Export":  s.Export(ctx, "gone", &bytes.Buffer{}),
		"Import": func() error {
			_, err := s.Import(ctx, bytes.NewReader(exp.Bytes()), storage.ImportOptions{})
			return err
		}(),
	} {
		if !errors.Is(err, storage.ErrDeleted) {
			t.Errorf("%s(deleted) = %v, want ErrDeleted", name, err)
		}
	}
	info, err := s.Stat(ctx, "gone")
	if err != nil || !info.Deleted || info.DeletedAt.IsZero() || info.LastSeq != 2 || info.LogEntries != 0 || info.HasSnapshot {
		t.Errorf("Stat(deleted) = %+v, %v", info, err)
	}
	live, _ := s.List(ctx, storage.ListOptions{})
	all, _ := s.List(ctx, storage.ListOptions{IncludeDeleted: true})
	if len(live) != 1 || live[0].ID != "kept" || len(all) != 2 {
		t.Errorf("List() = %v, List(IncludeDeleted) = %v", live, all)
	}
	st, _ := s.Stats(ctx)
	if st.Documents != 1 || st.Deleted != 1 {
		t.Errorf("Stats() = %+v", st)
	}
	verifyLive(t, s)

	// Only an explicit Replace brings the id back.
	info, err = s.Import(ctx, bytes.NewReader(exp.Bytes()), storage.ImportOptions{Replace: true})
	if err != nil || info.Deleted || info.LastSeq != 2 {
		t.Fatalf("Import(Replace) = %+v, %v", info, err)
	}
	d := mustLoad(t, s, "gone")
	if string(d.Snapshot) != "S" || !slices.Equal(tailStrings(d), []string{"2:y"}) {
		t.Errorf("restored doc: snapshot %q, tail %q", d.Snapshot, tailStrings(d))
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	var ids []string
	for i := range 25 {
		id := fmt.Sprintf("doc-%02d", i)
		ids = append(ids, id)
		mustAppend(t, s, id, "x")
	}
	var got []string
	after := ""
	for {
		page, err := s.List(ctx, storage.ListOptions{After: after, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			got = append(got, d.ID)
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, ids) {
		t.Errorf("paged List = %q, want %q", got, ids)
	}
	page, _ := s.List(ctx, storage.ListOptions{After: "doc-05x", Limit: 1})
	if len(page) != 1 || page[0].ID != "doc-06" {
		t.Errorf("List(After doc-05x) = %v, want doc-06", page)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	mustAppend(t, s, "d", "x")
	p, err := s.Submit(ctx, "d", []byte("queued before close"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close commits what was already submitted.
	if seq, err := p.Result(); err != nil || seq != 2 {
		t.Errorf("Result() of a request submitted before Close = %d, %v; want 2, nil", seq, err)
	}
	if _, err := s.Append(ctx, "d", nil); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Load(ctx, "d"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Load after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Backup(ctx, &bytes.Buffer{}); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Backup after Close = %v, want ErrClosed", err)
	}
	if !errors.Is(s.Err(), storage.ErrClosed) {
		t.Errorf("Err() after Close = %v, want ErrClosed", s.Err())
	}
}

func TestReadOnlyAndLocked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "collabd.db")
	s, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "d", "x")
	// A second opener waits for the lock, then gives up.
	if _, err := storage.Open(path, storage.Options{ReadOnly: true, LockTimeout: 1}); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("Open while locked = %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := storage.Open(path, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Append(ctx, "d", nil); !errors.Is(err, storage.ErrReadOnly) {
		t.Errorf("Append(read-only) = %v, want ErrReadOnly", err)
	}
	if err := ro.Delete(ctx, "d"); !errors.Is(err, storage.ErrReadOnly) {
		t.Errorf("Delete(read-only) = %v, want ErrReadOnly", err)
	}
	if _, err := ro.Import(ctx, bytes.NewReader(nil), storage.ImportOptions{}); !errors.Is(err, storage.ErrReadOnly) {
		t.Errorf("Import(read-only) = %v, want ErrReadOnly", err)
	}
	if got := tailStrings(mustLoad(t, ro, "d")); !slices.Equal(got, []string{"1:x"}) {
		t.Errorf("Load(read-only) = %q", got)
	}
	if _, err := storage.Open(filepath.Join(t.TempDir(), "missing.db"), storage.Options{ReadOnly: true}); err == nil {
		t.Errorf("Open(missing, read-only) = nil error; read-only must not create")
	}
}

func TestNotAStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "junk.db")
	if err := writeFile(path, bytes.Repeat([]byte("junk"), 4096)); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.Open(path, storage.Options{}); !errors.Is(err, storage.ErrFormat) {
		t.Errorf("Open(junk) = %v, want ErrFormat", err)
	}
}

// TestJournalStaysBounded checks that the committer keeps moving journal
// entries into the per-document logs, and that Close empties the journal.
// Cleaning runs in the committer's idle time (TestIdleMigration checks that
// it gets back under the target); a writer that comes back at once may find
// it not done, but commits of requests clean past twice the target, so the
// journal never holds more than 2×8+1 entries here.
func TestJournalStaysBounded(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t, storage.Options{JournalEntries: 8})
	for i := range 300 {
		mustAppend(t, s, fmt.Sprintf("doc-%d", i%20), fmt.Sprint(i))
		if st, err := s.Stats(ctx); err != nil || st.JournalEntries > 17 {
			t.Fatalf("after %d appends: Stats() = %+v, %v; want at most 17 journal entries", i+1, st, err)
		}
	}
	d := mustLoad(t, s, "doc-7")
	if len(d.Tail) != 15 || d.Info.LastSeq != 15 || d.Tail[14].Seq != 15 || string(d.Tail[14].Data) != "287" {
		t.Errorf("Load(doc-7) = %+v, tail %q", d.Info, tailStrings(d))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, path)
	if rep.JournalEntries != 0 || rep.Documents != 20 || rep.LogEntries != 300 {
		t.Errorf("Verify() after Close = %+v; want an empty journal, 20 documents, 300 entries", rep)
	}
}

// TestImportsNothingOfTheProject pins the dependency rule: storage stores
// opaque bytes and imports no other package of this module.
func TestImportsNothingOfTheProject(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/collabd/collabd") {
			t.Errorf("storage imports %s", imp)
		}
	}
}

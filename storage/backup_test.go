package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/collabd/collabd/storage"
)

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	for i := 1; i <= 6; i++ {
		mustAppend(t, s, "with-snap", fmt.Sprint(i))
		mustAppend(t, s, "plain", fmt.Sprint(i))
	}
	if err := s.Compact(ctx, "with-snap", []byte("S4"), 4); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "compacted-empty", "x")
	if err := s.Compact(ctx, "compacted-empty", []byte{}, 1); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"with-snap", "plain", "compacted-empty"} {
		want := mustLoad(t, s, id)
		var buf bytes.Buffer
		if err := s.Export(ctx, id, &buf); err != nil {
			t.Fatalf("Export(%q) = %v", id, err)
		}
		exp := buf.Bytes()
		info, err := s.Import(ctx, bytes.NewReader(exp), storage.ImportOptions{ID: id + "-copy"})
		if err != nil {
			t.Fatalf("Import(%q) = %v", id, err)
		}
		got := mustLoad(t, s, id+"-copy")
		if info != got.Info {
			t.Errorf("Import returned %+v, Load says %+v", info, got.Info)
		}
		if !bytes.Equal(got.Snapshot, want.Snapshot) || got.Info.HasSnapshot != want.Info.HasSnapshot ||
			!slices.Equal(tailStrings(got), tailStrings(want)) ||
			got.Info.LastSeq != want.Info.LastSeq || got.Info.SnapshotSeq != want.Info.SnapshotSeq ||
			!got.Info.Created.Equal(want.Info.Created) || !got.Info.Updated.Equal(want.Info.Updated) {
			t.Errorf("Import(Export(%q)) = %+v %q %q, want %+v %q %q", id,
				got.Info, got.Snapshot, tailStrings(got), want.Info, want.Snapshot, tailStrings(want))
		}
		// Appends continue after the imported sequence numbers.
		if seq := mustAppend(t, s, id+"-copy", "next"); seq != want.Info.LastSeq+1 {
			t.Errorf("Append after Import(%q) seq = %d, want %d", id, seq, want.Info.LastSeq+1)
		}
		if _, err := s.Import(ctx, bytes.NewReader(exp), storage.ImportOptions{}); !errors.Is(err, storage.ErrExists) {
			t.Errorf("Import onto existing %q = %v, want ErrExists", id, err)
		}
		if _, err := s.Import(ctx, bytes.NewReader(exp), storage.ImportOptions{Replace: true}); err != nil {
			t.Errorf("Import(Replace) onto %q = %v", id, err)
		}
	}
	verifyLive(t, s)
}

// TestImportRejectsDamage flips every byte and cuts at every length of a
// small export, and checks that each damaged stream is refused with a
// *DecodeError and that nothing is written.
func TestImportRejectsDamage(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	for i := 1; i <= 4; i++ {
		mustAppend(t, s, "src", fmt.Sprintf("update-%d", i))
	}
	if err := s.Compact(ctx, "src", []byte("snapshot"), 2); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Export(ctx, "src", &buf); err != nil {
		t.Fatal(err)
	}
	exp := buf.Bytes()
	try := func(what string, b []byte) {
		t.Helper()
		_, err := s.Import(ctx, bytes.NewReader(b), storage.ImportOptions{ID: "dst"})
		var de *storage.DecodeError
		if !errors.As(err, &de) || !(errors.Is(err, storage.ErrCorrupt) || errors.Is(err, storage.ErrTooLarge)) {
			t.Errorf("Import(%s) = %v, want a *DecodeError wrapping ErrCorrupt or ErrTooLarge", what, err)
		}
	}
	for i := range exp {
		b := bytes.Clone(exp)
		b[i] ^= 0x41
		try(fmt.Sprintf("byte %d flipped", i), b)
	}
	for n := range len(exp) {
		try(fmt.Sprintf("cut at %d", n), exp[:n])
	}
	try("trailing byte", append(bytes.Clone(exp), 0))
	if _, err := s.Stat(ctx, "dst"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(dst) after rejected imports = %v, want ErrNotFound", err)
	}
	// Limits apply before allocation.
	small, _ := openStore(t, storage.Options{MaxSnapshotBytes: 4})
	if _, err := small.Import(ctx, bytes.NewReader(exp), storage.ImportOptions{}); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("Import(snapshot over limit) = %v, want ErrTooLarge", err)
	}
	tiny, _ := openStore(t, storage.Options{MaxImportBytes: int64(len(exp) - 1)})
	if _, err := tiny.Import(ctx, bytes.NewReader(exp), storage.ImportOptions{}); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("Import(stream over limit) = %v, want ErrTooLarge", err)
	}
}

// TestBackupWhileWriting takes hot backups while writers append and compact,
// and checks that each copy verifies and holds, for every document, a prefix
// of what the live store ends with.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Append(ctx, fmt.Sprintf("doc-%d", (w+i)%5), fmt.Appendf(nil, "w%d-%d", w, i)); err != nil {
					t.Errorf("Append() = %v", err)
					return
				}
			}
		})
	}
	dir := t.TempDir()
	var backups []string
	for i := range 4 {
		// Let some appends land between backups (waits for events, not time).
		waitForEntries(t, s, int64(50*(i+1)))
		path := filepath.Join(dir, fmt.Sprintf("backup-%d.db", i))
		if err := s.BackupFile(ctx, path); err != nil {
			t.Fatalf("BackupFile() = %v", err)
		}
		backups = append(backups, path)
	}
	close(stop)
	wg.Wait()

	final := map[string][]storage.Entry{}
	docs, _ := s.List(ctx, storage.ListOptions{})
	for _, d := range docs {
		final[d.ID] = mustLoad(t, s, d.ID).Tail
	}
	for _, path := range backups {
		rep := mustVerify(t, path)
		b, err := storage.Open(path, storage.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		copied, _ := b.List(ctx, storage.ListOptions{})
		for _, info := range copied {
			tail := mustLoad(t, b, info.ID).Tail
			if len(tail) > len(final[info.ID]) {
				t.Errorf("%s: %q has %d entries, live store only %d", path, info.ID, len(tail), len(final[info.ID]))
				continue
			}
			for i, e := range tail {
				if f := final[info.ID][i]; f.Seq != e.Seq || !bytes.Equal(f.Data, e.Data) {
					t.Errorf("%s: %q entry %d = %d:%q, live %d:%q", path, info.ID, i, e.Seq, e.Data, f.Seq, f.Data)
				}
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d documents, %d entries", filepath.Base(path), rep.Documents, rep.LogEntries)
	}
}

// waitForEntries blocks until the store holds at least n log entries. Each
// Stats call is a cheap read; the loop ends as soon as writers get there.
func waitForEntries(t *testing.T, s *storage.Store, n int64) {
	t.Helper()
	for {
		st, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.LogEntries >= n {
			return
		}
		if st.Commits > uint64(100*n) {
			t.Fatalf("waiting for %d entries: only %d after %d commits", n, st.LogEntries, st.Commits)
		}
	}
}

func TestBackupCanceled(t *testing.T) {
	s, _ := openStore(t, storage.Options{})
	mustAppend(t, s, "d", "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Backup(ctx, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Backup(canceled) = %v, want context.Canceled", err)
	}
	path := filepath.Join(t.TempDir(), "b.db")
	if err := s.BackupFile(ctx, path); !errors.Is(err, context.Canceled) {
		t.Errorf("BackupFile(canceled) = %v, want context.Canceled", err)
	}
	if _, err := storage.Verify(context.Background(), path, storage.Options{}); err == nil {
		t.Errorf("a canceled BackupFile left a file at %s", path)
	}
}

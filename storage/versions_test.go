package storage_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/collabd/collabd/storage"
)

func mustSaveVersion(t *testing.T, s *storage.Store, id string, v storage.NewVersion) uint64 {
	t.Helper()
	seq, err := s.SaveVersion(context.Background(), id, v)
	if err != nil {
		t.Fatalf("SaveVersion(%q, %+v) = %v", id, v, err)
	}
	return seq
}

func seqsOf(vs []storage.Version) []uint64 {
	var out []uint64
	for _, v := range vs {
		out = append(out, v.Seq)
	}
	return out
}

func TestVersionsRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t, storage.Options{})
	mustAppend(t, s, "doc", "u1")
	want := storage.NewVersion{Version: 7, Kind: storage.VersionNamed, Label: "Draft ✓", Authors: []string{"alice", "bob"}, Snapshot: []byte("snap-1")}
	if seq := mustSaveVersion(t, s, "doc", want); seq != 1 {
		t.Fatalf("first version seq = %d, want 1", seq)
	}
	for i := range 4 {
		mustSaveVersion(t, s, "doc", storage.NewVersion{Version: uint64(8 + i), Kind: storage.VersionAuto, Snapshot: []byte{byte(i)}})
	}
	got, err := s.Version(ctx, "doc", 1)
	if err != nil {
		t.Fatalf("Version(doc, 1) = %v", err)
	}
	if got.Version != 7 || got.Kind != storage.VersionNamed || got.Label != want.Label ||
		!slices.Equal(got.Authors, want.Authors) || string(got.Snapshot) != "snap-1" || got.Time.IsZero() {
		t.Fatalf("Version(doc, 1) = %+v, want %+v", got, want)
	}
	list, err := s.Versions(ctx, "doc", 0, 2)
	if err != nil {
		t.Fatalf("Versions = %v", err)
	}
	if !slices.Equal(seqsOf(list), []uint64{5, 4}) || list[0].Snapshot != nil || list[0].SnapshotBytes != 1 {
		t.Fatalf("Versions(limit 2) = %+v, want seqs 5, 4 without snapshots", list)
	}
	list, _ = s.Versions(ctx, "doc", 4, 10)
	if !slices.Equal(seqsOf(list), []uint64{3, 2, 1}) {
		t.Fatalf("Versions(before 4) = %v, want 3 2 1", seqsOf(list))
	}
	if _, err := s.Version(ctx, "doc", 99); !errors.Is(err, storage.ErrNoVersion) {
		t.Fatalf("Version(doc, 99) = %v, want ErrNoVersion", err)
	}
	if _, err := s.Versions(ctx, "nope", 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Versions(nope) = %v, want ErrNotFound", err)
	}
	if _, err := s.SaveVersion(ctx, "nope", storage.NewVersion{Kind: storage.VersionAuto}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("SaveVersion(nope) = %v, want ErrNotFound", err)
	}
	// Compaction leaves versions alone; they survive a reopen and verify.
	if err := s.Compact(ctx, "doc", []byte("snap"), 1); err != nil {
		t.Fatal(err)
	}
	if rep := verifyLive(t, s); rep.Versions != 5 {
		t.Fatalf("Verify counted %d versions, want 5", rep.Versions)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if list, _ := s2.Versions(ctx, "doc", 0, 0); len(list) != 5 {
		t.Fatalf("after reopen: %d versions, want 5", len(list))
	}
	// Delete drops the history with the document.
	if err := s2.Delete(ctx, "doc"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Versions(ctx, "doc", 0, 0); !errors.Is(err, storage.ErrDeleted) {
		t.Fatalf("Versions(deleted) = %v, want ErrDeleted", err)
	}
	if _, err := s2.SaveVersion(ctx, "doc", storage.NewVersion{Kind: storage.VersionAuto}); !errors.Is(err, storage.ErrDeleted) {
		t.Fatalf("SaveVersion(deleted) = %v, want ErrDeleted", err)
	}
}

// A document that so far lives in the journal only gets its bucket with its
// first version, and its journal tail stays live.
func TestVersionOfJournalOnlyDocument(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	mustAppend(t, s, "j", "a")
	mustAppend(t, s, "j", "b")
	mustSaveVersion(t, s, "j", storage.NewVersion{Version: 2, Kind: storage.VersionAuto, Snapshot: []byte("ab")})
	mustAppend(t, s, "j", "c")
	if got := tailStrings(mustLoad(t, s, "j")); !slices.Equal(got, []string{"1:a", "2:b", "3:c"}) {
		t.Fatalf("tail = %q, want a b c", got)
	}
	if list, _ := s.Versions(ctx, "j", 0, 0); len(list) != 1 {
		t.Fatalf("versions = %d, want 1", len(list))
	}
}

func TestVersionHostileInput(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{MaxSnapshotBytes: 64})
	mustAppend(t, s, "doc", "u")
	for name, v := range map[string]storage.NewVersion{
		"huge label":    {Kind: storage.VersionNamed, Label: strings.Repeat("x", storage.MaxVersionLabel+1)},
		"control char":  {Kind: storage.VersionNamed, Label: "a\nb"},
		"not utf-8":     {Kind: storage.VersionNamed, Label: "\xff"},
		"bad kind":      {Kind: 9},
		"many authors":  {Kind: storage.VersionAuto, Authors: make([]string, storage.MaxVersionAuthors+1)},
		"huge snapshot": {Kind: storage.VersionAuto, Snapshot: make([]byte, 65)},
	} {
		_, err := s.SaveVersion(ctx, "doc", v)
		if !errors.Is(err, storage.ErrInvalidVersion) && !errors.Is(err, storage.ErrTooLarge) {
			t.Errorf("%s: SaveVersion = %v, want ErrInvalidVersion or ErrTooLarge", name, err)
		}
	}
	if list, _ := s.Versions(ctx, "doc", 0, 0); len(list) != 0 {
		t.Fatalf("refused versions were stored: %+v", list)
	}
}

// Retention under synctest's clock: a version a minute for ten days keeps
// every version of the last All period, one a day before that, and every
// named version.
func TestVersionRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "r.db")
		ret := storage.Retention{All: 48 * time.Hour, Daily: 5 * 24 * time.Hour}
		s, err := storage.Open(path, storage.Options{VersionRetention: ret, VersionPrune: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "doc", []byte("u")); err != nil {
			t.Fatal(err)
		}
		var named []uint64
		for i := range 10 * 24 * 4 { // every 15 minutes for ten days
			kind, label := storage.VersionAuto, ""
			if i%100 == 0 {
				kind, label = storage.VersionNamed, "milestone"
			}
			seq, err := s.SaveVersion(ctx, "doc", storage.NewVersion{Version: uint64(i), Kind: kind, Label: label})
			if err != nil {
				t.Fatal(err)
			}
			if kind == storage.VersionNamed {
				named = append(named, seq)
			}
			time.Sleep(15 * time.Minute)
		}
		now := time.Now()
		vs, err := s.Versions(ctx, "doc", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		perDay := map[int64]int{}
		perWeek := map[int64]int{}
		var gotNamed []uint64
		for _, v := range vs {
			age := now.Sub(v.Time)
			switch {
			case v.Kind == storage.VersionNamed:
				gotNamed = append(gotNamed, v.Seq)
			case age <= ret.All+15*time.Minute:
			case age <= ret.Daily+15*time.Minute:
				perDay[v.Time.Unix()/86400]++
			default:
				perWeek[v.Time.Unix()/(7*86400)]++
			}
		}
		slices.Reverse(gotNamed)
		if !slices.Equal(gotNamed, named) {
			t.Errorf("named versions kept %v, want all of %v", gotNamed, named)
		}
		for d, n := range perDay {
			if n > 2 { // the day the zone boundary cuts may hold one of each side
				t.Errorf("day %d keeps %d automatic versions, want at most 2", d, n)
			}
		}
		for w, n := range perWeek {
			if n > 2 {
				t.Errorf("week %d keeps %d automatic versions, want at most 2", w, n)
			}
		}
		young := 0
		for _, v := range vs {
			if v.Kind == storage.VersionAuto && now.Sub(v.Time) < ret.All {
				young++
			}
		}
		if want := int(ret.All/(15*time.Minute)) - 4; young < want { // minus the named ones among them and the edges
			t.Errorf("%d automatic versions younger than %v kept, want at least %d", young, ret.All, want)
		}
		if len(vs) > 300 {
			t.Errorf("%d versions kept after ten days", len(vs))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if rep := mustVerify(t, path); rep.Versions != int64(len(vs)) {
			t.Fatalf("Verify counted %d versions, want %d", rep.Versions, len(vs))
		}
	})
}

// Pruning is bounded per commit: the rest goes with later versions.
func TestVersionPruneBounded(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_000_000_000, 0)
	clock := func() time.Time { return now }
	s, _ := openStore(t, storage.Options{VersionRetention: storage.Retention{All: time.Hour, Daily: time.Hour}, VersionPrune: 3, Now: clock})
	mustAppend(t, s, "doc", "u")
	for range 20 {
		mustSaveVersion(t, s, "doc", storage.NewVersion{Kind: storage.VersionAuto})
		now = now.Add(time.Minute) // all within one week
	}
	now = now.Add(30 * 24 * time.Hour)
	mustSaveVersion(t, s, "doc", storage.NewVersion{Kind: storage.VersionAuto})
	if vs, _ := s.Versions(ctx, "doc", 0, 0); len(vs) != 21-3 {
		t.Fatalf("after one commit %d versions, want %d (3 pruned)", len(vs), 21-3)
	}
	for range 10 {
		mustSaveVersion(t, s, "doc", storage.NewVersion{Kind: storage.VersionAuto})
	}
	// The old week keeps one version; the eleven new ones are young.
	if vs, _ := s.Versions(ctx, "doc", 0, 0); len(vs) != 1+11 {
		t.Fatalf("finally %d versions, want 12", len(vs))
	}
}

// A store file is marked format 2 by its first version, and Open accepts
// both formats.
func TestVersionFormatBump(t *testing.T) {
	s, path := openStore(t, storage.Options{})
	mustAppend(t, s, "doc", "u")
	mustSaveVersion(t, s, "doc", storage.NewVersion{Kind: storage.VersionAuto})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatalf("reopen after the format bump: %v", err)
	}
	s2.Close()
}

// Export with Versions carries the history; Import stores it, and new
// versions continue after the imported sequences. A plain export has none.
func TestExportImportVersions(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{})
	mustAppend(t, s, "doc", "a")
	mustSaveVersion(t, s, "doc", storage.NewVersion{Version: 1, Kind: storage.VersionNamed, Label: "one", Authors: []string{"al"}, Snapshot: []byte("s1")})
	mustSaveVersion(t, s, "doc", storage.NewVersion{Version: 1, Kind: storage.VersionAuto, Snapshot: []byte("s2")})
	var with, without bytes.Buffer
	if err := s.ExportWith(ctx, "doc", &with, storage.ExportOptions{Versions: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, "doc", &without); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, bytes.NewReader(with.Bytes()), storage.ImportOptions{ID: "copy"}); err != nil {
		t.Fatal(err)
	}
	vs, err := s.Versions(ctx, "copy", 0, 0)
	if err != nil || !slices.Equal(seqsOf(vs), []uint64{2, 1}) || vs[1].Label != "one" || !slices.Equal(vs[1].Authors, []string{"al"}) {
		t.Fatalf("imported versions = %+v, %v", vs, err)
	}
	if v, err := s.Version(ctx, "copy", 1); err != nil || string(v.Snapshot) != "s1" {
		t.Fatalf("imported version 1 = %+v, %v", v, err)
	}
	if seq := mustSaveVersion(t, s, "copy", storage.NewVersion{Kind: storage.VersionAuto}); seq != 3 {
		t.Fatalf("next version after import: seq %d, want 3", seq)
	}
	// Replacing with a plain export drops the history.
	if _, err := s.Import(ctx, bytes.NewReader(without.Bytes()), storage.ImportOptions{ID: "copy", Replace: true}); err != nil {
		t.Fatal(err)
	}
	if vs, _ := s.Versions(ctx, "copy", 0, 0); len(vs) != 0 {
		t.Fatalf("versions after a replace without them: %+v", vs)
	}
	if with.Len() <= without.Len() {
		t.Fatalf("export with versions %d bytes, without %d", with.Len(), without.Len())
	}
}

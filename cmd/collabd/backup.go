package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/collabd/collabd/storage"
)

// runBackup implements "collabd backup": a hot copy of a running server's
// whole store (GET /v1/backup) into a file, checked before it is kept.
func runBackup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "", "the running server, e.g. http://127.0.0.1:8080 (required)")
	token := fs.String("token", "", "bearer token granting every document ('*:r')")
	out := fs.String("out", "", "backup `file` to write (required); written as FILE.tmp, then renamed")
	verify := fs.Bool("verify", true, "verify the copy (every page and document) before keeping it")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := envDefaults(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "collabd backup: %v\n", err)
		return 2
	}
	if *base == "" || *out == "" {
		fmt.Fprintln(stderr, "collabd backup: --url and --out are required")
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	n, err := backup(ctx, *base, *token, *out, *verify, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "collabd backup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d bytes\n", *out, n)
	return 0
}

func backup(ctx context.Context, base, token, out string, verify bool, progress io.Writer) (int64, error) {
	c, err := newAPIClient(base, token)
	if err != nil {
		return 0, err
	}
	resp, err := c.get(ctx, "/v1/backup")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	f, err := os.OpenFile(out+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	pr := newCopyProgress(progress, "backup", resp.ContentLength)
	n, err := io.Copy(pr.writer(f), resp.Body) // a cut-off stream is an unexpected EOF here
	pr.done()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && verify {
		// The same check as `collabd verify`: the file against its meta
		// pages, every page and record, and every document rebuilt.
		var rep storage.Report
		rep, err = verifyFile(ctx, f.Name())
		if err == nil {
			fmt.Fprintf(progress, "verified: %d documents, %d deleted\n", rep.Documents, rep.Deleted)
		}
	}
	if err == nil {
		err = os.Rename(f.Name(), out)
	}
	if err != nil {
		_ = os.Remove(f.Name()) // best effort: never leave a partial copy behind
		return n, err
	}
	return n, syncDir(filepath.Dir(out))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	_ = d.Close() // read-only handle; the sync error is the one that matters
	return err
}

// runRestore implements "collabd restore": put a verified backup in place
// as a data directory's store. The server must be stopped.
func runRestore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "backup `file` (required)")
	data := fs.String("data", "", "data `directory` to restore into (required; gets collabd.db)")
	force := fs.Bool("force", false, "replace an existing store (the server must be stopped)")
	urls := fs.String("nats", "", "restore into a running cluster instead: its NATS client `URLs` (docs/CLUSTER.md, \"Moving between single-node and cluster\")")
	var sec natsSecurity
	sec.register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	// Only the NATS flags come from COLLABD_* here (serve's COLLABD_DATA
	// must not pick restore's target).
	natsEnv := func(k string) (string, bool) {
		if !strings.HasPrefix(k, "COLLABD_NATS") {
			return "", false
		}
		return os.LookupEnv(k)
	}
	if err := envDefaults(fs, natsEnv); err != nil {
		fmt.Fprintf(stderr, "collabd restore: %v\n", err)
		return 2
	}
	if *urls != "" {
		if err := sec.check(clusterFlags{urls: *urls}); err != nil || *in == "" || *data != "" || *force {
			if err == nil {
				err = errors.New("--nats takes --in, and neither --data nor --force")
			}
			fmt.Fprintf(stderr, "collabd restore: %v\n", err)
			return 2
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		if err := restoreToCluster(ctx, *in, *urls, sec, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "collabd restore: %v\n", err)
			return 1
		}
		return 0
	}
	if *in == "" || *data == "" {
		fmt.Fprintln(stderr, "collabd restore: --in and --data (or --nats) are required")
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := restore(ctx, *in, *data, *force, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "collabd restore: %v\n", err)
		return 1
	}
	return 0
}

func restore(ctx context.Context, in, data string, force bool, stdout, progress io.Writer) error {
	rep, err := verifyFile(ctx, in)
	if err != nil {
		return fmt.Errorf("%s does not verify, nothing restored: %w", in, err)
	}
	if err := os.MkdirAll(data, 0o750); err != nil {
		return err
	}
	dst := filepath.Join(data, "collabd.db")
	if _, err := os.Stat(dst); err == nil {
		if !force {
			return fmt.Errorf("%s exists; pass --force to replace it", dst)
		}
		// A running server holds the file's lock: replacing the file under
		// it would lose what it writes next.
		s, err := openReadOnly(dst)
		if err != nil && !errors.Is(err, storage.ErrFormat) && !errors.Is(err, storage.ErrCorrupt) {
			return inUseHint(err, "stop the server first (restore replaces the store of a stopped server)")
		}
		if s != nil {
			_ = s.Close() // read-only; only the lock check mattered
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := os.OpenFile(dst+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := copyWithProgress(f, src, progress, "restore"); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name()) // best effort; the copy error is the one to report
		return err
	}
	if err := finishTmp(f, dst); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s to %s: %d documents, %d deleted\n", in, dst, rep.Documents, rep.Deleted)
	return nil
}

// runVerify implements "collabd verify FILE": check a backup (or a stopped
// server's collabd.db) page by page and document by document.
func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), verifyUsage) }
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: collabd verify FILE")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := verifyFile(ctx, fs.Arg(0))
	if err != nil {
		// No summary line: a file that could not be read has no counts
		// worth printing, and "problems=0" next to a failure misleads.
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "problem: %s\n", p)
		}
		fmt.Fprintf(stderr, "collabd verify: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "documents=%d deleted=%d log_entries=%d journal_entries=%d versions=%d problems=%d\n",
		rep.Documents, rep.Deleted, rep.LogEntries, rep.JournalEntries, rep.Versions, len(rep.Problems))
	fmt.Fprintln(stdout, "ok")
	return 0
}

// loadVersions loads the snapshot of every version of document id as the
// server would show or restore it.
func loadVersions(ctx context.Context, s *storage.Store, id string) error {
	for before := uint64(0); ; {
		page, err := s.Versions(ctx, id, before, 1000)
		if err != nil || len(page) == 0 {
			return err
		}
		for _, v := range page {
			full, err := s.Version(ctx, id, v.Seq)
			if err == nil {
				_, _, err = loadStored(&storage.Document{Info: storage.DocInfo{ID: id}, Snapshot: full.Snapshot})
			}
			if err != nil {
				return fmt.Errorf("version %d: %w", v.Seq, err)
			}
			before = v.Seq
		}
	}
}

// verifyFile runs storage.Verify (bbolt's page check, every record's
// checksum, every document's shape) and then rebuilds every live document
// through crdt.LoadSnapshot and its log tail, as the server would, and
// loads every version's snapshot.
//
// bbolt may panic on a mangled page instead of returning an error; a panic
// on this goroutine is reported as corruption (one inside bbolt's Check
// goroutine still crashes the process, with a non-zero exit).
func verifyFile(ctx context.Context, path string) (rep storage.Report, err error) {
	if _, err := os.Stat(path); err != nil {
		return storage.Report{}, err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: truncated or corrupt: %s: reading the file failed: %v", storage.ErrCorrupt, path, p)
		}
	}()
	// A read past the end of the mapped file faults; make that a panic,
	// recovered above (storage.Verify checks the size against the file's
	// meta pages first, so this is the second line of defence).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	rep, err = storage.Verify(ctx, path, storage.Options{LockTimeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, storage.ErrLocked) {
			err = fmt.Errorf("%s is in use by a running server: verify a backup instead", path)
		}
		return rep, err
	}
	s, err := openReadOnly(path)
	if err != nil {
		return rep, err
	}
	defer s.Close()
	var failed error
	for after := ""; ; {
		docs, err := s.List(ctx, storage.ListOptions{After: after, Limit: 1000})
		if err != nil {
			return rep, err
		}
		if len(docs) == 0 {
			break
		}
		for _, d := range docs {
			after = d.ID
			stored, err := s.Load(ctx, d.ID)
			if err == nil {
				_, _, err = loadStored(stored)
			}
			if err == nil {
				err = loadVersions(ctx, s, d.ID)
			}
			if err != nil {
				rep.Problems = append(rep.Problems, err.Error())
				if failed == nil {
					failed = err
				}
			}
		}
	}
	if failed != nil {
		return rep, fmt.Errorf("%w: %d document(s) do not load, first: %v", storage.ErrCorrupt, len(rep.Problems), failed)
	}
	return rep, nil
}

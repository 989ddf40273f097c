package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// formatVersion is stored under bucket "collabd", key "format". Open accepts
// minFormatVersion up to formatVersion and refuses anything else. Format 2
// adds the documents' versions buckets (versions.go); a new file starts at
// format 1 and is marked 2 by the commit that writes its first version, so
// a file without versions stays readable by a binary that knows format 1.
const (
	minFormatVersion = 1
	formatVersion    = 2
)

var (
	bucketRoot = []byte("collabd") // store-level records
	bucketDocs = []byte("docs")    // one nested bucket per document
	// bucketJournal ("journal") is declared in journal.go.
	keyFormat = []byte("format")
)

// Store is one bbolt file holding every document. It is safe for concurrent
// use. All writes go through one committer goroutine that the Store owns and
// that Close stops.
type Store struct {
	db   *bolt.DB
	opts Options
	path string

	reqs    chan *request // submitted writes, read only by the committer
	closing chan struct{} // closed by Close once no Submit can still send
	stopped chan struct{} // closed when the committer has exited

	mu      sync.Mutex     // guards closed; held only to check and count, never across a send
	closed  bool           // Close has begun; Submit refuses new work
	senders sync.WaitGroup // Submit calls between the closed check and their send

	closeOnce sync.Once
	closeErr  error

	failure atomic.Pointer[error] // set once by the committer on the first commit error
	stats   commitStats

	jx     jindex               // where each document's journal entries are
	jcount atomic.Int64         // journal entries; written by the committer after each commit
	metas  map[string]metaCache // committer only: stored metadata of documents with journal entries

	hooks hooks // fault injection for this package's tests; zero in production
}

// hooks lets white-box tests inject faults and observe the committer.
type hooks struct {
	// beforeCommit runs inside the write transaction after every request of
	// the batch was applied; a non-nil error makes the commit fail.
	beforeCommit func(ops int) error
}

// Open opens or creates the store at path. A new file is created under a
// temporary name, initialised, fsynced and then linked into place, so a crash
// during creation never leaves a half-initialised store at path.
func Open(path string, opts Options) (*Store, error) {
	return open(path, opts, hooks{})
}

func open(path string, opts Options, h hooks) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if !opts.ReadOnly {
		if err := createIfMissing(path, opts); err != nil {
			return nil, err
		}
	}
	// A file shorter than its meta pages say would be mapped and then crash
	// the process with SIGBUS on the first read past its end; an empty file
	// would be silently initialised by bbolt as a new database.
	if _, err := checkBoltFile(path, false); err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	var idx map[string][]jref
	var next uint64
	var count int64
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkFormat(tx); err != nil {
			return err
		}
		idx, next, count, err = buildIndex(tx)
		return err
	})
	if err != nil {
		_ = db.Close() // the format or journal error is the one to report
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		opts:    opts,
		path:    path,
		reqs:    make(chan *request, opts.QueueLen),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
		hooks:   h,
		jx:      jindex{docs: idx, next: next},
		metas:   make(map[string]metaCache),
	}
	s.jcount.Store(count)
	if opts.ReadOnly {
		close(s.stopped)
	} else {
		go s.run()
	}
	return s, nil
}

func openBolt(path string, opts Options) (*bolt.DB, error) {
	mode := os.FileMode(0o600)
	db, err := bolt.Open(path, mode, &bolt.Options{
		Timeout:         opts.LockTimeout,
		ReadOnly:        opts.ReadOnly,
		InitialMmapSize: opts.InitialMmapSize,
		MaxSize:         opts.MaxSize,
		FreelistType:    bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, path, err)
	case err != nil:
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	return db, nil
}

func checkFormat(tx *bolt.Tx) error {
	root := tx.Bucket(bucketRoot)
	if root == nil || tx.Bucket(bucketDocs) == nil || tx.Bucket(bucketJournal) == nil {
		return fmt.Errorf("%w: not a collabd store", ErrFormat)
	}
	if v := root.Get(keyFormat); len(v) != 1 || v[0] < minFormatVersion || v[0] > formatVersion {
		return fmt.Errorf("%w: format %x, want %d to %d", ErrFormat, v, minFormatVersion, formatVersion)
	}
	return nil
}

// createIfMissing creates an initialised store at path unless a file is
// already there. bbolt writes its first pages in place and a power loss at
// that moment can leave a corrupt file (etcd#16596), so the file is built
// under a temporary name and hard-linked into place only once it is synced.
func createIfMissing(path string, opts Options) error {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err // exists (nil), or cannot tell
	}
	tmp := path + ".init"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("storage: create %s: %w", path, err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("storage: create %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucket(bucketRoot)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketDocs); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketJournal); err != nil {
			return err
		}
		return root.Put(keyFormat, []byte{minFormatVersion})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncPath(tmp)
	}
	if err == nil {
		// Link fails if another process created path meanwhile; then use theirs.
		if lerr := os.Link(tmp, path); lerr != nil && !errors.Is(lerr, os.ErrExist) {
			err = lerr
		}
	}
	if err == nil {
		err = syncPath(filepath.Dir(path))
	}
	if rerr := os.Remove(tmp); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("storage: create %s: %w", path, err)
	}
	return nil
}

// syncPath fsyncs a file or directory.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Err returns nil while the store accepts writes, and otherwise the error
// every write returns (wrapping ErrFailed or ErrClosed). A health endpoint
// should report it.
func (s *Store) Err() error {
	if f := s.failure.Load(); f != nil {
		return *f
	}
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// setFailed records the first commit error and returns the error that every
// later write will get.
func (s *Store) setFailed(cause error) error {
	err := fmt.Errorf("%w: %w", ErrFailed, cause)
	if s.failure.CompareAndSwap(nil, &err) {
		s.opts.Logger.Error("storage: commit failed; refusing writes until reopened",
			slog.String("path", s.path), slog.String("err", cause.Error()))
		return err
	}
	return *s.failure.Load()
}

// Close stops accepting writes, commits every request already submitted,
// waits for the committer to exit and closes the file. It waits for running
// read transactions (a backup, an export) to finish. Close is idempotent;
// every call returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.senders.Wait() // after this, nothing more can enter s.reqs
		close(s.closing)
		<-s.stopped // the committer commits what is queued, then exits
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// view runs fn in a read transaction, mapping a closed database to ErrClosed.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

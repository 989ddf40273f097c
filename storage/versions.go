package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Versions are stored, immutable copies of a document at one document
// version (docs/design/versions.md). They live in a nested bucket "v" inside
// the document's bucket, keyed by a big-endian sequence taken from that
// bucket's own bbolt sequence (so a pruned sequence is never reused), and are
// written through the committer like every other write: a version is totally
// ordered with the log and durable when its Pending completes.
//
// Delete and Import with Replace recreate the document's bucket and so drop
// its versions; Compact never touches them (a version is a full snapshot).

// keyVersions is the document bucket's nested bucket of versions.
var keyVersions = []byte("v")

// VersionKind says how a version was taken.
type VersionKind uint8

// Version kinds.
const (
	VersionAuto  VersionKind = 1 // a checkpoint the server took (quiet period, every N updates)
	VersionNamed VersionKind = 2 // asked for by a user, with a label; never pruned
)

func (k VersionKind) String() string {
	switch k {
	case VersionAuto:
		return "auto"
	case VersionNamed:
		return "named"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits of a version record.
const (
	MaxVersionLabel   = 200  // bytes of a label (UTF-8, no control characters)
	MaxVersionAuthors = 256  // authors of one version
	MaxAuthorBytes    = 1024 // bytes of one author
)

// Version is one stored version of a document.
type Version struct {
	Seq     uint64      // the version's sequence in its document (1, 2, …; never reused)
	Time    time.Time   // when it was committed
	Version uint64      // the document's version number it copies
	Kind    VersionKind // auto or named
	Label   string      // named versions only
	Authors []string    // who changed the document since the previous version
	// Snapshot is the engine's state encoding; nil in listings (Versions),
	// where SnapshotBytes still says its size.
	Snapshot      []byte
	SnapshotBytes int
}

// NewVersion is a version to store (SubmitVersion).
type NewVersion struct {
	Version  uint64
	Kind     VersionKind
	Label    string
	Authors  []string
	Snapshot []byte
}

// CheckVersionLabel reports whether label may name a version: at most
// MaxVersionLabel bytes of UTF-8 without control characters (an error
// wrapping ErrInvalidVersion otherwise).
func CheckVersionLabel(label string) error {
	switch {
	case len(label) > MaxVersionLabel:
		return fmt.Errorf("%w: label of %d bytes (max %d)", ErrInvalidVersion, len(label), MaxVersionLabel)
	case !utf8.ValidString(label):
		return fmt.Errorf("%w: label is not UTF-8", ErrInvalidVersion)
	}
	for _, r := range label {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: label holds a control character", ErrInvalidVersion)
		}
	}
	return nil
}

func (v *NewVersion) check(maxSnapshot int) error {
	if v.Kind != VersionAuto && v.Kind != VersionNamed {
		return fmt.Errorf("%w: kind %d", ErrInvalidVersion, v.Kind)
	}
	if err := CheckVersionLabel(v.Label); err != nil {
		return err
	}
	if len(v.Authors) > MaxVersionAuthors {
		return fmt.Errorf("%w: %d authors (max %d)", ErrInvalidVersion, len(v.Authors), MaxVersionAuthors)
	}
	for _, a := range v.Authors {
		if len(a) > MaxAuthorBytes || !utf8.ValidString(a) {
			return fmt.Errorf("%w: author of %d bytes or not UTF-8", ErrInvalidVersion, len(a))
		}
	}
	if len(v.Snapshot) > maxSnapshot {
		return fmt.Errorf("%w: version snapshot of %d bytes (max %d)", ErrTooLarge, len(v.Snapshot), maxSnapshot)
	}
	return nil
}

// Version record (the value under a version's key):
//
//	crc32c   4 bytes  over rest || time || seq (8 bytes each, big-endian)
//	time     8 bytes  commit time, Unix nanoseconds, big-endian
//	rest:
//	  format 1 byte   1
//	  kind   1 byte   1 auto, 2 named
//	  version uvarint the document's version
//	  label  uvarint length, bytes
//	  authors uvarint count, then count × (uvarint length, bytes)
//	  snapshot uvarint length, bytes; nothing may follow
//
// The submitter checksums rest; the committer, which assigns the time and
// the sequence, only extends the checksum (as for journal values).
const (
	versionRecordFormat = 1
	versionHeaderLen    = 4 + 8
)

// newVersionRecord encodes v with its time and sequence still unset.
func newVersionRecord(v *NewVersion) []byte {
	n := versionHeaderLen + 2 + binary.MaxVarintLen64*(4+len(v.Authors)) + len(v.Label) + len(v.Snapshot)
	for _, a := range v.Authors {
		n += len(a)
	}
	b := make([]byte, versionHeaderLen, n)
	b = append(b, versionRecordFormat, byte(v.Kind))
	b = binary.AppendUvarint(b, v.Version)
	b = binary.AppendUvarint(b, uint64(len(v.Label)))
	b = append(b, v.Label...)
	b = binary.AppendUvarint(b, uint64(len(v.Authors)))
	for _, a := range v.Authors {
		b = binary.AppendUvarint(b, uint64(len(a)))
		b = append(b, a...)
	}
	b = binary.AppendUvarint(b, uint64(len(v.Snapshot)))
	b = append(b, v.Snapshot...)
	binary.BigEndian.PutUint32(b, crc32.Checksum(b[versionHeaderLen:], castagnoli))
	return b
}

// sealVersionRecord stores the commit time and completes the checksum for
// seq.
func sealVersionRecord(b []byte, seq uint64, nanos int64) {
	binary.BigEndian.PutUint64(b[4:], uint64(nanos))
	binary.BigEndian.PutUint32(b, versionCRC(binary.BigEndian.Uint32(b), b[4:12], seq))
}

func versionCRC(restCRC uint32, timeBytes []byte, seq uint64) uint32 {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	c := crc32.Update(restCRC, castagnoli, timeBytes)
	return crc32.Update(c, castagnoli, k[:])
}

// encodeVersionRecord is the sealed record of v (tests and Import).
func encodeVersionRecord(seq uint64, nanos int64, v *NewVersion) []byte {
	b := newVersionRecord(v)
	sealVersionRecord(b, seq, nanos)
	return b
}

// decodeVersion checks a stored version record for seq and parses it. With
// withSnapshot false the snapshot is checked but not copied. It never
// panics and checks every length against what is left before it allocates.
func decodeVersion(seq uint64, b []byte, withSnapshot bool) (Version, error) {
	pos := 0
	fail := func(field, msg string) (Version, error) {
		return Version{}, &DecodeError{Offset: int64(pos), Field: "version." + field,
			Err: fmt.Errorf("%w: version %d: %s", ErrCorrupt, seq, msg)}
	}
	if len(b) < versionHeaderLen+2 {
		return fail("length", fmt.Sprintf("record of %d bytes", len(b)))
	}
	rest := b[versionHeaderLen:]
	if versionCRC(crc32.Checksum(rest, castagnoli), b[4:12], seq) != binary.BigEndian.Uint32(b) {
		return fail("crc", "checksum mismatch")
	}
	v := Version{Seq: seq, Time: fromUnixNano(int64(binary.BigEndian.Uint64(b[4:])))}
	pos = versionHeaderLen
	if b[pos] != versionRecordFormat {
		return fail("format", fmt.Sprintf("format %d, want %d", b[pos], versionRecordFormat))
	}
	v.Kind = VersionKind(b[pos+1])
	if v.Kind != VersionAuto && v.Kind != VersionNamed {
		return fail("kind", fmt.Sprintf("kind %d", b[pos+1]))
	}
	pos += 2
	uvarint := func(field string) (uint64, error) {
		x, n := binary.Uvarint(b[pos:])
		if n <= 0 {
			_, err := fail(field, "bad varint")
			return 0, err
		}
		pos += n
		return x, nil
	}
	// blob reads a length-prefixed byte string of at most max bytes.
	blob := func(field string, max int) ([]byte, error) {
		n, err := uvarint(field)
		if err != nil {
			return nil, err
		}
		if n > uint64(len(b)-pos) {
			_, err := fail(field, fmt.Sprintf("length %d past the end", n))
			return nil, err
		}
		if n > uint64(max) {
			_, err := fail(field, fmt.Sprintf("length %d over %d", n, max))
			return nil, err
		}
		s := b[pos : pos+int(n)]
		pos += int(n)
		return s, nil
	}
	var err error
	if v.Version, err = uvarint("version"); err != nil {
		return Version{}, err
	}
	label, err := blob("label", MaxVersionLabel)
	if err != nil {
		return Version{}, err
	}
	v.Label = string(label)
	if v.Kind == VersionAuto && v.Label != "" {
		return fail("label", "an automatic version with a label")
	}
	count, err := uvarint("authors")
	if err != nil {
		return Version{}, err
	}
	// Each author takes at least one byte: a count past what is left is a lie.
	if count > MaxVersionAuthors || count > uint64(len(b)-pos) {
		return fail("authors", fmt.Sprintf("%d authors", count))
	}
	if count > 0 {
		v.Authors = make([]string, 0, count)
	}
	for range count {
		a, err := blob("author", MaxAuthorBytes)
		if err != nil {
			return Version{}, err
		}
		v.Authors = append(v.Authors, string(a))
	}
	snap, err := blob("snapshot", len(b))
	if err != nil {
		return Version{}, err
	}
	if pos != len(b) {
		return fail("end", fmt.Sprintf("%d bytes after the snapshot", len(b)-pos))
	}
	v.SnapshotBytes = len(snap)
	if withSnapshot {
		v.Snapshot = append([]byte{}, snap...)
	}
	return v, nil
}

// versionHead reads the kind and time of a record without checking it
// (retention decides on them; Verify and reads check the checksum).
func versionHead(b []byte) (VersionKind, int64, bool) {
	if len(b) < versionHeaderLen+2 {
		return 0, 0, false
	}
	return VersionKind(b[versionHeaderLen+1]), int64(binary.BigEndian.Uint64(b[4:])), true
}

// Retention says which automatic versions are kept (named versions are
// kept until the document is deleted). A version younger than All is kept;
// between All and Daily old, the newest of each UTC day is kept; older
// than that, the newest of each week. The zero Retention keeps everything.
type Retention struct {
	All   time.Duration
	Daily time.Duration
}

// DefaultRetention keeps every version for 7 days, then one a day for 90
// days, then one a week.
var DefaultRetention = Retention{All: 7 * 24 * time.Hour, Daily: 90 * 24 * time.Hour}

// keepsAll reports whether r never prunes.
func (r Retention) keepsAll() bool { return r.All <= 0 && r.Daily <= 0 }

// prunable returns the keys of the automatic versions r drops at now, at
// most budget of them, oldest first. It reads versions from the oldest on
// and stops at the first one younger than r.All, so it visits only what is
// kept sparse plus what is due.
func (r Retention) prunable(bkt *bolt.Bucket, now time.Time, budget int) [][]byte {
	if r.keepsAll() || budget <= 0 {
		return nil
	}
	const day, week = 24 * 60 * 60, 7 * 24 * 60 * 60
	cut := now.Add(-r.All).UnixNano()
	daily := now.Add(-max(r.Daily, r.All)).UnixNano()
	var out [][]byte
	var prev []byte      // the previous automatic version's key
	var prevB int64 = -1 // and its bucket (day or week number, weeks negated)
	c := bkt.Cursor()
	for k, v := c.First(); k != nil && len(out) < budget; k, v = c.Next() {
		kind, t, ok := versionHead(v)
		if !ok || len(k) != 8 {
			continue // Verify reports it
		}
		if t > cut {
			break
		}
		if kind != VersionAuto {
			continue
		}
		secs := t / int64(time.Second)
		b := secs / day
		if t <= daily {
			b = -1 - secs/week
		}
		if prev != nil && b == prevB {
			out = append(out, prev) // a newer version of the same day or week follows
		}
		prev, prevB = k, b
	}
	return out
}

// Drop returns the indexes of the versions r drops at now, from versions
// given oldest first by their times and whether each is automatic (named
// versions are never dropped): the same rule as the store's own pruning,
// for version histories kept elsewhere (cluster mode's).
func (r Retention) Drop(now time.Time, times []time.Time, auto []bool) []int {
	if r.keepsAll() || len(times) != len(auto) {
		return nil
	}
	const day, week = 24 * 60 * 60, 7 * 24 * 60 * 60
	cut := now.Add(-r.All).UnixNano()
	daily := now.Add(-max(r.Daily, r.All)).UnixNano()
	var out []int
	prev := -1           // the previous automatic version's index
	var prevB int64 = -1 // and its bucket (day or week number, weeks negated)
	for i, tm := range times {
		t := tm.UnixNano()
		if t > cut {
			break
		}
		if !auto[i] {
			continue
		}
		secs := t / int64(time.Second)
		b := secs / day
		if t <= daily {
			b = -1 - secs/week
		}
		if prev >= 0 && b == prevB {
			out = append(out, prev) // a newer version of the same day or week follows
		}
		prev, prevB = i, b
	}
	return out
}

// SubmitVersion queues a version of document id and returns at once (like
// TrySubmit, a full queue is ErrQueueFull). The Pending's sequence is the
// version's Seq. The document must exist and not be deleted. The same commit
// prunes up to Options.VersionPrune automatic versions that
// Options.VersionRetention no longer keeps.
func (s *Store) SubmitVersion(id string, v NewVersion) (*Pending, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := v.check(s.opts.MaxSnapshotBytes); err != nil {
		return nil, err
	}
	return s.submit(context.Background(), &versionOp{doc: id, rec: newVersionRecord(&v)}, false)
}

// SaveVersion stores a version and returns its sequence once it is durable
// (SubmitVersion, waiting for room in the queue and for the commit).
func (s *Store) SaveVersion(ctx context.Context, id string, v NewVersion) (uint64, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	if err := v.check(s.opts.MaxSnapshotBytes); err != nil {
		return 0, err
	}
	p, err := s.submit(ctx, &versionOp{doc: id, rec: newVersionRecord(&v)}, true)
	if err != nil {
		return 0, err
	}
	return p.Wait(ctx)
}

type versionOp struct {
	doc string
	rec []byte // unsealed
}

func (o *versionOp) size() int { return len(o.rec) }

func (o *versionOp) apply(b *batch) (uint64, error) {
	d, err := b.live(o.doc)
	if err != nil {
		return 0, err
	}
	if err := b.ensureBucket(d); err != nil {
		return 0, err
	}
	if err := b.bumpFormat(); err != nil {
		return 0, err
	}
	vb, err := d.bkt.CreateBucketIfNotExists(keyVersions)
	if err != nil {
		return 0, err
	}
	seq, err := vb.NextSequence()
	if err != nil {
		return 0, err
	}
	sealVersionRecord(o.rec, seq, unixNano(b.now))
	if err := vb.Put(seqKey(seq), o.rec); err != nil {
		return 0, err
	}
	if err := b.pruneVersions(vb); err != nil {
		return 0, err
	}
	return seq, nil
}

// pruneVersions deletes up to Options.VersionPrune automatic versions that
// retention no longer keeps (in the commits that add a version or compact
// the document; what is left goes with the next one).
func (b *batch) pruneVersions(vb *bolt.Bucket) error {
	if vb == nil {
		return nil
	}
	for _, k := range b.s.opts.VersionRetention.prunable(vb, b.now, b.s.opts.VersionPrune) {
		if err := vb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// bumpFormat marks the file as format 2 (it may hold versions) the first
// time a version is written: a binary that knows only format 1 then refuses
// the file instead of reporting the versions bucket as corruption.
func (b *batch) bumpFormat() error {
	if b.formatBumped {
		return nil
	}
	root := b.docs.Tx().Bucket(bucketRoot)
	if v := root.Get(keyFormat); len(v) == 1 && v[0] < formatVersion {
		if err := root.Put(keyFormat, []byte{formatVersion}); err != nil {
			return err
		}
	}
	b.formatBumped = true
	return nil
}

// ErrInvalidVersion is returned for a version request the store refuses
// outright (a bad label, kind or authors).
var ErrInvalidVersion = errors.New("storage: invalid version")

// ErrNoVersion is returned by Version for a sequence the document does not
// have (never taken, or pruned).
var ErrNoVersion = errors.New("storage: no such version")

// versionsTx returns the versions bucket of document id (nil: none yet),
// after checking that the document exists and is not deleted.
func versionsTx(tx *bolt.Tx, v *jview, id string) (*bolt.Bucket, error) {
	d, err := readDoc(tx, v, id)
	if err != nil {
		return nil, err
	}
	if d.info.Deleted {
		return nil, fmt.Errorf("%w: %q", ErrDeleted, id)
	}
	if d.bkt == nil {
		return nil, nil
	}
	return d.bkt.Bucket(keyVersions), nil
}

// Versions lists document id's versions newest first, without their
// snapshots: at most limit (1 to 1000; 0 means 100) with a sequence below
// before (0: from the newest). Every record's checksum is checked.
func (s *Store) Versions(ctx context.Context, id string, before uint64, limit int) ([]Version, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	return retryRead(func() ([]Version, error) {
		var out []Version
		err := s.readView(ctx, id, func(tx *bolt.Tx, jv *jview) error {
			vb, err := versionsTx(tx, jv, id)
			if err != nil || vb == nil {
				return err
			}
			c := vb.Cursor()
			var k, val []byte
			if before == 0 {
				k, val = c.Last()
			} else {
				c.Seek(seqKey(before))
				k, val = c.Prev()
			}
			for ; k != nil && len(out) < limit; k, val = c.Prev() {
				if len(k) != 8 {
					return fmt.Errorf("%w: document %q: version key %x", ErrCorrupt, id, k)
				}
				ver, err := decodeVersion(binary.BigEndian.Uint64(k), val, false)
				if err != nil {
					return fmt.Errorf("document %q: %w", id, err)
				}
				out = append(out, ver)
			}
			return nil
		})
		return out, err
	})
}

// Version returns version seq of document id with its snapshot;
// ErrNoVersion if the document has none with that sequence.
func (s *Store) Version(ctx context.Context, id string, seq uint64) (Version, error) {
	if err := checkID(id); err != nil {
		return Version{}, err
	}
	return retryRead(func() (Version, error) {
		var out Version
		err := s.readView(ctx, id, func(tx *bolt.Tx, jv *jview) error {
			vb, err := versionsTx(tx, jv, id)
			if err != nil {
				return err
			}
			var val []byte
			if vb != nil {
				val = vb.Get(seqKey(seq))
			}
			if val == nil {
				return fmt.Errorf("%w: %q has no version %d", ErrNoVersion, id, seq)
			}
			out, err = decodeVersion(seq, val, true)
			if err != nil {
				return fmt.Errorf("document %q: %w", id, err)
			}
			return nil
		})
		return out, err
	})
}

// allVersions reads every version of id with its snapshot, ascending
// (export), at most MaxImportVersions.
func (s *Store) allVersions(ctx context.Context, id string) ([]Version, error) {
	var out []Version
	err := s.readView(ctx, id, func(tx *bolt.Tx, jv *jview) error {
		vb, err := versionsTx(tx, jv, id)
		if err != nil || vb == nil {
			return err
		}
		c := vb.Cursor()
		for k, val := c.First(); k != nil; k, val = c.Next() {
			if len(out) == MaxImportVersions {
				return fmt.Errorf("%w: %q has more than %d versions to export", ErrTooLarge, id, MaxImportVersions)
			}
			if len(k) != 8 {
				return fmt.Errorf("%w: document %q: version key %x", ErrCorrupt, id, k)
			}
			v, err := decodeVersion(binary.BigEndian.Uint64(k), val, true)
			if err != nil {
				return fmt.Errorf("document %q: %w", id, err)
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// verifyVersions checks every version record of a document bucket.
func verifyVersions(id string, vb *bolt.Bucket, rep *Report) {
	top := vb.Sequence()
	c := vb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil || len(k) != 8 {
			rep.add("document %q: versions: unexpected key %x", id, k)
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		if seq == 0 || seq > top {
			rep.add("document %q: version %d past the bucket's sequence %d", id, seq, top)
		}
		if _, err := decodeVersion(seq, v, false); err != nil {
			rep.add("document %q: %v", id, err)
			continue
		}
		rep.Versions++
	}
}

package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
	"os"
	"runtime/debug"
)

// bbolt's on-disk meta page, as go.etcd.io/bbolt v1.x writes it (little
// endian on every platform collabd supports): a 16-byte page header (id u64,
// flags u16, count u16, overflow u32) and then the meta: magic u32, version
// u32, page size u32, flags u32, root bucket (root page u64, sequence u64),
// freelist page u64, high water mark pgid u64, txid u64, and an FNV-64a
// checksum of the meta fields before it.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltMetaFlag     = 0x04
	boltNoFreelist   = ^uint64(0)
	boltPageHeader   = 16
	boltMetaSize     = 64 // up to and including the checksum
	boltMetaSumStart = boltPageHeader
	boltMetaSumEnd   = boltPageHeader + 56
	boltMinPageSize  = 512
	boltMaxPageSize  = 1 << 24 // bbolt looks for the second meta up to 16 MiB
)

// errNoMagic is a meta page without bbolt's magic number.
var errNoMagic = errors.New("not a bbolt file (bad magic)")

// boltMeta is the part of a meta page CheckFile uses.
type boltMeta struct {
	pageSize uint64
	root     uint64
	freelist uint64
	pgid     uint64 // pages in use: 0..pgid-1 must exist in the file
	txid     uint64
}

// parseBoltMeta decodes and checks the meta page at the start of p.
func parseBoltMeta(p []byte, wantID uint64) (boltMeta, error) {
	if len(p) < boltPageHeader+boltMetaSize {
		return boltMeta{}, errors.New("meta page cut short")
	}
	le := binary.LittleEndian
	if le.Uint32(p[boltPageHeader:]) != boltMagic {
		return boltMeta{}, errNoMagic
	}
	if id := le.Uint64(p[0:]); id != wantID {
		return boltMeta{}, fmt.Errorf("meta page says it is page %d", id)
	}
	if flags := le.Uint16(p[8:]); flags&boltMetaFlag == 0 {
		return boltMeta{}, errors.New("not a meta page")
	}
	m := p[boltPageHeader:]
	if le.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errNoMagic
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(p[boltMetaSumStart:boltMetaSumEnd]) // hash writes never fail
	if le.Uint64(m[56:]) != h.Sum64() {
		return boltMeta{}, errors.New("meta checksum mismatch")
	}
	meta := boltMeta{
		pageSize: uint64(le.Uint32(m[8:])),
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		pgid:     le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}
	switch {
	case meta.pageSize < boltMinPageSize || meta.pageSize > boltMaxPageSize || bits.OnesCount64(meta.pageSize) != 1:
		return boltMeta{}, fmt.Errorf("page size %d", meta.pageSize)
	case meta.pgid < 3 || meta.root < 2 || meta.root >= meta.pgid:
		return boltMeta{}, fmt.Errorf("root page %d outside the %d pages in use", meta.root, meta.pgid)
	case meta.freelist != boltNoFreelist && (meta.freelist < 2 || meta.freelist >= meta.pgid):
		return boltMeta{}, fmt.Errorf("freelist page %d outside the %d pages in use", meta.freelist, meta.pgid)
	}
	return meta, nil
}

// CheckFile checks a store file against its own bbolt meta pages before
// anything maps it: both meta pages must be intact (magic, version,
// checksum, page numbers in range) and the file must hold every page they
// say is in use (high water mark × page size ≤ file size). A file that fails
// gets an error wrapping ErrCorrupt that says "truncated or corrupt". Reading
// a truncated file through bbolt's memory map would kill the process with
// SIGBUS instead.
//
// Verify and Restore-style tools call it on files from elsewhere (backups).
// Open applies the same check but accepts one damaged meta page, as bbolt
// does after a write torn by a crash, as long as the other is intact and the
// file holds its pages.
func CheckFile(path string) error {
	_, err := checkBoltFile(path, true)
	return err
}

// checkBoltFile is CheckFile; with strict false, one meta page may be
// damaged. It returns the file size.
func checkBoltFile(path string, strict bool) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("storage: %w", err)
	}
	defer f.Close() // read-only
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("storage: %w", err)
	}
	size := fi.Size()
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: truncated or corrupt: %s (%d bytes): %s", ErrCorrupt, path, size, fmt.Sprintf(format, args...))
	}
	if !fi.Mode().IsRegular() {
		return size, corrupt("not a regular file")
	}
	if size == 0 {
		return size, corrupt("empty file")
	}
	buf := make([]byte, boltPageHeader+boltMetaSize)
	read := func(off int64) error {
		if off < 0 || int64(len(buf)) > size-off {
			return io.ErrUnexpectedEOF
		}
		_, err := f.ReadAt(buf, off)
		return err
	}
	var metas []boltMeta
	var problems []string
	if err := read(0); err != nil {
		return size, corrupt("first meta page: %v", err)
	}
	m0, err0 := parseBoltMeta(buf, 0)
	sawMagic := !errors.Is(err0, errNoMagic)
	if err0 == nil {
		metas = append(metas, m0)
	} else {
		problems = append(problems, "first meta page: "+err0.Error())
	}
	// The second meta page is one page in; without a valid first page, try
	// the page sizes bbolt would (1 KiB up to 16 MiB).
	second := []int64{int64(m0.pageSize)}
	if err0 != nil {
		second = second[:0]
		for ps := int64(1024); ps <= boltMaxPageSize; ps <<= 1 {
			second = append(second, ps)
		}
	}
	var err1 error = errors.New("not found")
	for _, off := range second {
		if err := read(off); err != nil {
			err1 = fmt.Errorf("at byte %d: %w", off, err)
			break
		}
		var m1 boltMeta
		m1, err1 = parseBoltMeta(buf, 1)
		sawMagic = sawMagic || !errors.Is(err1, errNoMagic)
		if err1 == nil {
			if int64(m1.pageSize) != off {
				err1 = fmt.Errorf("page size %d, found at byte %d", m1.pageSize, off)
				continue
			}
			metas = append(metas, m1)
			break
		}
	}
	if err1 != nil {
		problems = append(problems, "second meta page: "+err1.Error())
	}
	if len(metas) == 2 && metas[0].pageSize != metas[1].pageSize {
		return size, corrupt("meta pages disagree on the page size (%d, %d)", metas[0].pageSize, metas[1].pageSize)
	}
	if len(metas) == 0 && !sawMagic {
		// Not a damaged store but something else altogether.
		return size, fmt.Errorf("%w: %s is not a bbolt database (%s)", ErrFormat, path, joinProblems(problems))
	}
	if len(metas) == 0 || (strict && len(problems) > 0) {
		return size, corrupt("%s", joinProblems(problems))
	}
	for _, m := range metas {
		// The page count and size come from the file: multiply without
		// overflow before comparing.
		hi, lo := bits.Mul64(m.pgid, m.pageSize)
		if hi != 0 || lo > uint64(size) {
			return size, corrupt("meta page (txid %d) has %d pages of %d bytes in use, the file holds %d bytes", m.txid, m.pgid, m.pageSize, size)
		}
	}
	return size, nil
}

func joinProblems(p []string) string {
	s := ""
	for i, x := range p {
		if i > 0 {
			s += "; "
		}
		s += x
	}
	return s
}

// faultsAsPanics makes a memory fault in the calling goroutine (reading a
// page of a memory-mapped file that is shorter than bbolt believes) a
// recoverable panic instead of a crash. It returns the function that
// restores the previous setting; call it with defer, in the same goroutine,
// after the deferred recover:
//
//	defer func() { if p := recover(); p != nil { ... } }()
//	defer faultsAsPanics()()
func faultsAsPanics() func() {
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}

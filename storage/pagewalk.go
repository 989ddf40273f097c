package storage

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Page flags and element sizes of bbolt's on-disk pages (go.etcd.io/bbolt
// v1.x, little endian).
const (
	boltBranchFlag   = 0x01
	boltLeafFlag     = 0x02
	boltFreelistFlag = 0x10
	boltBucketLeaf   = 0x01 // leaf element flag: the value is a bucket
	boltElemSize     = 16   // branch and leaf page elements
	boltInBucketSize = 16   // bucket value header: root page, sequence
	boltMaxDepth     = 64   // B+tree levels times nested buckets; real stores use a handful
)

// walkBoltFile reads every page reachable from the newest intact meta page
// with ordinary reads (never through a memory map) and checks that every
// page id, overflow count, element offset and length lies inside the file
// and inside its page. bbolt reads the same structures through its map
// without such checks, and a bad page id there is a SIGBUS or SIGSEGV in
// whatever goroutine reads it (Tx.Check's own goroutine, where it cannot be
// recovered). A file that passes can be read by bbolt without touching
// memory past the end of the file. Errors wrap ErrCorrupt.
func walkBoltFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer f.Close() // read-only
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	w := &pageWalker{f: f, size: fi.Size(), seen: map[uint64]bool{}}
	if err := w.metas(); err != nil {
		return fmt.Errorf("%w: truncated or corrupt: %s: %v", ErrCorrupt, path, err)
	}
	if err := w.tree(w.meta.root, 0); err != nil {
		return fmt.Errorf("%w: truncated or corrupt: %s: %v", ErrCorrupt, path, err)
	}
	if err := w.freelist(); err != nil {
		return fmt.Errorf("%w: truncated or corrupt: %s: %v", ErrCorrupt, path, err)
	}
	return nil
}

type pageWalker struct {
	f    io.ReaderAt
	size int64
	meta boltMeta // the meta page bbolt will use (the intact one with the highest txid)
	seen map[uint64]bool
}

func (w *pageWalker) metas() error {
	buf := make([]byte, boltPageHeader+boltMetaSize)
	found := false
	for id := uint64(0); id < 2; id++ {
		off := int64(0)
		if id == 1 {
			if !found {
				return fmt.Errorf("first meta page unreadable")
			}
			off = int64(w.meta.pageSize)
		}
		if int64(len(buf)) > w.size-off {
			continue
		}
		if _, err := w.f.ReadAt(buf, off); err != nil {
			return err
		}
		m, err := parseBoltMeta(buf, id)
		if err != nil {
			continue
		}
		if !found || m.txid > w.meta.txid {
			w.meta = m
		}
		found = true
	}
	if !found {
		return fmt.Errorf("no intact meta page")
	}
	return nil
}

// page reads page id with its overflow pages, after checking that they all
// lie below the high water mark and inside the file.
func (w *pageWalker) page(id uint64) ([]byte, error) {
	ps := w.meta.pageSize
	if id < 2 || id >= w.meta.pgid {
		return nil, fmt.Errorf("page id %d outside the %d pages in use", id, w.meta.pgid)
	}
	var hdr [boltPageHeader]byte
	if _, err := w.f.ReadAt(hdr[:], int64(id*ps)); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr[0:]); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	over := uint64(le.Uint32(hdr[12:]))
	if over >= w.meta.pgid-id {
		return nil, fmt.Errorf("page %d: %d overflow pages past the %d pages in use", id, over, w.meta.pgid)
	}
	n := (over + 1) * ps
	if n > 1<<31 {
		return nil, fmt.Errorf("page %d: %d bytes", id, n)
	}
	p := make([]byte, n)
	if _, err := w.f.ReadAt(p, int64(id*ps)); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	for k := id; k <= id+over; k++ {
		if w.seen[k] {
			return nil, fmt.Errorf("page %d reached twice", k)
		}
		w.seen[k] = true
	}
	return p, nil
}

// tree checks the B+tree whose root is page id, and every bucket in it.
func (w *pageWalker) tree(id uint64, depth int) error {
	if depth > boltMaxDepth {
		return fmt.Errorf("page %d: tree deeper than %d", id, boltMaxDepth)
	}
	p, err := w.page(id)
	if err != nil {
		return err
	}
	return w.nodePage(p, id, depth)
}

// nodePage checks one branch or leaf page p (a page of the file, or the
// inline page of a small bucket when id is 0).
func (w *pageWalker) nodePage(p []byte, id uint64, depth int) error {
	le := binary.LittleEndian
	if len(p) < boltPageHeader {
		return fmt.Errorf("page %d cut short", id)
	}
	flags := le.Uint16(p[8:])
	count := uint64(le.Uint16(p[10:]))
	body := uint64(len(p))
	if count*boltElemSize > body-boltPageHeader {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	switch {
	case flags&boltBranchFlag != 0 && id != 0:
		if count == 0 {
			return fmt.Errorf("branch page %d is empty", id)
		}
		for i := range count {
			e := boltPageHeader + i*boltElemSize
			pos, ksize := uint64(le.Uint32(p[e:])), uint64(le.Uint32(p[e+4:]))
			if err := inPage(e, pos, ksize, 0, body); err != nil {
				return fmt.Errorf("branch page %d element %d: %v", id, i, err)
			}
			if err := w.tree(le.Uint64(p[e+8:]), depth+1); err != nil {
				return err
			}
		}
	case flags&boltLeafFlag != 0:
		for i := range count {
			e := boltPageHeader + i*boltElemSize
			eflags := le.Uint32(p[e:])
			pos, ksize, vsize := uint64(le.Uint32(p[e+4:])), uint64(le.Uint32(p[e+8:])), uint64(le.Uint32(p[e+12:]))
			if err := inPage(e, pos, ksize, vsize, body); err != nil {
				return fmt.Errorf("leaf page %d element %d: %v", id, i, err)
			}
			if eflags&boltBucketLeaf == 0 {
				continue
			}
			v := p[e+pos+ksize : e+pos+ksize+vsize]
			if len(v) < boltInBucketSize {
				return fmt.Errorf("leaf page %d element %d: bucket value of %d bytes", id, i, len(v))
			}
			if root := le.Uint64(v); root != 0 {
				if err := w.tree(root, depth+1); err != nil {
					return err
				}
			} else if err := w.nodePage(v[boltInBucketSize:], 0, depth+1); err != nil {
				return fmt.Errorf("inline bucket in leaf page %d: %v", id, err)
			}
		}
	default:
		return fmt.Errorf("page %d: flags %#x, want a branch or leaf page", id, flags)
	}
	return nil
}

// inPage checks that an element at offset e whose key starts pos bytes after
// it (ksize bytes, then vsize of value) lies inside a page of body bytes.
func inPage(e, pos, ksize, vsize, body uint64) error {
	if pos > body || ksize > body || vsize > body || e+pos+ksize+vsize > body {
		return fmt.Errorf("key or value (at %d+%d, %d+%d bytes) outside the page of %d bytes", e, pos, ksize, vsize, body)
	}
	return nil
}

// freelist checks the freelist page: its ids lie inside the pages in use.
func (w *pageWalker) freelist() error {
	if w.meta.freelist == boltNoFreelist {
		return nil
	}
	p, err := w.page(w.meta.freelist)
	if err != nil {
		return fmt.Errorf("freelist: %v", err)
	}
	le := binary.LittleEndian
	if flags := le.Uint16(p[8:]); flags&boltFreelistFlag == 0 {
		return fmt.Errorf("freelist page %d: flags %#x", w.meta.freelist, flags)
	}
	count, start := uint64(le.Uint16(p[10:])), uint64(boltPageHeader)
	if count == 0xFFFF { // the real count is the first element
		if len(p) < boltPageHeader+8 {
			return fmt.Errorf("freelist page cut short")
		}
		count, start = le.Uint64(p[boltPageHeader:]), boltPageHeader+8
	}
	if count > (uint64(len(p))-start)/8 {
		return fmt.Errorf("freelist of %d ids does not fit its page", count)
	}
	for i := range count {
		if id := le.Uint64(p[start+8*i:]); id < 2 || id >= w.meta.pgid {
			return fmt.Errorf("freelist names page %d outside the %d pages in use", id, w.meta.pgid)
		}
	}
	return nil
}

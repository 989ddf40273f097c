package crdt

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Lazy loading. A snapshot body caches every root's visible text ahead of
// the root's run columns (docs/FORMATS.md, "Snapshot"). LoadSnapshot reads
// the agents, roots, history and texts, frames the run columns and checks
// their lengths against the texts and the history (measure), and stops
// there: the run tree and the per-seq index of each root are built on the
// first use of the structure (an op applied or made, a diff, a relative
// position), which checks everything else (verifyLoaded). Until then the
// document answers Text.String, Len, StateVector, Version, Roots and
// EncodeSnapshot from what was read.
//
// A structure that fails the deferred check makes the document refuse every
// use of the structure with the *DecodeError an eager load would have
// returned (Doc.Verify reports it). Its texts stay the cached texts, which
// are by construction the visible content of the structure (visible runs take
// their code points from the text in order, and measure checked the
// lengths): so a replica never shows a text other replicas of the same bytes
// do not, and no op is ever applied on top of an unchecked structure.

// lazySnap is what a lazily loaded document keeps until its structure is
// built: the body (the texts and columns point into it).
type lazySnap struct {
	body  []byte
	texts [][]byte
	runs  []runCols
	// The snapshot as it was read (a copy) and its compression kind:
	// EncodeSnapshotWith returns it again when it asks for that kind.
	packed []byte
	kind   uint64
}

// packedFor reports whether the snapshot as read is what
// EncodeSnapshotWith(c) would write for this body.
func (lz *lazySnap) packedFor(c Compression) bool {
	switch lz.kind {
	case snapRaw:
		return len(lz.body) <= 512
	case snapLZ4:
		return c == CompressFast
	}
	return c == CompressSmall
}

// runCols is one root's run section: the run count and its four columns
// (flags, lengths, ids, origins).
type runCols struct {
	n    int
	cols [4][]byte
}

// runCols reads one root's run section framing.
func (r *snapReader) runCols() runCols {
	var c runCols
	c.n = r.count(1)
	for i := range c.cols {
		c.cols[i] = r.bytes()
	}
	if r.err == nil && len(c.cols[0]) != c.n {
		r.fail("run flag column length differs from run count")
	}
	return c
}

// measure checks a root's run lengths against its text and its history
// without building anything: the text is UTF-8 with as many code points as
// the visible runs hold, and the runs hold items inserted by the history
// into this root. It returns the visible length.
func (c runCols) measure(text []byte, items int) (int, error) {
	if !utf8.Valid(text) {
		return 0, errors.New("snapshot text is not UTF-8")
	}
	lens := &snapReader{b: c.cols[1]}
	vis, tot := 0, 0
	for _, f := range c.cols[0] {
		n := int(lens.uv(math.MaxUint32))
		if f&runDeleted == 0 {
			vis += n
		}
		tot += n
	}
	if lens.err != nil || lens.off != len(lens.b) {
		return 0, errors.New("run length column and run count disagree")
	}
	if tot != items {
		return 0, fmt.Errorf("runs hold %d items, history has %d inserts", tot, items)
	}
	if runes := utf8.RuneCount(text); runes != vis {
		return 0, fmt.Errorf("text has %d code points, visible runs hold %d", runes, vis)
	}
	return vis, nil
}

// Verify builds the structure a lazily loaded snapshot deferred, if it is not
// built yet, and checks it whole: it returns nil, or the *DecodeError that
// LoadSnapshot with Options.Eager would have returned, and then the document
// refuses every op for good. Code that takes snapshots from outside (an
// import) calls it before accepting one; everything else may rely on the
// first op doing it.
func (d *Doc) Verify() error { return d.ready() }

// ready builds the deferred structure if needed and reports whether the
// document is usable.
func (d *Doc) ready() error {
	if d.lazy == nil {
		return nil
	}
	if d.broken == nil {
		if err := d.build(); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				err = &DecodeError{What: "snapshot", Reason: "inconsistent state", Err: err}
			}
			d.broken = err
			for i := range d.lazy.texts {
				x := d.roots[i]
				x.t, x.arena, x.cache, x.cached = nil, nil, string(d.lazy.texts[i]), true
			}
			return err
		}
		d.lazy = nil
	}
	return d.broken
}

// build makes the run trees of the snapshot's roots and checks them.
func (d *Doc) build() error {
	lz := d.lazy
	for i := range lz.runs {
		x := d.roots[i]
		if err := x.loadRuns(lz.runs[i], x.cache); err != nil {
			return err
		}
	}
	return d.verifyLoaded()
}

package crdt

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/pierrec/lz4/v4"

	"github.com/collabd/collabd/internal/mp"
)

// Snapshot format (version 1), documented in docs/FORMATS.md:
//
//	msgpack [version=1, compression uint, body_len uint, body bin]
//
// compression: 0 none, 1 raw DEFLATE (RFC 1951), 2 LZ4 block. body_len is the
// uncompressed length. The body is a sequence of
// uvarint-framed sections: agents (id, next seq), roots (names), every agent's
// history spans, the application order, the visible text of every root (UTF-8),
// and per root its runs in document order as columns (flags, lengths, ids,
// explicit origins), then the pending buffer as an update. Deleted text is not
// stored: tombstones keep their ids and origins only.
const (
	snapRaw     = 0 // body compression kinds
	snapDeflate = 1
	snapLZ4     = 2

	leftNone, leftCont, leftPrev, leftExplicit     = 0, 1, 2, 3
	rightNone, rightNext, rightSame, rightExplicit = 0, 1, 2, 3

	runDeleted   = 1 << 0
	runSameAgent = 1 << 5

	histDel        = 1 << 0
	histRev        = 1 << 1
	histRoot       = 1 << 2 // root differs from the previous span's
	histAgent      = 1 << 3 // delete target agent differs from the previous delete's
	histHeaderBits = 4
)

// Compression selects how EncodeSnapshotWith compresses the snapshot body.
type Compression int

// Compression kinds. The zero value is CompressFast.
const (
	// CompressFast (LZ4, high-compression encoder) loads fastest: the default,
	// for the server's store.
	CompressFast Compression = iota
	// CompressSmall (DEFLATE) is about 15% smaller and slower to load: for
	// archives and backups.
	CompressSmall
)

// EncodeSnapshot returns the whole document state: every text with its
// structure, and the history needed to answer EncodeDiff for any peer. Loading
// it does not replay ops. It is EncodeSnapshotWith(CompressFast).
func (d *Doc) EncodeSnapshot() []byte { return d.EncodeSnapshotWith(CompressFast) }

// EncodeSnapshotWith is EncodeSnapshot with a choice of compression.
//
// Roots without items that no pending op names (such as a root that was only
// read) are left out, so they count against no limit of the loader. The exact body size becomes the
// document's SizeBound.
func (d *Doc) EncodeSnapshotWith(c Compression) []byte {
	if lz := d.lazy; lz != nil {
		// Loaded and not changed since (no op is made or applied before the
		// structure is built): the body as it was read, and the bytes as
		// they were read when they have the compression asked for.
		if lz.packedFor(c) {
			return bytes.Clone(lz.packed)
		}
		return packSnapshot(lz.body, c)
	}
	return packSnapshot(d.encodeBody(), c)
}

// encodeBody returns the uncompressed snapshot body and makes SizeBound
// exact.
func (d *Doc) encodeBody() []byte {
	// rm maps root indices to their index in the snapshot; keep says which
	// roots are written.
	rm := make([]uint32, len(d.roots))
	keep := d.savedRoots()
	nr := uint32(0)
	for i := range d.roots {
		if keep[i] {
			rm[i] = nr
			nr++
		}
	}
	var w []byte
	w = binary.AppendUvarint(w, uint64(len(d.agents)))
	for _, a := range d.agents {
		w = binary.AppendUvarint(w, uint64(a.id))
		w = binary.AppendUvarint(w, uint64(a.next))
	}
	w = binary.AppendUvarint(w, uint64(nr))
	for i, x := range d.roots {
		if keep[i] {
			w = binary.AppendUvarint(w, uint64(len(x.name)))
			w = append(w, x.name...)
		}
	}
	for _, a := range d.agents {
		w = binary.AppendUvarint(w, uint64(len(a.hist)))
		root, tagent, tprev := uint32(0), uint32(0), uint32(0)
		for _, h := range a.hist {
			hroot := rm[h.root]
			hd := uint64(h.n) << histHeaderBits
			if h.del {
				hd |= histDel
				if h.rev {
					hd |= histRev
				}
				if h.target.a != tagent {
					hd |= histAgent
				}
			}
			if hroot != root {
				hd |= histRoot
			}
			w = binary.AppendUvarint(w, hd)
			if hroot != root {
				w = binary.AppendUvarint(w, uint64(hroot))
				root = hroot
			}
			if h.del {
				if h.target.a != tagent {
					w = binary.AppendUvarint(w, uint64(h.target.a))
					tagent = h.target.a
				}
				w = binary.AppendVarint(w, int64(h.target.s)-int64(tprev))
				tprev = h.target.s
			}
		}
	}
	w = binary.AppendUvarint(w, uint64(len(d.order)))
	for _, o := range d.order {
		w = binary.AppendUvarint(w, uint64(o.a))
		w = binary.AppendUvarint(w, uint64(o.n))
	}
	var runs []byte
	for i, x := range d.roots {
		if !keep[i] {
			continue
		}
		var text []byte
		runs, text = x.appendRuns(runs)
		w = binary.AppendUvarint(w, uint64(len(text)))
		w = append(w, text...)
	}
	w = append(w, runs...)
	pend := d.encodePending()
	w = binary.AppendUvarint(w, uint64(len(pend)))
	w = append(w, pend...)
	d.sizeEst, d.sizeExact = len(w)+d.latent(len(pend)), true
	return w
}

// packSnapshot compresses a snapshot body and wraps it in the msgpack header.
func packSnapshot(raw []byte, c Compression) []byte {
	body, kind := raw, uint64(snapRaw)
	if len(raw) > 512 {
		switch c {
		case CompressSmall:
			var buf bytes.Buffer
			zw, _ := flate.NewWriter(&buf, 6) // only fails for a bad level
			_, _ = zw.Write(raw)              // bytes.Buffer writes do not fail
			_ = zw.Close()
			if buf.Len() < len(raw) {
				body, kind = buf.Bytes(), snapDeflate
			}
		default:
			dst := make([]byte, lz4.CompressBlockBound(len(raw)))
			if n, err := lz4.CompressBlockHC(raw, dst, lz4.Level9, nil, nil); err == nil && n > 0 && n < len(raw) {
				body, kind = dst[:n], snapLZ4
			}
		}
	}
	out := make([]byte, 0, len(body)+24)
	out = append(out, 0x94, snapshotVersion)
	out = mp.AppendUint(out, kind)
	out = mp.AppendUint(out, uint64(len(raw)))
	return mp.AppendBin(out, body)
}

// savedRoots says which roots a snapshot keeps: those with items and those
// named by pending ops.
func (d *Doc) savedRoots() []bool {
	keep := make([]bool, len(d.roots))
	for i, x := range d.roots {
		keep[i] = x.hasItems()
	}
	for i := range d.pending {
		if ri, ok := d.rootIx[d.pending[i].rootName]; ok {
			keep[ri] = true
		}
	}
	return keep
}

// appendRuns writes the runs of x in columns (count, then flags, lengths,
// ids, origins) and returns the visible text.
func (x *Text) appendRuns(w []byte) ([]byte, []byte) {
	var nruns int
	var flags, lens, ids, orig []byte
	text := make([]byte, 0, x.t.root.vis)
	prev := run{id: none, right: none}
	first := true
	for l := x.t.first; l != nil; l = l.next {
		for i := 0; i < l.n; i++ {
			r := l.runs[i]
			nruns++
			var f byte
			switch {
			case r.left.isNone():
				f |= leftNone << 1
			case r.id.s > 0 && r.left == ref{r.id.a, r.id.s - 1}:
				f |= leftCont << 1
			case !first && r.left == prev.last():
				f |= leftPrev << 1
			default:
				f |= leftExplicit << 1
				orig = binary.AppendUvarint(orig, uint64(r.left.a))
				orig = binary.AppendVarint(orig, int64(r.left.s)-int64(r.id.s))
			}
			switch {
			case r.right.isNone():
				f |= rightNone << 3
			case r.right == nextItem(l, i, r.n-1):
				f |= rightNext << 3
			case !first && r.right == prev.right:
				f |= rightSame << 3
			default:
				f |= rightExplicit << 3
				orig = binary.AppendUvarint(orig, uint64(r.right.a))
				orig = binary.AppendVarint(orig, int64(r.right.s)-int64(r.id.s))
			}
			if r.deleted {
				f |= runDeleted
			}
			if !first && r.id.a == prev.id.a {
				f |= runSameAgent
			} else {
				ids = binary.AppendUvarint(ids, uint64(r.id.a))
			}
			flags = append(flags, f)
			lens = binary.AppendUvarint(lens, uint64(r.n))
			ids = binary.AppendVarint(ids, int64(r.id.s)-int64(prev.id.s+prev.n))
			if !r.deleted {
				for _, c := range x.arena[r.content : r.content+r.n] {
					text = utf8.AppendRune(text, c)
				}
			}
			prev, first = r, false
		}
	}
	w = binary.AppendUvarint(w, uint64(nruns))
	for _, col := range [][]byte{flags, lens, ids, orig} {
		w = binary.AppendUvarint(w, uint64(len(col)))
		w = append(w, col...)
	}
	return w, text
}

// snapReader reads uvarint-framed sections with every count checked against
// the bytes that remain.
type snapReader struct {
	b   []byte
	off int
	err error
}

func (r *snapReader) fail(reason string) {
	if r.err == nil {
		r.err = &DecodeError{What: "snapshot", Offset: r.off, Reason: reason}
	}
}

func (r *snapReader) uv(max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad or truncated varint")
		return 0
	}
	r.off += n
	if v > max {
		r.fail(fmt.Sprintf("value %d exceeds %d", v, max))
		return 0
	}
	return v
}

func (r *snapReader) sv() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad or truncated varint")
		return 0
	}
	r.off += n
	return v
}

// count reads a count of elements of at least minSize bytes each.
func (r *snapReader) count(minSize int) int {
	n := r.uv(math.MaxUint32)
	if r.err == nil && n > uint64((len(r.b)-r.off)/minSize) {
		r.fail("count exceeds the remaining bytes")
	}
	return int(n)
}

func (r *snapReader) bytes() []byte {
	n := r.uv(math.MaxUint32)
	if r.err == nil && n > uint64(len(r.b)-r.off) {
		r.fail("length exceeds the remaining bytes")
	}
	if r.err != nil {
		return nil
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p
}

func (r *snapReader) byte1() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// LoadSnapshot decodes a snapshot made by EncodeSnapshot into a new document
// with the given options (its own agent id: a loaded replica is a new agent).
// A snapshot that is malformed or inconsistent is rejected with a *DecodeError.
func LoadSnapshot(b []byte, o Options) (*Doc, error) {
	lim := o.Limits.withDefaults()
	dec := decoder{what: "snapshot"}
	dec.r.Reset(b)
	if _, err := dec.array("snapshot", 4); err != nil {
		return nil, err
	}
	if _, err := dec.uint("version", snapshotVersion); err != nil {
		return nil, err
	}
	kind, err := dec.uint("compression", snapLZ4)
	if err != nil {
		return nil, err
	}
	rawLen, err := dec.r.Uint()
	if err != nil {
		return nil, dec.fail("body length", err)
	}
	if rawLen > uint64(lim.MaxSnapshot) {
		// Refused before anything is allocated or inflated.
		return nil, &DecodeError{What: "snapshot", Offset: dec.r.Offset(), Err: ErrTooLarge,
			Reason: fmt.Sprintf("body of %d bytes exceeds Limits.MaxSnapshot %d", rawLen, lim.MaxSnapshot)}
	}
	body, err := dec.r.Bin()
	if err != nil {
		return nil, dec.fail("body", err)
	}
	if err := dec.r.Done(); err != nil {
		return nil, dec.fail("after body", err)
	}
	if body, err = unpackBody(kind, body, int(rawLen)); err != nil {
		return nil, err
	}
	d, err := loadBody(body, o, lim)
	if err == nil && d.lazy != nil {
		d.lazy.packed, d.lazy.kind = bytes.Clone(b), kind
	}
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			err = &DecodeError{What: "snapshot", Reason: "inconsistent state", Err: err}
		}
		return nil, err
	}
	return d, nil
}

func loadBody(body []byte, o Options, lim Limits) (*Doc, error) {
	r := &snapReader{b: body}
	d := &Doc{lim: lim, agentIx: make(map[AgentID]uint32), rootIx: make(map[string]int)}
	// Agents without ops (a replica's own agent before its first edit) are
	// listed but do not count against MaxAgents; their number is bounded by
	// the bytes of the body.
	na := r.count(2)
	for range na {
		id := AgentID(r.uv(math.MaxUint64))
		next := uint32(r.uv(math.MaxUint32 - 1))
		if r.err != nil {
			return nil, r.err
		}
		if _, dup := d.agentIx[id]; dup || id == 0 {
			return nil, fmt.Errorf("agent %x listed twice or zero", uint64(id))
		}
		d.agentIx[id] = uint32(len(d.agents))
		d.agents = append(d.agents, agentState{id: id, next: next})
	}
	nr := r.count(1)
	if nr > lim.MaxRoots {
		return nil, &DecodeError{What: "snapshot", Reason: "too many roots"}
	}
	for range nr {
		name := r.bytes()
		if r.err != nil {
			return nil, r.err
		}
		if len(name) > lim.MaxRootName || !utf8.Valid(name) {
			return nil, errors.New("bad root name")
		}
		if _, dup := d.rootIx[string(name)]; dup {
			return nil, errors.New("root listed twice")
		}
		d.Text(string(name))
	}
	rootItems, err := d.loadHistory(r)
	if err != nil {
		return nil, err
	}
	lz := &lazySnap{body: body, texts: make([][]byte, nr), runs: make([]runCols, nr)}
	for i := range lz.texts {
		lz.texts[i] = r.bytes()
	}
	for i := range lz.runs {
		lz.runs[i] = r.runCols()
	}
	for _, a := range d.agents {
		if a.next > 0 {
			d.active++
		}
	}
	if d.active > lim.MaxAgents {
		return nil, &DecodeError{What: "snapshot", Reason: "too many agents", Err: ErrTooLarge}
	}
	pend := r.bytes()
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(r.b) {
		return nil, &DecodeError{What: "snapshot", Offset: r.off, Reason: "trailing bytes"}
	}
	// The cheap checks (lazy.go): each text is UTF-8 and as long as the
	// visible runs, and each root's runs hold as many items as the history
	// inserted there. What the reader sees is then exactly what the
	// structure will hold.
	for i, x := range d.roots {
		vis, err := lz.runs[i].measure(lz.texts[i], rootItems[i])
		if err != nil {
			return nil, err
		}
		x.t, x.lazyVis, x.lazyTot = nil, vis, rootItems[i]
		x.cache, x.cached = string(lz.texts[i]), true
		if rootItems[i] > 0 {
			d.live++
		}
	}
	d.lazy = lz
	if len(pend) > 0 || o.Eager {
		// Ops that were waiting for their dependencies wait again: they
		// need the structure, so it is built now (and checked whole).
		if err := d.ready(); err != nil {
			return nil, err
		}
	}
	if len(pend) > 0 {
		// The pending buffer holds up to MaxPending ops, whatever MaxOps says.
		d.loading = true
		d.lim.MaxOps = max(d.lim.MaxOps, d.lim.MaxPending)
		err := d.ApplyUpdate(pend)
		d.loading, d.lim.MaxOps = false, lim.MaxOps
		if err != nil {
			return nil, fmt.Errorf("pending ops: %w", err)
		}
	}
	d.sizeEst, d.sizeExact = len(body)+d.latent(len(pend)), true
	if o.Agent == 0 {
		o.Agent = NewAgentID()
	}
	d.agent = o.Agent
	d.self = noSelf // added at the first local op (see selfIndex)
	if i, ok := d.lookupAgent(o.Agent); ok {
		d.self = i
		d.localFrom = d.agents[i].next
	}
	return d, nil
}

// loadHistory reads every agent's history and the application order. It
// returns the number of items the history inserts into each root.
func (d *Doc) loadHistory(r *snapReader) ([]int, error) {
	rootItems := make([]int, len(d.roots))
	for ai := range d.agents {
		a := &d.agents[ai]
		ns := r.count(1)
		// ns is bounded by the bytes that remain; what is allocated before
		// the spans are read is bounded too (at most 64 Ki spans, 2 MiB).
		a.hist = make([]histSpan, 0, min(ns, 1<<16))
		var seq uint32
		root, tagent, tprev := uint32(0), uint32(0), int64(0)
		for range ns {
			hd := r.uv(math.MaxUint64)
			h := histSpan{seq: seq, n: uint32(min(hd>>histHeaderBits, math.MaxUint32)), del: hd&histDel != 0, rev: hd&histRev != 0}
			if hd&histRoot != 0 {
				root = uint32(r.uv(uint64(len(d.roots))))
			}
			h.root = root
			if h.del {
				if hd&histAgent != 0 {
					tagent = uint32(r.uv(uint64(len(d.agents))))
				}
				tprev += r.sv()
				if tprev < 0 || tprev >= math.MaxUint32 {
					r.fail("delete target out of range")
				}
				h.target = ref{tagent, uint32(tprev)}
			} else if h.rev || hd&histAgent != 0 {
				r.fail("insert span with delete flags")
			}
			if r.err != nil {
				return nil, r.err
			}
			if h.n == 0 || int(h.root) >= len(d.roots) || uint64(seq)+uint64(h.n) > uint64(a.next) ||
				(h.del && (int(h.target.a) >= len(d.agents) || uint64(h.target.s)+uint64(h.n) > uint64(d.agents[h.target.a].next))) {
				return nil, fmt.Errorf("history span %d+%d of agent %d out of range", seq, h.n, ai)
			}
			if !h.del {
				d.items += int(h.n)
				rootItems[h.root] += int(h.n)
			}
			a.hist = append(a.hist, h)
			seq += h.n
		}
		if seq != a.next {
			return nil, fmt.Errorf("history of agent %d covers %d ops, state vector says %d", ai, seq, a.next)
		}
	}
	if d.items > d.lim.MaxItems {
		return nil, fmt.Errorf("%w: %d items", ErrTooLarge, d.items)
	}
	no := r.count(2)
	seen := make([]uint32, len(d.agents))
	for range no {
		a := r.uv(uint64(len(d.agents)))
		n := uint32(r.uv(math.MaxUint32))
		if r.err != nil {
			return nil, r.err
		}
		if int(a) >= len(d.agents) || n == 0 || uint64(seen[a])+uint64(n) > uint64(d.agents[a].next) {
			return nil, errors.New("order span out of range")
		}
		d.order = append(d.order, orderSpan{a: uint32(a), s: seen[a], n: n})
		seen[a] += n
	}
	for ai := range d.agents {
		if seen[ai] != d.agents[ai].next {
			return nil, errors.New("order log does not cover the state vector")
		}
	}
	return rootItems, r.err
}

// loadRuns builds the tree of x from its run columns and its visible text,
// checking them as it goes (see verifyLoaded for what spans roots).
func (x *Text) loadRuns(c runCols, text string) error {
	d := x.doc
	nruns, cols := c.n, c.cols
	lens := &snapReader{b: cols[1]}
	ids := &snapReader{b: cols[2]}
	orig := &snapReader{b: cols[3]}
	x.arena = make([]rune, 0, x.lazyVis)
	for _, c := range text {
		x.arena = append(x.arena, c)
	}
	x.t = newTree()
	t := x.t
	// Runs go into leaves filled to 3/4, so the first edits do not split at once.
	const fill = leafCap * 3 / 4
	l := t.first
	prev := run{id: none, right: none}
	var content uint32
	runs := make([]run, 0, min(nruns, 1<<16))
	origin := func(self uint32) ref {
		a := uint32(orig.uv(uint64(len(d.agents))))
		s := int64(self) + orig.sv()
		if s < 0 || s >= math.MaxUint32 {
			orig.fail("origin out of range")
		}
		return ref{a, uint32(s)}
	}
	for i := range nruns {
		f := cols[0][i]
		if f>>6 != 0 || (i == 0 && f&runSameAgent != 0) {
			return errors.New("bad run flags")
		}
		nr := run{deleted: f&runDeleted != 0, content: noContent}
		nr.n = uint32(lens.uv(math.MaxUint32))
		if f&runSameAgent != 0 {
			nr.id.a = prev.id.a
		} else {
			nr.id.a = uint32(ids.uv(uint64(len(d.agents))))
		}
		seq := int64(prev.id.s+prev.n) + ids.sv()
		if seq < 0 || seq >= math.MaxUint32 {
			return errors.New("run id out of range")
		}
		nr.id.s = uint32(seq)
		if lens.err != nil || ids.err != nil {
			return errors.New("run column truncated")
		}
		if nr.n == 0 || int(nr.id.a) >= len(d.agents) || uint64(nr.id.s)+uint64(nr.n) > uint64(d.agents[nr.id.a].next) {
			return fmt.Errorf("run %d out of range", i)
		}
		switch (f >> 1) & 3 {
		case leftNone:
			nr.left = none
		case leftCont:
			if nr.id.s == 0 {
				return errors.New("continuation run at seq 0")
			}
			nr.left = ref{nr.id.a, nr.id.s - 1}
		case leftPrev:
			if i == 0 {
				return errors.New("first run refers to a previous run")
			}
			nr.left = prev.last()
		default:
			nr.left = origin(nr.id.s)
		}
		switch (f >> 3) & 3 {
		case rightNone:
			nr.right = none
		case rightNext:
			nr.right = ref{a: noAgent - 1} // resolved below
		case rightSame:
			if i == 0 {
				return errors.New("first run refers to a previous run")
			}
			nr.right = prev.right
		default:
			nr.right = origin(nr.id.s)
		}
		if orig.err != nil {
			return errors.New("origin column truncated")
		}
		if !nr.deleted {
			if uint64(content)+uint64(nr.n) > uint64(len(x.arena)) {
				return errors.New("runs hold more visible text than the snapshot has")
			}
			nr.content = content
			content += nr.n
		}
		if k := len(runs); k > 0 && runs[k-1].right == (ref{a: noAgent - 1}) {
			runs[k-1].right = nr.id
		}
		runs = append(runs, nr)
		prev = nr
	}
	if k := len(runs); k > 0 && runs[k-1].right == (ref{a: noAgent - 1}) {
		return errors.New("last run refers to a next run")
	}
	if int(content) != len(x.arena) || lens.off != len(lens.b) || ids.off != len(ids.b) || orig.off != len(orig.b) {
		return errors.New("run columns and text disagree")
	}
	ends := make([]uint32, len(d.agents))
	for i := range runs {
		ends[runs[i].id.a] = max(ends[runs[i].id.a], runs[i].id.s+runs[i].n)
	}
	t.index = make([][]uint32, len(d.agents))
	for a, e := range ends {
		if e > 0 {
			t.index[a] = make([]uint32, e)
		}
	}
	for _, nr := range runs {
		if l.n == fill {
			nl := t.newLeaf()
			l.next = nl
			l = nl
		}
		if t.has(nr.id) || t.has(nr.last()) {
			return fmt.Errorf("item %d:%d appears twice", nr.id.a, nr.id.s)
		}
		l.runs[l.n] = nr
		l.n++
		l.vis += nr.vis()
		l.tot += int(nr.n)
		t.setIndex(nr.id, nr.n, l.id)
	}
	t.buildInner()
	return nil
}

// buildInner builds the inner levels over the leaf chain.
func (t *tree) buildInner() {
	var level []*node
	for l := t.first; l != nil; l = l.next {
		level = append(level, l)
	}
	const fill = nodeCap * 3 / 4
	for len(level) > 1 {
		var up []*node
		for i := 0; i < len(level); i += fill {
			p := &node{}
			for _, c := range level[i:min(i+fill, len(level))] {
				p.kids[p.n] = c
				p.n++
				c.parent = p
			}
			recount(p)
			up = append(up, p)
		}
		level = up
	}
	t.root = level[0]
}

// verifyLoaded checks that the runs are exactly the inserts of the history,
// that origins and delete targets name items, and that deleted items are
// exactly the targets of deletes.
func (d *Doc) verifyLoaded() error {
	items := 0
	for _, x := range d.roots {
		items += x.t.root.tot
	}
	if items != d.items {
		return fmt.Errorf("runs hold %d items, history has %d inserts", items, d.items)
	}
	for ai, a := range d.agents {
		for _, h := range a.hist {
			x := d.roots[h.root]
			lo, n := ref{uint32(ai), h.seq}, h.n
			if h.del {
				lo = h.target
				x = d.roots[h.root]
			}
			if !x.t.hasAll(lo, n) {
				return fmt.Errorf("history names items %d:%d+%d that root %q lacks", lo.a, lo.s, n, x.name)
			}
			if h.del {
				for k := uint32(0); k < n; {
					l, i, o := x.t.find(lo.plus(k))
					r := &l.runs[i]
					if !r.deleted {
						return fmt.Errorf("deleted item %d:%d is visible", lo.a, lo.s+k)
					}
					k += r.n - o
				}
			}
		}
	}
	for _, x := range d.roots {
		for l := x.t.first; l != nil; l = l.next {
			for i := 0; i < l.n; i++ {
				r := &l.runs[i]
				for _, o := range []ref{r.left, r.right} {
					if !o.isNone() && !x.t.has(o) {
						return fmt.Errorf("origin %d:%d is not an item of %q", o.a, o.s, x.name)
					}
				}
			}
		}
	}
	return nil
}

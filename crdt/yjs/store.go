package yjs

// item is one struct in a document's store: an Item, or a GC struct (fGC).
// Items of a sequence are linked left/right inside their parent type.
type item struct {
	id          ID
	length      int
	left, right *item
	origin      ID
	rightOrigin ID
	parent      *ytype
	parentSub   string
	flags       uint8
	content
}

const (
	fDeleted uint8 = 1 << iota
	fGC
	fOrigin
	fRightOrigin
	fSub
	fKeep
)

func (it *item) deleted() bool   { return it.flags&fDeleted != 0 }
func (it *item) isGC() bool      { return it.flags&fGC != 0 }
func (it *item) hasSub() bool    { return it.flags&fSub != 0 }
func (it *item) lastID() ID      { return ID{it.id.Client, it.id.Clock + uint64(it.length) - 1} }
func (it *item) end() uint64     { return it.id.Clock + uint64(it.length) }
func (it *item) visible() bool   { return it.flags&(fDeleted|fGC) == 0 }
func (it *item) countable() bool { return it.content.countable() }

// blockMax bounds a block of the per-client struct list; a full block splits in two.
const blockMax = 128

// structList holds one client's structs in clock order (Yjs's StructStore
// array), in blocks so that inserting a split item costs O(blockMax).
type structList struct {
	blocks [][]*item
	state  uint64 // next expected clock
	count  int
	hint   pos // where the last find ended (edits cluster: checked first)
}

// pos addresses a struct in a structList.
type pos struct{ b, i int }

func (l *structList) at(p pos) *item { return l.blocks[p.b][p.i] }

// find returns the position of the struct containing clock (clock < state).
func (l *structList) find(clock uint64) pos {
	if h := l.hint; h.b < len(l.blocks) && h.i < len(l.blocks[h.b]) {
		if it := l.blocks[h.b][h.i]; it.id.Clock <= clock {
			if clock < it.end() {
				return h
			}
			if n, ok := l.next(h); ok {
				if it := l.at(n); it.id.Clock <= clock && clock < it.end() {
					l.hint = n
					return n
				}
			}
		}
	}
	p := l.search(clock)
	l.hint = p
	return p
}

func (l *structList) search(clock uint64) pos {
	bs := l.blocks
	lo, hi := 0, len(bs)-1
	for lo < hi { // last block whose first clock <= clock
		mid := (lo + hi + 1) / 2
		if bs[mid][0].id.Clock <= clock {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	b := bs[lo]
	i, j := 0, len(b)-1
	for i < j {
		mid := (i + j + 1) / 2
		if b[mid].id.Clock <= clock {
			i = mid
		} else {
			j = mid - 1
		}
	}
	return pos{lo, i}
}

func (l *structList) next(p pos) (pos, bool) {
	p.i++
	if p.i < len(l.blocks[p.b]) {
		return p, true
	}
	p.b++
	p.i = 0
	return p, p.b < len(l.blocks)
}

func (l *structList) prev(p pos) (pos, bool) {
	if p.i > 0 {
		p.i--
		return p, true
	}
	if p.b == 0 {
		return p, false
	}
	p.b--
	p.i = len(l.blocks[p.b]) - 1
	return p, true
}

func (l *structList) push(it *item) {
	n := len(l.blocks)
	if n == 0 || len(l.blocks[n-1]) >= blockMax {
		l.blocks = append(l.blocks, make([]*item, 0, blockMax))
		n++
	}
	l.blocks[n-1] = append(l.blocks[n-1], it)
	l.state = it.end()
	l.count++
}

// insertAfter puts it right after the struct at p and returns the positions
// of the struct that was at p and of it (a full block splits, moving both).
func (l *structList) insertAfter(p pos, it *item) (pos, pos) {
	b := l.blocks[p.b]
	b = append(b, nil)
	copy(b[p.i+2:], b[p.i+1:])
	b[p.i+1] = it
	l.blocks[p.b] = b
	l.count++
	if len(b) > 2*blockMax {
		h := len(b) / 2
		nb := make([]*item, len(b)-h, blockMax*2)
		copy(nb, b[h:])
		clear(b[h:])
		l.blocks[p.b] = b[:h]
		l.blocks = append(l.blocks, nil)
		copy(l.blocks[p.b+2:], l.blocks[p.b+1:])
		l.blocks[p.b+1] = nb
		if p.i >= h {
			p = pos{p.b + 1, p.i - h}
		} else if p.i+1 >= h {
			return p, pos{p.b + 1, p.i + 1 - h}
		}
	}
	return p, pos{p.b, p.i + 1}
}

// remove deletes the struct at p.
func (l *structList) remove(p pos) {
	b := l.blocks[p.b]
	copy(b[p.i:], b[p.i+1:])
	b[len(b)-1] = nil
	b = b[:len(b)-1]
	l.count--
	if len(b) == 0 {
		l.blocks = append(l.blocks[:p.b], l.blocks[p.b+1:]...)
		return
	}
	l.blocks[p.b] = b
}

package owner

// size estimates a step's memory. Steps are contiguous: each From is the
// previous To.
func (c *Step) size() int {
	n := 48
	for _, s := range c.Changes {
		n += 40 + len(s.Root) + len(s.Ins)
	}
	return n
}

// changeLog keeps the most recent changes of a loaded document, bounded in
// count and bytes, so that a follower that reconnects (SSE Last-Event-ID,
// long-poll since=V) gets exactly what it missed. Older history is not kept:
// such a follower gets a fresh snapshot (a "reset"). The log starts empty
// when the document loads. Owned by the owner goroutine.
type changeLog struct {
	entries  []Step // oldest first
	bytes    int
	maxCount int
	maxBytes int
}

func newChangeLog(maxCount, maxBytes int) changeLog {
	return changeLog{maxCount: maxCount, maxBytes: maxBytes}
}

func (l *changeLog) add(c Step) {
	l.entries = append(l.entries, c)
	l.bytes += c.size()
	drop := 0
	for len(l.entries)-drop > 1 && (len(l.entries)-drop > l.maxCount || l.bytes > l.maxBytes) {
		l.bytes -= l.entries[drop].size()
		drop++
	}
	if drop > 0 {
		clear(l.entries[:drop])
		l.entries = l.entries[drop:]
	}
}

// since returns the changes after version v, or ok=false when they are not
// all in the log (v older than the log, or not a version the document went
// through). v equal to now gives no changes.
func (l *changeLog) since(v, now uint64) ([]Step, bool) {
	if v == now {
		return nil, true
	}
	if v > now {
		return nil, false
	}
	// Versions grow along the log: binary search for the step starting at v.
	lo, hi := 0, len(l.entries)
	for lo < hi {
		m := (lo + hi) / 2
		if l.entries[m].From < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(l.entries) || l.entries[lo].From != v {
		return nil, false
	}
	return l.entries[lo:], true
}

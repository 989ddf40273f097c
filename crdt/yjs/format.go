package yjs

import (
	"slices"
)

// formattingCleanup is what a Yjs document does after a remote transaction
// that touched a Y.Text / Y.XmlText with formatting
// (cleanupYTextAfterTransaction): format marks made redundant are deleted,
// in a transaction of the document's own whose update Yjs broadcasts. It
// reports whether it ran.
func (d *Doc) formattingCleanup(order []uint64) bool {
	tx := d.tx

	run := false
	for _, t := range tx.changed {
		if (t.kind == TypeText || t.kind == TypeXmlText) && t.hasFormatting && (t.item == nil || !t.item.deleted()) {
			run = true
		}
	}
	if !run {
		return false
	}
	var need []*ytype
	addNeed := func(t *ytype) {
		if !slices.Contains(need, t) {
			need = append(need, t)
		}
	}
	for _, b := range tx.before {
		l := d.clients[b.client]
		if l == nil || b.before >= l.state {
			continue
		}
		for p, ok := l.find(b.before), true; ok; p, ok = l.next(p) {
			if it := l.at(p); !it.isGC() && !it.deleted() && it.ref == refFormat {
				addNeed(it.parent)
			}
		}
	}
	tx.inCleanup = true
	// deleted structs client by client in the order Yjs's delete set holds
	// them (first deletion first), clocks ascending
	dels := make([]txDel, 0, len(tx.deleted))
	for _, c := range order {
		for _, x := range tx.deleted {
			if x.client == c {
				dels = append(dels, x)
			}
		}
	}
	for _, x := range dels {
		l := d.clients[x.client]
		end := x.r.clock + x.r.len
		for p, ok := l.find(x.r.clock), true; ok; p, ok = l.next(p) {
			it := l.at(p)
			if it.id.Clock >= end {
				break
			}
			if it.isGC() || it.parent == nil || !it.parent.hasFormatting || slices.Contains(need, it.parent) {
				continue
			}
			if it.ref == refFormat {
				addNeed(it.parent)
			} else {
				d.cleanupContextlessGap(it)
			}
		}
	}
	for _, t := range need {
		d.cleanupTextFormatting(t)
	}
	tx.inCleanup = false
	return true
}

// cleanupContextlessGap deletes repeated format marks around a deleted
// item (cleanupContextlessFormattingGap).
func (d *Doc) cleanupContextlessGap(it *item) {
	for it != nil && it.right != nil && (it.right.deleted() || !it.right.countable()) {
		it = it.right
	}
	var seen []string
	for it != nil && (it.deleted() || !it.countable()) {
		if !it.deleted() && it.ref == refFormat {
			if slices.Contains(seen, it.ext.str) {
				d.deleteItem(it)
			} else {
				seen = append(seen, it.ext.str)
			}
		}
		it = it.left
	}
}

// cleanupTextFormatting runs cleanupFormattingGap over every gap of t (cleanupYTextFormatting).
func (d *Doc) cleanupTextFormatting(t *ytype) {
	start, end := t.start, t.start
	var startAttrs, cur []attr
	for ; end != nil; end = end.right {
		if end.deleted() {
			continue
		}
		if end.ref == refFormat {
			cur = setAttrFrom(cur, end)
			continue
		}
		cur = d.cleanupFormattingGap(start, end, startAttrs, cur)
		startAttrs = append([]attr(nil), cur...)
		start = end
	}
}

package storage

import (
	"encoding/binary"
	"fmt"
)

// migrateChunk is the most entries of one document a commit migrates at a
// time. Documents' entries are interleaved in the journal, so freeing the
// head takes a small piece of each document in turn; a larger piece per
// document would spend the commit's budget on one of them.
const migrateChunk = 64

// cleanMode says which kind of commit cleans the journal.
type cleanMode int

const (
	// cleanInline: a commit of requests. It cleans only while the journal
	// is past twice its target, the backstop for writers that leave the
	// committer no idle time.
	cleanInline cleanMode = iota + 1
	// cleanIdle: a cleaning-only commit the committer makes when no request
	// is queued. Its size bounds how long a request arriving meanwhile waits.
	cleanIdle
	// cleanDrain: Close empties the journal.
	cleanDrain
)

// idleMoves is how many live entries an idle cleaning commit migrates at
// most: about a millisecond of work on the reference machine, so a request
// that arrives during one waits about as long as behind one busy commit.
const idleMoves = 512

// cleanBudget returns how much journal cleaning one commit of n requests may
// do: the journal size to get under, at most how many live entries to migrate
// into per-document logs, and at most how many dead entries to delete.
//
// Cleaning happens in the committer's idle time (cleanIdle), so it does not
// delay acks. Only when writers leave no idle time and the journal passes
// twice its target do commits of requests clean too: then a commit migrates
// about twice as many entries as it appends (each entry is migrated once, so
// that keeps up), and the budget grows when writers outpace it. On Close
// (cleanDrain) the journal is emptied.
func (s *Store) cleanBudget(mode cleanMode, n int) (target int64, moves, deletes int) {
	target = int64(s.opts.JournalEntries)
	switch mode {
	case cleanDrain:
		return 0, 1 << 14, 1 << 16
	case cleanIdle:
		return target, idleMoves, 4 * idleMoves
	}
	moves = min(max(2*n, 256), 1<<12)
	switch j := s.jcount.Load(); {
	case j <= 2*target:
		return target, 0, 0
	case j > 8*target:
		moves = 1 << 14
	case j > 4*target:
		moves *= 4
	}
	return target, moves, max(4*moves, 1<<12)
}

// clean deletes dead entries at the head of the journal and migrates the
// document of each live head entry, until the journal holds at most target
// entries or the budget is spent. A migration moves up to all of the
// document's live entries, so the head then meets mostly dead entries until
// the next document written since. Every deletion is at the head, where whole
// pages empty out, so cleaning dirties few pages.
func (b *batch) clean(target int64, moves, deletes int) error {
	if b.jcount <= target || deletes == 0 {
		return nil
	}
	// After each delete, Seek to the next key: First would walk over every
	// leaf emptied in this transaction, and Next after a Delete may skip a
	// key when the leaf was already modified in this transaction.
	c := b.journal.Cursor()
	var gseq uint64
	for k, v := c.First(); b.jcount > target && deletes > 0; k, v = c.Seek(seqKey(gseq + 1)) {
		if k == nil {
			return fmt.Errorf("storage: journal ends but %d entries counted", b.jcount)
		}
		gseq = binary.BigEndian.Uint64(k)
		e, err := decodeJournalValue(v)
		if err != nil {
			return fmt.Errorf("journal entry %d: %w", gseq, err)
		}
		d, err := b.doc(e.doc)
		if err != nil {
			return fmt.Errorf("journal entry %d: %w", gseq, err)
		}
		if len(d.refs) == 0 || d.refs[0].gseq != gseq || d.refs[0].seq != e.seq {
			return fmt.Errorf("storage: journal index out of step at entry %d (document %q)", gseq, e.doc)
		}
		if e.seq > d.info.LastSeq { // live: move (a prefix of) the document's tail first
			if moves == 0 {
				return nil
			}
			n, err := b.migrate(d, min(moves, migrateChunk))
			if err != nil {
				return err
			}
			moves -= n
		}
		if err := b.journal.Delete(k); err != nil {
			return err
		}
		d.refs = d.refs[1:]
		d.refsDirty = true
		b.jcount--
		deletes--
	}
	return nil
}

// migrate copies up to limit of the document's oldest live journal entries
// into its own log and moves its log watermark past them; the entries are dead
// from then on, and clean deletes them when they reach the head. It returns
// how many it moved. Bounding it keeps one hot document's long journal tail
// from turning a commit into a long stall.
func (b *batch) migrate(d *docState, limit int) (int, error) {
	if d.info.Deleted {
		return 0, fmt.Errorf("storage: deleted document %q has live journal entries", d.id)
	}
	live := d.live()
	live = live[:min(len(live), limit)]
	if err := b.ensureBucket(d); err != nil {
		return 0, err
	}
	for _, r := range live {
		v := b.journal.Get(seqKey(r.gseq))
		if v == nil {
			return 0, fmt.Errorf("storage: journal entry %d of %q missing", r.gseq, d.id)
		}
		e, err := decodeJournalValue(v)
		if err != nil {
			return 0, fmt.Errorf("journal entry %d: %w", r.gseq, err)
		}
		if e.doc != d.id || e.seq != r.seq || e.seq != d.info.LastSeq+1 {
			return 0, fmt.Errorf("storage: journal entry %d is %q/%d, index says %q/%d after %d",
				r.gseq, e.doc, e.seq, d.id, r.seq, d.info.LastSeq)
		}
		if err := d.log.Put(seqKey(e.seq), encodeRecord(e.seq, e.payload)); err != nil {
			return 0, err
		}
		d.info.LastSeq = e.seq
		d.info.LogEntries++
		d.info.LogBytes += int64(len(e.payload))
		d.info.Updated = maxTime(d.info.Updated, e.nanos)
	}
	d.dirty = true
	return len(live), nil
}

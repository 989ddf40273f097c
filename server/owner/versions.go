package owner

import (
	"fmt"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/collabd/collabd/protocol"
)

// Version history (docs/design/versions.md). The owner takes versions: a
// copy of the document (the engine's snapshot) with the version number, the
// authors of the changes since the previous one and, for named versions, a
// label. Automatic versions are taken after VersionQuiet without a change,
// every VersionEvery changes, and before the document unloads or shuts
// down, each only if the document moved since the last one. They go to the
// VersionStore through the commit queue, so a version is acked (a named
// one's Reply) in order with the updates before it, once durable.
//
// Reading versions needs no owner (the server reads the store); a restore
// does: the server loads the version's texts off the owner and sends them in
// a Restore, which the owner turns into server edits (a diff per root;
// for engines that are RootRestorers, the roots that are not texts are
// made equal to the loaded version's structurally).

// VersionStore is where versions go (server: bbolt's versions bucket).
type VersionStore interface {
	// SubmitVersion queues a version and returns at once; the Pending's
	// sequence is the version's. A full queue is an error wrapping
	// ErrBusy, never a wait.
	SubmitVersion(doc string, v NewVersion) (Pending, error)
}

// NewVersion is a version the owner takes.
type NewVersion struct {
	Version  uint64
	Named    bool
	Label    string
	Authors  []string
	Snapshot []byte
}

// MaxVersionAuthors bounds the authors one version names.
const MaxVersionAuthors = 256

// Named versions are never pruned and each copies the whole document: a
// document takes at most NamedVersionBurst at once and NamedVersionRate a
// second after that; past it a Checkpoint is refused (CodeRateLimited).
const (
	NamedVersionRate  = 1.0 / 10
	NamedVersionBurst = 20
)

// Checkpoint asks for a named version of the document as it is now; the
// reply comes once it is durable.
type Checkpoint struct {
	Label  string
	Author string // token subject of who asked ("" in development mode)
	Reply  chan<- CheckpointResult
}

// CheckpointResult is a Checkpoint's answer.
type CheckpointResult struct {
	Err     error
	Seq     uint64 // the version's sequence
	Version uint64 // the document version it copies
}

// Restore makes the document's text roots equal to Texts (a version's
// roots; a root missing there is emptied) with server edits: a diff of the
// current text of each root against the wanted one, applied like a REST
// edit, so edits made concurrently merge as with any edit. From is the
// version loaded (by the document's kind of engine; nil: texts only): when
// the document's engine is a RootRestorer, the roots it lists
// (StructuredRoots: a Yjs document's maps, arrays and XML fragments) are
// made equal to From's with RestoreRoot instead. The reply comes when the
// edits are durable.
type Restore struct {
	Texts map[string]string
	From  Engine
	Kind  Kind // From's kind (a Restore forwarded to another node loads From again by it)
	Reply chan<- RestoreResult
}

// RestoreResult is a Restore's answer.
type RestoreResult struct {
	Err     error
	Version uint64 // the document version after the restore's edits
	Applied int    // primitive edits applied (a structured root restored counts one)
}

func (Checkpoint) msg() {}
func (Restore) msg()    {}

// versionState is the owner's bookkeeping for automatic versions.
type versionState struct {
	started bool     // last is set (from the first change after the load)
	last    uint64   // document version of the last version taken (or at load)
	changes int      // visible changes since
	authors []string // their authors, up to MaxVersionAuthors
	timer   *time.Timer
	armed   bool          // the quiet timer is running
	due     time.Time     // when it fires (a sleeping owner's alarm rings then)
	named   *rate.Limiter // named versions (created with the first)
}

// quietC is the quiet-period timer's channel while it runs.
func (v *versionState) quietC() <-chan time.Time {
	if v.armed {
		return v.timer.C
	}
	return nil
}

// arm starts the quiet timer.
func (v *versionState) arm(d time.Duration) {
	if v.timer == nil {
		v.timer = time.NewTimer(d)
	} else {
		v.timer.Reset(d)
	}
	v.armed, v.due = true, time.Now().Add(d)
}

func (v *versionState) stop() {
	if v.timer != nil {
		v.timer.Stop()
	}
	v.armed = false
}

// noteChange records a visible change (the document was at version before)
// by author ("" for the server's own edits) and takes an automatic version
// when VersionEvery changes have gathered; otherwise it restarts the quiet
// timer.
func (o *Owner) noteChange(before uint64, author string) {
	if o.cfg.Versions == nil {
		return
	}
	v := &o.vers
	if !v.started {
		v.started, v.last = true, before
	}
	v.changes++
	if author != "" && len(v.authors) < MaxVersionAuthors && !slices.Contains(v.authors, author) {
		v.authors = append(v.authors, author)
	}
	if o.cfg.VersionEvery > 0 && v.changes >= o.cfg.VersionEvery {
		o.autoVersion()
		return
	}
	if o.cfg.VersionQuiet > 0 {
		v.arm(o.cfg.VersionQuiet)
	}
}

// versionDue reports whether the document moved since its last version.
func (o *Owner) versionDue() bool {
	return o.cfg.Versions != nil && o.failed == nil && o.doc != nil && o.vers.started && o.doc.Version() != o.vers.last
}

// quietPassed takes the automatic version the quiet timer asked for.
func (o *Owner) quietPassed() {
	o.vers.armed = false
	o.autoVersion()
}

// autoVersion takes an automatic version if the document moved. A full
// store queue retries after the quiet period.
func (o *Owner) autoVersion() {
	if !o.versionDue() {
		return
	}
	err := o.takeVersion("", nil)
	if err != nil {
		o.cfg.Logger.Warn("automatic version not taken", "doc", o.id, "err", err)
		if o.cfg.VersionQuiet > 0 {
			o.vers.arm(o.cfg.VersionQuiet)
		}
	}
}

// versionBeforeUnload takes the automatic version a document that unloads
// or shuts down owes. It reports whether it queued one (the unload waits
// for it like for any commit).
func (o *Owner) versionBeforeUnload() bool {
	if !o.versionDue() {
		return false
	}
	return o.takeVersion("", nil) == nil
}

// takeVersion submits a version of the document as it is now (named when
// reply is set); reply gets its sequence once it is durable. A version
// lands beside the log's commits, not in their queue: it holds no update's
// durable ack back (in cluster mode versions are a stream of their own,
// which can lose its quorum while the document's log has one).
func (o *Owner) takeVersion(label string, reply func(seq uint64, err error)) error {
	v := &o.vers
	nv := NewVersion{Version: o.doc.Version(), Named: reply != nil, Label: label, Authors: slices.Clone(v.authors), Snapshot: record(o.kind, o.doc.Snapshot())}
	p, err := o.cfg.Versions.SubmitVersion(o.id, nv)
	if err != nil {
		return err
	}
	v.started, v.last, v.changes, v.authors = true, nv.Version, 0, nil
	v.stop()
	o.commits.pushVersion(commit{p: p, version: nv.Version, reply: func(err error) {
		if reply != nil {
			seq, _ := p.Result()
			reply(seq, err)
		}
	}})
	return nil
}

// checkpoint answers a Checkpoint: a named version, acked when durable.
func (o *Owner) checkpoint(m Checkpoint) {
	if o.cfg.Versions == nil {
		answer(m.Reply, CheckpointResult{Err: &Refused{protocol.CodeBadFrame, "version history is not enabled on this server"}})
		return
	}
	if !o.exists && o.doc.Version() == 0 {
		answer(m.Reply, CheckpointResult{Err: ErrNoDocument})
		return
	}
	if o.vers.named == nil {
		o.vers.named = rate.NewLimiter(NamedVersionRate, NamedVersionBurst)
	}
	if !o.vers.named.Allow() {
		answer(m.Reply, CheckpointResult{Err: &Refused{protocol.CodeRateLimited, "too many named versions of this document; retry later"}})
		return
	}
	if m.Author != "" && !slices.Contains(o.vers.authors, m.Author) && len(o.vers.authors) < MaxVersionAuthors {
		o.vers.authors = append(o.vers.authors, m.Author)
	}
	version := o.doc.Version()
	err := o.takeVersion(m.Label, func(seq uint64, err error) {
		answer(m.Reply, CheckpointResult{Err: err, Seq: seq, Version: version})
	})
	if err != nil {
		answer(m.Reply, CheckpointResult{Err: fmt.Errorf("version: %w", err)})
	}
}

// restore answers a Restore: first an automatic version of what is there
// now (if it moved since the last one, or if the owner cannot know: nothing
// changed since the load, and the stored state may never have been taken;
// a restore never loses the state it replaces), then per root the edits
// that turn its text into the wanted one, or, for the roots a RootRestorer
// engine restores itself, its RestoreRoot; all of them go out, and to the
// store, through serverUpdate like a REST edit's.
func (o *Owner) restore(m Restore) {
	if !o.exists && o.doc.Version() == 0 {
		answer(m.Reply, RestoreResult{Err: ErrNoDocument})
		return
	}
	if o.cfg.Versions != nil && (o.versionDue() || !o.vers.started) {
		if err := o.takeVersion("", nil); err != nil {
			o.cfg.Logger.Warn("version before restore not taken", "doc", o.id, "err", err)
		}
	}
	rr, _ := o.doc.(RootRestorer)
	var structured []string
	if rr != nil && m.From != nil {
		structured = rr.StructuredRoots(m.From)
	}
	roots := slices.Clone(o.doc.Roots())
	for r := range m.Texts {
		if !slices.Contains(roots, r) {
			roots = append(roots, r)
		}
	}
	for _, r := range structured {
		if !slices.Contains(roots, r) {
			roots = append(roots, r)
		}
	}
	slices.Sort(roots)
	before := o.doc.Version()
	var updates [][]byte
	var changes []Change
	applied := 0
	var editErr error
	for _, root := range roots {
		if slices.Contains(structured, root) {
			u, ch, err := rr.RestoreRoot(root, m.From)
			if err != nil {
				editErr = &Refused{protocol.CodeInvalidOp, fmt.Sprintf("restore of root %q: %v", root, err)}
				break
			}
			if len(u) > 0 {
				updates = append(updates, u)
				changes = append(changes, ch...)
				applied++
			}
			continue
		}
		cur, _ := o.doc.Text(root)
		want := m.Texts[root]
		if cur == want {
			continue
		}
		ps := Prims(DiffText(cur, want, DiffBudget))
		u, ch, err := o.doc.Edit(root, ps)
		if len(u) > 0 {
			updates = append(updates, u)
			changes = append(changes, ch...)
		}
		if err != nil {
			editErr = &Refused{protocol.CodeInvalidOp, fmt.Sprintf("restore of root %q: %v", root, err)}
			break
		}
		applied += len(ps)
	}
	version := o.doc.Version()
	reply := func(stored error) {
		if stored == nil {
			stored = editErr
		}
		answer(m.Reply, RestoreResult{Err: stored, Version: version, Applied: applied})
	}
	if len(updates) == 0 {
		reply(nil)
		return
	}
	o.serverUpdate(before, updates, changes, reply)
}

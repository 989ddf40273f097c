package crdt

// Limits bound what a document accepts from decoded input and from local
// edits. A zero field means the default shown beside it. LoadSnapshot
// enforces them, and every write path of a Doc keeps the document within
// them, so that anything a Doc accepted loads again under the same Limits
// (see doc.go, "Invariants").
type Limits struct {
	MaxOps         int // ops in one update (default 1<<20)
	MaxAgents      int // agents in one update; agents with ops (plus those of pending ops) in a document (default 1<<16)
	MaxRoots       int // named roots in one update; roots with items (plus those pending ops name) in a document (default 256)
	MaxRootName    int // bytes in a root name (default 256)
	MaxItems       int // items (visible and deleted code points) per document (default 1<<28)
	MaxPending     int // ops waiting for their causal dependencies (default 4096)
	MaxSnapshot    int // bytes of an uncompressed snapshot body: the document size (default 256 MiB)
	MaxInsertBytes int // bytes of text in one insert op (default 1<<24)
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxOps, 1<<20)
	def(&l.MaxAgents, 1<<16)
	def(&l.MaxRoots, 256)
	def(&l.MaxRootName, 256)
	def(&l.MaxItems, 1<<28)
	def(&l.MaxPending, 4096)
	def(&l.MaxSnapshot, 256<<20)
	def(&l.MaxInsertBytes, 1<<24)
	return l
}

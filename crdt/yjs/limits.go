package yjs

// Limits bound what a document accepts. A zero field means the default in its
// comment. Every bound is checked before the memory it protects is allocated.
type Limits struct {
	MaxUpdateBytes    int // bytes of one update, state vector or snapshot passed in (default 64 MiB)
	MaxStructs        int // structs in one update (default 1<<20; a v2 update may also hold at most 32 per input byte)
	MaxPendingStructs int // structs waiting for causal dependencies, per document (default 65536)
	MaxPendingDeletes int // delete ranges waiting for their structs, per document (default 65536)
	MaxClients        int // distinct client ids in one update or document (default 1<<16)
	MaxDepth          int // nesting depth of types (type inside type …) and of Any values (default 64)
	MaxDocBytes       int // approximate content bytes held by a document (default 256 MiB)
	MaxStringBytes    int // bytes of one string, key or binary value (default 16 MiB)
	MaxCollection     int // elements of one Any array/object or JSON/Any content (default 1<<20)
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxUpdateBytes, 64<<20)
	def(&l.MaxStructs, 1<<20)
	def(&l.MaxPendingStructs, 65536)
	def(&l.MaxPendingDeletes, 65536)
	def(&l.MaxClients, 1<<16)
	def(&l.MaxDepth, 64)
	def(&l.MaxDocBytes, 256<<20)
	def(&l.MaxStringBytes, 16<<20)
	def(&l.MaxCollection, 1<<20)
	return l
}

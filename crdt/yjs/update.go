package yjs

// ID names one clock tick of one client: every struct covers the IDs
// (Client, Clock) … (Client, Clock+length-1).
type ID struct {
	Client uint64
	Clock  uint64
}

// Parent forms of a decoded item.
const (
	parentNone = iota // taken from the origin/rightOrigin neighbour
	parentRoot        // a root type named parentName
	parentItem        // the type held by the item parentID
)

// wireStruct is one struct of an update as decoded, before integration.
type wireStruct struct {
	ref         uint8 // refGC, refSkip, or the item's content ref
	info        uint8 // the info byte as read (re-encoded unchanged)
	id          ID
	length      int
	origin      ID
	rightOrigin ID
	parentKind  uint8
	parentName  string
	parentID    ID
	parentSub   string
	subKnown    bool // parentSub was read (an item with an origin does not carry it)
	content     content
}

func (s *wireStruct) hasOrigin() bool      { return s.info&0x80 != 0 }
func (s *wireStruct) hasRightOrigin() bool { return s.info&0x40 != 0 }
func (s *wireStruct) hasParentSub() bool   { return s.info&0x20 != 0 && s.info&0xC0 == 0 }
func (s *wireStruct) isItem() bool         { return s.ref != refGC && s.ref != refSkip }

// clientStructs is the run of structs of one client in an update.
type clientStructs struct {
	client  uint64
	structs []wireStruct // contiguous clocks from structs[0].id.Clock
}

// update is a decoded update (v1 or v2): structs grouped by client, then a delete set.
type update struct {
	clients []clientStructs
	ds      deleteSet
}

// decodeUpdateV1 reads a whole v1 update; any error leaves nothing half-read.
func decodeUpdateV1(b []byte, lim *Limits) (*update, error) {
	u := &update{}
	if err := decodeUpdateV1Into(u, b, lim, nil); err != nil {
		return nil, err
	}
	return u, nil
}

// decodeUpdateV1Into decodes into u, reusing its slices. Root names equal to
// a key of intern share that key's string.
func decodeUpdateV1Into(u *update, b []byte, lim *Limits, intern map[string]*ytype) error {
	if len(b) > lim.MaxUpdateBytes {
		return &DecodeError{Field: "update", Err: ErrTooLarge}
	}
	d := &decoder{b: b, lim: lim, intern: intern}
	total := 0
	nc := d.length("client count", 3, lim.MaxClients)
	if cap(u.clients) < nc {
		u.clients = make([]clientStructs, 0, nc)
	}
	u.clients = u.clients[:0]
	for i := 0; i < nc && d.err == nil; i++ {
		ns := d.length("struct count", 2, lim.MaxStructs)
		client := d.varUint("client")
		clock := d.varUint("clock")
		if d.err != nil {
			break
		}
		if total += ns; total > lim.MaxStructs {
			d.fail("struct count", ErrTooLarge)
			break
		}
		var cs clientStructs
		if k := len(u.clients); k < cap(u.clients) {
			cs = u.clients[:k+1][k]
			clear(cs.structs[:cap(cs.structs)])
		}
		cs.client = client
		if cap(cs.structs) < ns {
			cs.structs = make([]wireStruct, 0, ns)
		}
		cs.structs = cs.structs[:0]
		for j := 0; j < ns && d.err == nil; j++ {
			s := wireStruct{id: ID{client, clock}}
			decodeStructV1(d, &s)
			if d.err != nil {
				break
			}
			if uint64(s.length) > maxSafe-clock {
				d.fail("clock", ErrMalformed)
				break
			}
			clock += uint64(s.length)
			cs.structs = append(cs.structs, s)
		}
		u.clients = append(u.clients, cs)
	}
	u.ds = decodeDeleteSetInto(d, u.ds)
	return d.err
}

func decodeStructV1(d *decoder, s *wireStruct) {
	s.info = d.uint8("info")
	s.ref = s.info & 0x1f
	switch s.ref {
	case refGC, refSkip:
		n := d.varUint("length")
		if n == 0 {
			d.fail("length", ErrMalformed)
		}
		s.length = int(n)
		return
	}
	if s.hasOrigin() {
		s.origin = ID{d.varUint("origin client"), d.varUint("origin clock")}
	}
	if s.hasRightOrigin() {
		s.rightOrigin = ID{d.varUint("right origin client"), d.varUint("right origin clock")}
	}
	if s.info&0xC0 == 0 {
		if d.varUint("parent info") == 1 {
			s.parentKind = parentRoot
			s.parentName = d.internString("parent name")
		} else {
			s.parentKind = parentItem
			s.parentID = ID{d.varUint("parent client"), d.varUint("parent clock")}
		}
		if s.info&0x20 != 0 {
			s.parentSub = d.varString("parent sub")
			s.subKnown = true
		}
	}
	s.content, s.length = decodeContent(d, s.ref)
	if d.err != nil {
		return
	}
	// An item can only refer to earlier clocks of its own client.
	own := s.id.Client
	if (s.hasOrigin() && s.origin.Client == own && s.origin.Clock >= s.id.Clock) ||
		(s.hasRightOrigin() && s.rightOrigin.Client == own && s.rightOrigin.Clock >= s.id.Clock) ||
		(s.parentKind == parentItem && s.parentID.Client == own && s.parentID.Clock >= s.id.Clock) {
		d.fail("self reference", ErrMalformed)
	}
}

// encodeV1 writes the update back (the same bytes for an update Yjs wrote).
func (u *update) encodeV1() []byte {
	e := &encoder{}
	e.varUint(uint64(len(u.clients)))
	for _, cs := range u.clients {
		e.varUint(uint64(len(cs.structs)))
		e.varUint(cs.client)
		if len(cs.structs) > 0 {
			e.varUint(cs.structs[0].id.Clock)
		} else {
			e.varUint(0)
		}
		for i := range cs.structs {
			writeWireStructV1(e, &cs.structs[i], 0)
		}
	}
	u.ds.encodeV1(e)
	return e.b
}

// writeWireStructV1 writes a decoded struct from offset off (Item.write).
func writeWireStructV1(e *encoder, s *wireStruct, off int) {
	switch s.ref {
	case refGC, refSkip:
		e.uint8(s.ref)
		e.varUint(uint64(s.length - off))
		return
	}
	info := s.info
	origin := s.origin
	if off > 0 {
		info |= 0x80
		origin = ID{s.id.Client, s.id.Clock + uint64(off) - 1}
	}
	e.uint8(info)
	if info&0x80 != 0 {
		e.varUint(origin.Client)
		e.varUint(origin.Clock)
	}
	if info&0x40 != 0 {
		e.varUint(s.rightOrigin.Client)
		e.varUint(s.rightOrigin.Clock)
	}
	if info&0xC0 == 0 {
		if s.parentKind == parentRoot {
			e.varUint(1)
			e.varString(s.parentName)
		} else {
			e.varUint(0)
			e.varUint(s.parentID.Client)
			e.varUint(s.parentID.Clock)
		}
		if info&0x20 != 0 {
			e.varString(s.parentSub)
		}
	}
	s.content.write(e, off, s.length)
}

package yjs

import (
	"encoding/json"
	"io"
	"math"
	"strings"
)

// v2cols are the column readers of a v2 update (UpdateDecoderV2).
type v2cols struct {
	keyClock   intDiffOptRleReader
	client     uintOptRleReader
	leftClock  intDiffOptRleReader
	rightClock intDiffOptRleReader
	info       rleU8Reader
	str        stringReader
	parentInfo rleU8Reader
	typeRef    uintOptRleReader
	len        uintOptRleReader
	keys       []string
}

func (c *v2cols) id(right bool) ID {
	client := c.client.read()
	var clock int64
	if right {
		clock = c.rightClock.read()
	} else {
		clock = c.leftClock.read()
	}
	if clock < 0 {
		c.client.d.fail("clock", ErrMalformed)
		return ID{}
	}
	return ID{client, uint64(clock)}
}

func (c *v2cols) key(d *decoder) string {
	k := c.keyClock.read()
	if d.err != nil || c.keyClock.d.err != nil {
		return ""
	}
	if k >= 0 && k < int64(len(c.keys)) {
		return c.keys[k]
	}
	s := c.str.read("key")
	if len(c.keys) >= d.lim.MaxCollection {
		d.fail("keys", ErrTooLarge)
		return ""
	}
	c.keys = append(c.keys, s)
	return s
}

// decodeUpdateV2 reads a whole v2 update (Yjs's encodeStateAsUpdateV2 and
// the v2 update events) into the same form as a v1 update.
func decodeUpdateV2(b []byte, lim *Limits) (*update, error) {
	if len(b) > lim.MaxUpdateBytes {
		return nil, &DecodeError{Field: "update", Err: ErrTooLarge}
	}
	d := &decoder{b: b, lim: lim}
	d.varUint("feature flag")
	col := func(field string) *decoder {
		v := d.bytesView(field)
		return &decoder{b: v, lim: lim}
	}
	cols := &v2cols{}
	cols.keyClock.d = col("key clock column")
	cols.client.d = col("client column")
	cols.leftClock.d = col("left clock column")
	cols.rightClock.d = col("right clock column")
	cols.info.d = col("info column")
	sd := col("string column")
	cols.str.d = sd
	cols.str.str = sd.varString("strings")
	cols.str.lens.d = sd
	cols.parentInfo.d = col("parent info column")
	cols.typeRef.d = col("type ref column")
	cols.len.d = col("length column")
	if d.err != nil {
		return nil, d.err
	}
	all := []*decoder{cols.keyClock.d, cols.client.d, cols.leftClock.d, cols.rightClock.d, cols.info.d, sd, cols.parentInfo.d, cols.typeRef.d, cols.len.d}
	colErr := func() error {
		if d.err != nil {
			return d.err
		}
		for _, c := range all {
			if c.err != nil {
				return c.err
			}
		}
		return nil
	}
	u := &update{}
	total := 0
	nc := d.length("client count", 1, lim.MaxClients)
	u.clients = make([]clientStructs, 0, nc)
	for i := 0; i < nc && colErr() == nil; i++ {
		// (no bound from the input length: v2 columns run-length encode
		// structs, so MaxStructs is the bound)
		ns := d.length("struct count", 0, lim.MaxStructs)
		client := cols.client.read()
		clock := d.varUint("clock")
		if colErr() != nil {
			break
		}
		// run-length columns let a few bytes declare many structs: at most
		// 32 structs per input byte, so memory stays proportional to input
		if total += ns; total > lim.MaxStructs || total > 32*len(b)+1024 {
			d.fail("struct count", ErrTooLarge)
			break
		}
		cs := clientStructs{client: client, structs: make([]wireStruct, 0, min(ns, 1024))}
		for j := 0; j < ns && colErr() == nil; j++ {
			s := wireStruct{id: ID{client, clock}}
			decodeStructV2(d, cols, &s)
			if colErr() != nil {
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
	if err := colErr(); err != nil {
		return nil, err
	}
	// delete set, clocks delta-coded and lengths minus one
	n := d.length("delete set clients", 2, lim.MaxClients)
	ranges := 0
	for i := 0; i < n && d.err == nil; i++ {
		client := d.varUint("delete set client")
		nr := d.length("delete set ranges", 2, lim.MaxStructs)
		if ranges += nr; ranges > lim.MaxStructs {
			d.fail("delete set ranges", ErrTooLarge)
			break
		}
		dc := dsClient{client: client, ranges: make([]dsRange, 0, nr)}
		var cur uint64
		for j := 0; j < nr && d.err == nil; j++ {
			diff := d.varUint("delete clock")
			l := d.varUint("delete length")
			if diff > maxSafe-cur || l+1 > maxSafe-cur-diff {
				d.fail("delete range", ErrMalformed)
				break
			}
			clock := cur + diff
			dc.ranges = append(dc.ranges, dsRange{clock, l + 1})
			cur = clock + l + 1
		}
		u.ds.clients = append(u.ds.clients, dc)
	}
	if d.err != nil {
		return nil, d.err
	}
	return u, nil
}

func decodeStructV2(d *decoder, c *v2cols, s *wireStruct) {
	s.info = c.info.read()
	s.ref = s.info & 0x1f
	switch s.ref {
	case refGC:
		n := c.len.read()
		if n == 0 || n > maxSafe {
			d.fail("length", ErrMalformed)
		}
		s.length = int(n)
		return
	case refSkip:
		n := d.varUint("skip length")
		if n == 0 {
			d.fail("length", ErrMalformed)
		}
		s.length = int(n)
		return
	}
	if s.hasOrigin() {
		s.origin = c.id(false)
	}
	if s.hasRightOrigin() {
		s.rightOrigin = c.id(true)
	}
	if s.info&0xC0 == 0 {
		if c.parentInfo.read() == 1 {
			s.parentKind = parentRoot
			s.parentName = c.str.read("parent name")
		} else {
			s.parentKind = parentItem
			s.parentID = c.id(false)
		}
		if s.info&0x20 != 0 {
			s.parentSub = c.str.read("parent sub")
			s.subKnown = true
		}
	}
	s.content, s.length = decodeContentV2(d, c, s.ref)
	if d.err != nil {
		return
	}
	own := s.id.Client
	if (s.hasOrigin() && s.origin.Client == own && s.origin.Clock >= s.id.Clock) ||
		(s.hasRightOrigin() && s.rightOrigin.Client == own && s.rightOrigin.Clock >= s.id.Clock) ||
		(s.parentKind == parentItem && s.parentID.Client == own && s.parentID.Clock >= s.id.Clock) {
		d.fail("self reference", ErrMalformed)
	}
}

// decodeContentV2 reads content from the v2 columns. JSON, Embed and Format
// values arrive as lib0 Any; they are kept as the JSON text v1 uses.
func decodeContentV2(d *decoder, c *v2cols, ref uint8) (content, int) {
	switch ref {
	case refDeleted:
		n := c.len.read()
		if n == 0 || n > maxSafe {
			d.fail("deleted length", ErrMalformed)
		}
		return content{ref: ref}, int(n)
	case refJSON:
		n := c.len.read()
		if n == 0 || n > uint64(d.lim.MaxCollection) {
			d.fail("json count", ErrTooLarge)
			return content{}, 0
		}
		arr := make([]string, 0, min(n, 1024))
		for i := uint64(0); i < n && d.err == nil && c.str.d.err == nil; i++ {
			s := c.str.read("json")
			if c.str.d.err == nil && s != "undefined" && !json.Valid([]byte(s)) {
				d.fail("json", ErrMalformed)
			}
			arr = append(arr, s)
		}
		return content{ref: ref, ext: &contentExt{json: arr}}, len(arr)
	case refBinary:
		return content{ref: ref, buf: d.varBytes("binary")}, 1
	case refString:
		s := c.str.read("string")
		if s == "" && c.str.d.err == nil {
			d.fail("string", ErrMalformed)
		}
		return content{ref: ref, buf: []byte(s)}, utf16Len([]byte(s))
	case refEmbed:
		a := d.any(0)
		return content{ref: ref, ext: &contentExt{str: string(appendAnyJSON(nil, a))}}, 1
	case refFormat:
		k := c.key(d)
		a := d.any(0)
		return content{ref: ref, ext: &contentExt{str: k, str2: string(appendAnyJSON(nil, a))}}, 1
	case refType:
		tr := c.typeRef.read()
		t := &ytype{kind: TypeKind(tr + 1)}
		switch tr {
		case typeRefXmlElement, typeRefXmlHook:
			t.name = c.key(d)
		case typeRefArray, typeRefMap, typeRefText, typeRefXmlFragment, typeRefXmlText:
		default:
			d.fail("type ref", ErrMalformed)
		}
		return content{ref: ref, ext: &contentExt{typ: t}}, 1
	case refAny:
		n := c.len.read()
		if n == 0 || n > uint64(d.lim.MaxCollection) || n > uint64(len(d.b)-d.pos) {
			d.fail("any count", ErrMalformed)
			return content{}, 0
		}
		arr := make([]Any, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			arr = append(arr, d.any(0))
		}
		return content{ref: ref, ext: &contentExt{anys: arr}}, len(arr)
	case refDoc:
		g := c.str.read("doc guid")
		o := d.any(0)
		return content{ref: ref, ext: &contentExt{str: g, opts: &o}}, 1
	}
	d.fail("content ref", ErrMalformed)
	return content{}, 0
}

// v2writer holds the column writers of UpdateEncoderV2.
type v2writer struct {
	keyClock   intDiffOptRleWriter
	keyN       int64
	client     uintOptRleWriter
	leftClock  intDiffOptRleWriter
	rightClock intDiffOptRleWriter
	info       rleU8Writer
	str        stringWriter
	parentInfo rleU8Writer
	typeRef    uintOptRleWriter
	len        uintOptRleWriter
	rest       encoder
}

func (w *v2writer) key(k string) {
	w.keyClock.write(w.keyN) // Yjs never reuses a key (its keyMap stays empty)
	w.keyN++
	w.str.write(k)
}

func (w *v2writer) bytes() []byte {
	e := encoder{}
	e.varUint(0)
	e.varBytes(w.keyClock.bytes())
	e.varBytes(w.client.bytes())
	e.varBytes(w.leftClock.bytes())
	e.varBytes(w.rightClock.bytes())
	e.varBytes(w.info.bytes())
	e.varBytes(w.str.bytes())
	e.varBytes(w.parentInfo.bytes())
	e.varBytes(w.typeRef.bytes())
	e.varBytes(w.len.bytes())
	e.b = append(e.b, w.rest.b...)
	return e.b
}

// encodeV2 writes the update in the v2 format (UpdateEncoderV2).
func (u *update) encodeV2() []byte {
	w := &v2writer{}
	w.rest.varUint(uint64(len(u.clients)))
	for _, cs := range u.clients {
		w.rest.varUint(uint64(len(cs.structs)))
		w.client.write(cs.client)
		if len(cs.structs) > 0 {
			w.rest.varUint(cs.structs[0].id.Clock)
		} else {
			w.rest.varUint(0)
		}
		for i := range cs.structs {
			writeWireStructV2(w, &cs.structs[i])
		}
	}
	w.rest.varUint(uint64(len(u.ds.clients)))
	for _, c := range u.ds.clients {
		w.rest.varUint(c.client)
		w.rest.varUint(uint64(len(c.ranges)))
		var cur uint64
		for _, r := range c.ranges {
			w.rest.varUint(r.clock - cur)
			w.rest.varUint(r.len - 1)
			cur = r.clock + r.len
		}
	}
	return w.bytes()
}

func writeWireStructV2(w *v2writer, s *wireStruct) {
	switch s.ref {
	case refGC:
		w.info.write(refGC)
		w.len.write(uint64(s.length))
		return
	case refSkip:
		w.info.write(refSkip)
		w.rest.varUint(uint64(s.length))
		return
	}
	w.info.write(s.info)
	if s.hasOrigin() {
		w.client.write(s.origin.Client)
		w.leftClock.write(int64(s.origin.Clock))
	}
	if s.hasRightOrigin() {
		w.client.write(s.rightOrigin.Client)
		w.rightClock.write(int64(s.rightOrigin.Clock))
	}
	if s.info&0xC0 == 0 {
		if s.parentKind == parentRoot {
			w.parentInfo.write(1)
			w.str.write(s.parentName)
		} else {
			w.parentInfo.write(0)
			w.client.write(s.parentID.Client)
			w.leftClock.write(int64(s.parentID.Clock))
		}
		if s.info&0x20 != 0 {
			w.str.write(s.parentSub)
		}
	}
	c := &s.content
	switch c.ref {
	case refDeleted:
		w.len.write(uint64(s.length))
	case refJSON:
		w.len.write(uint64(len(c.ext.json)))
		for _, j := range c.ext.json {
			w.str.write(j)
		}
	case refBinary:
		w.rest.varBytes(c.buf)
	case refString:
		w.str.write(string(c.buf))
	case refEmbed:
		w.rest.any(jsonToAny(c.ext.str))
	case refFormat:
		w.key(c.ext.str)
		w.rest.any(jsonToAny(c.ext.str2))
	case refType:
		t := c.ext.typ
		w.typeRef.write(uint64(t.kind - 1))
		if t.kind == TypeXmlElement || t.kind == TypeXmlHook {
			w.key(t.name)
		}
	case refAny:
		w.len.write(uint64(len(c.ext.anys)))
		for _, a := range c.ext.anys {
			w.rest.any(a)
		}
	case refDoc:
		w.str.write(c.ext.str)
		w.rest.any(*c.ext.opts)
	}
}

// jsonToAny parses JSON text into an Any keeping object key order (as
// JSON.parse followed by lib0's writeAny).
func jsonToAny(s string) Any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	a, err := anyFromTokens(dec, 0)
	if err != nil {
		return Any{Kind: AnyNull}
	}
	return a
}

func anyFromTokens(dec *json.Decoder, depth int) (Any, error) {
	if depth > 256 {
		return Any{}, ErrTooLarge
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return Any{}, ErrMalformed
		}
		return Any{}, err
	}
	switch v := tok.(type) {
	case nil:
		return Any{Kind: AnyNull}, nil
	case bool:
		return Any{Kind: AnyBool, Bool: v}, nil
	case json.Number:
		f, err := v.Float64()
		if err != nil && !math.IsInf(f, 0) {
			return Any{}, err
		}
		return AnyNumber(f), nil
	case string:
		return Any{Kind: AnyString, Str: v}, nil
	case json.Delim:
		if v == '[' {
			a := Any{Kind: AnyArray}
			for dec.More() {
				e, err := anyFromTokens(dec, depth+1)
				if err != nil {
					return Any{}, err
				}
				a.Arr = append(a.Arr, e)
			}
			_, err := dec.Token()
			return a, err
		}
		a := Any{Kind: AnyObject}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return Any{}, err
			}
			k, _ := kt.(string)
			e, err := anyFromTokens(dec, depth+1)
			if err != nil {
				return Any{}, err
			}
			a.Obj = append(a.Obj, AnyField{k, e})
		}
		_, err := dec.Token()
		return a, err
	}
	return Any{}, ErrMalformed
}

// ApplyV2 is Apply for an update in Yjs's v2 format.
func (d *Doc) ApplyV2(update []byte) (ApplyResult, error) {
	u, err := decodeUpdateV2(update, &d.lim)
	if err != nil {
		return ApplyResult{}, err
	}
	return d.applyUpdate(u)
}

// EncodeStateV2 is EncodeState in the v2 format (Yjs's encodeStateAsUpdateV2).
func (d *Doc) EncodeStateV2() []byte {
	lim := Limits{MaxUpdateBytes: math.MaxInt, MaxStructs: math.MaxInt, MaxClients: math.MaxInt,
		MaxCollection: math.MaxInt, MaxStringBytes: math.MaxInt, MaxDepth: math.MaxInt}
	u, err := decodeUpdateV1(d.EncodeState(), &lim)
	if err != nil {
		panic("yjs: own state does not decode: " + err.Error()) // an encoder bug, never input
	}
	return u.encodeV2()
}

// ConvertV1ToV2 re-encodes a v1 update in the v2 format (Yjs's convertUpdateFormatV1ToV2).
func ConvertV1ToV2(update []byte, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	u, err := decodeUpdateV1(update, &lim)
	if err != nil {
		return nil, err
	}
	u.normalizeInfo()
	return u.encodeV2(), nil
}

// ConvertV2ToV1 re-encodes a v2 update in the v1 format (Yjs's convertUpdateFormatV2ToV1).
func ConvertV2ToV1(update []byte, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	u, err := decodeUpdateV2(update, &lim)
	if err != nil {
		return nil, err
	}
	u.normalizeInfo()
	return u.encodeV1(), nil
}

// normalizeInfo sets the parentSub bit as Yjs's re-encoding of decoded
// structs does: only when the key was read (an item with an origin does not
// carry it, so Yjs no longer knows it; a cut item keeps it).
func (u *update) normalizeInfo() {
	for i := range u.clients {
		for j := range u.clients[i].structs {
			if s := &u.clients[i].structs[j]; s.isItem() {
				if s.subKnown {
					s.info |= 0x20
				} else {
					s.info &^= 0x20
				}
			}
		}
	}
}

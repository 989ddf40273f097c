package yjs

// TypeKind is the kind of a shared type. Its value is Yjs's type ref + 1, so
// the zero value means "not known yet" (a root that no update has typed).
type TypeKind uint8

// Yjs type refs (ContentType.js).
const (
	typeRefArray = iota
	typeRefMap
	typeRefText
	typeRefXmlElement
	typeRefXmlFragment
	typeRefXmlHook
	typeRefXmlText
)

// The shared type kinds.
const (
	TypeUnknown    TypeKind = 0
	TypeArray      TypeKind = typeRefArray + 1
	TypeMap        TypeKind = typeRefMap + 1
	TypeText       TypeKind = typeRefText + 1
	TypeXmlElement TypeKind = typeRefXmlElement + 1
	TypeXmlFrag    TypeKind = typeRefXmlFragment + 1
	TypeXmlHook    TypeKind = typeRefXmlHook + 1
	TypeXmlText    TypeKind = typeRefXmlText + 1
)

func (k TypeKind) String() string {
	switch k {
	case TypeArray:
		return "Array"
	case TypeMap:
		return "Map"
	case TypeText:
		return "Text"
	case TypeXmlElement:
		return "XmlElement"
	case TypeXmlFrag:
		return "XmlFragment"
	case TypeXmlHook:
		return "XmlHook"
	case TypeXmlText:
		return "XmlText"
	}
	return "Unknown"
}

// ytype is a shared type: a root (item == nil, named in Doc.roots) or the
// content of a Type item. Sequence children hang off start as a linked list
// of items; map children are the last item per key in m (earlier values are
// linked to its left).
type ytype struct {
	kind   TypeKind
	name   string // XmlElement node name, XmlHook hook name, root name for roots
	item   *item  // the item holding this type; nil for a root
	start  *item
	m      map[string]*item
	keys   []string // the keys of m in insertion order (Yjs's Map order)
	length int      // visible countable length of the sequence
	depth  int      // nesting depth (roots are 0)
	self   []string // a root's []string{name}, shared by ApplyResults
	// hasFormatting: a format mark was integrated here (YText._hasFormatting)
	hasFormatting bool
	// posItem/posIndex cache a position for server-side edits: posItem is in
	// the list and posIndex is the visible length before it. Any change to
	// the type drops it; merges keep it right (tryMerge).
	posItem  *item
	posIndex int
	// the position findPositionMarker saw, cached once the edit is done
	pendingPos   *item
	pendingIndex int
}

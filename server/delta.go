package server

import (
	"unicode/utf16"
	"unicode/utf8"
)

// deltaOp is one step of a position-based delta (the Quill/ot-text form):
// keep Retain units, insert Insert, or delete Delete units. Exactly one is
// set. Units are code points, or UTF-16 code units for JavaScript consumers.
type deltaOp struct {
	Retain int    `json:"retain,omitempty"`
	Insert string `json:"insert,omitempty"`
	Delete int    `json:"delete,omitempty"`
}

// units measures strings in code points or UTF-16 code units.
type units bool

const (
	codePoints units = false
	utf16Units units = true
)

func (u units) len(s string) int {
	if u == codePoints {
		return utf8.RuneCountInString(s)
	}
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// split cuts s after k units (k never falls inside a surrogate pair: the
// positions come from whole characters).
func (u units) split(s string, k int) (string, string) {
	n := 0
	for i, r := range s {
		if n >= k {
			return s[:i], s[i:]
		}
		if u == codePoints {
			n++
		} else {
			n += utf16.RuneLen(r)
		}
	}
	return s, ""
}

// compose folds sequential splices (each on the text the previous ones
// left, in units u) into one delta over the text before the first. Trailing
// retains are left out (implied).
func compose(ss []splice, u units) []deltaOp {
	var d []deltaOp
	for _, s := range ss {
		d = composeOne(d, s, u)
	}
	return normalize(d)
}

func composeOne(d []deltaOp, s splice, u units) []deltaOp {
	head, rest, short := take(d, s.Pos, u)
	out := append(make([]deltaOp, 0, len(d)+3), head...)
	if short > 0 { // past the explicit ops: base text kept as it is
		out = append(out, deltaOp{Retain: short})
	}
	if s.Ins != "" {
		out = append(out, deltaOp{Insert: s.Ins})
	}
	// Remove s.Del units of the current text.
	del, rest, short := take(rest, s.Del, u)
	for _, op := range del {
		switch {
		case op.Delete > 0:
			out = append(out, op)
		case op.Retain > 0:
			out = append(out, deltaOp{Delete: op.Retain})
		}
		// text inserted earlier in this delta never existed: dropped
	}
	if short > 0 {
		out = append(out, deltaOp{Delete: short})
	}
	return append(out, rest...)
}

// take splits d after n units of the text it produces (retains and inserts
// count; deletes produce nothing and go with the part they are in). short
// is how many of the n units d did not reach.
func take(d []deltaOp, n int, u units) (head, rest []deltaOp, short int) {
	for i, op := range d {
		if n == 0 {
			return head, d[i:], 0
		}
		switch {
		case op.Delete > 0:
			head = append(head, op)
		case op.Retain > 0:
			if op.Retain > n {
				return append(head, deltaOp{Retain: n}), append([]deltaOp{{Retain: op.Retain - n}}, d[i+1:]...), 0
			}
			head, n = append(head, op), n-op.Retain
		default:
			l := u.len(op.Insert)
			if l > n {
				a, b := u.split(op.Insert, n)
				return append(head, deltaOp{Insert: a}), append([]deltaOp{{Insert: b}}, d[i+1:]...), 0
			}
			head, n = append(head, op), n-l
		}
	}
	return head, nil, n
}

// normalize merges neighbours of one kind and drops trailing retains.
func normalize(d []deltaOp) []deltaOp {
	out := d[:0]
	for _, op := range d {
		if n := len(out); n > 0 {
			last := &out[n-1]
			switch {
			case op.Retain > 0 && last.Retain > 0:
				last.Retain += op.Retain
				continue
			case op.Delete > 0 && last.Delete > 0:
				last.Delete += op.Delete
				continue
			case op.Insert != "" && last.Insert != "":
				last.Insert += op.Insert
				continue
			}
		}
		out = append(out, op)
	}
	for len(out) > 0 && out[len(out)-1].Retain > 0 {
		out = out[:len(out)-1]
	}
	return out
}

// applyDelta applies d to text (units u); for tests and clients' reference.
func applyDelta(text string, d []deltaOp, u units) (string, bool) {
	var b []byte
	rest := text
	for _, op := range d {
		switch {
		case op.Retain > 0:
			if u.len(rest) < op.Retain {
				return "", false
			}
			a, r := u.split(rest, op.Retain)
			b, rest = append(b, a...), r
		case op.Delete > 0:
			if u.len(rest) < op.Delete {
				return "", false
			}
			_, rest = u.split(rest, op.Delete)
		default:
			b = append(b, op.Insert...)
		}
	}
	return string(append(b, rest...)), true
}

// utf16Shadow follows a text to convert code-point splices to UTF-16 ones.
type utf16Shadow struct {
	text   []rune
	astral int // code points outside the BMP (2 UTF-16 units each)
}

func newUTF16Shadow(s string) *utf16Shadow {
	sh := &utf16Shadow{text: []rune(s)}
	for _, r := range sh.text {
		if r > 0xFFFF {
			sh.astral++
		}
	}
	return sh
}

func (sh *utf16Shadow) units(from, to int) int {
	if sh.astral == 0 {
		return to - from
	}
	n := 0
	for _, r := range sh.text[from:to] {
		n += utf16.RuneLen(r)
	}
	return n
}

// convert returns s in UTF-16 units and applies it to the shadow.
func (sh *utf16Shadow) convert(s splice) splice {
	s.Pos = min(max(s.Pos, 0), len(sh.text))
	s.Del = min(s.Del, len(sh.text)-s.Pos)
	out := splice{Pos: sh.units(0, s.Pos), Del: sh.units(s.Pos, s.Pos+s.Del), Ins: s.Ins}
	for _, r := range sh.text[s.Pos : s.Pos+s.Del] {
		if r > 0xFFFF {
			sh.astral--
		}
	}
	ins := []rune(s.Ins)
	for _, r := range ins {
		if r > 0xFFFF {
			sh.astral++
		}
	}
	tail := append(ins, sh.text[s.Pos+s.Del:]...)
	sh.text = append(sh.text[:s.Pos], tail...)
	return out
}

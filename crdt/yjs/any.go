package yjs

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AnyKind is the type of a lib0 "any" value.
type AnyKind uint8

// The kinds of Any, one per lib0 writeAny tag.
const (
	AnyUndefined AnyKind = iota + 1
	AnyNull
	AnyInt     // integral number written as varInt (|n| ≤ 2^31-1), value in Num
	AnyFloat32 // number exact in float32, value in Num
	AnyFloat64 // other number, value in Num
	AnyBigInt  // value in Big
	AnyBool
	AnyString
	AnyObject
	AnyArray
	AnyBytes
)

// Any is a lib0 "any" value: the JSON-like values of Y.Map / Y.Array entries
// and of Doc options. The kind keeps lib0's number tags so a decoded value
// re-encodes to the same bytes.
type Any struct {
	Kind  AnyKind
	Bool  bool
	Num   float64
	Big   int64
	Str   string
	Bytes []byte
	Arr   []Any
	Obj   []AnyField // in encoded (insertion) order
}

// AnyField is one key of an object Any.
type AnyField struct {
	Key string
	Val Any
}

// AnyNumber returns the Any that lib0's writeAny would write for n.
func AnyNumber(n float64) Any {
	if n == math.Trunc(n) && math.Abs(n) <= 1<<31-1 {
		return Any{Kind: AnyInt, Num: n}
	}
	if float64(float32(n)) == n || math.IsNaN(n) {
		return Any{Kind: AnyFloat32, Num: n}
	}
	return Any{Kind: AnyFloat64, Num: n}
}

// AnyFromJSON converts a JSON text to an Any as JSON.parse then writeAny would.
func AnyFromJSON(data []byte, maxDepth int) (Any, error) {
	if !json.Valid(data) {
		return Any{}, ErrMalformed
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Any{}, ErrMalformed
	}
	return anyFromGo(v, maxDepth)
}

func anyFromGo(v any, depth int) (Any, error) {
	if depth < 0 {
		return Any{}, ErrTooLarge
	}
	switch x := v.(type) {
	case nil:
		return Any{Kind: AnyNull}, nil
	case bool:
		return Any{Kind: AnyBool, Bool: x}, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !math.IsInf(f, 0) {
			return Any{}, ErrMalformed
		}
		return AnyNumber(f), nil
	case string:
		return Any{Kind: AnyString, Str: x}, nil
	case []any:
		a := Any{Kind: AnyArray, Arr: make([]Any, 0, len(x))}
		for _, e := range x {
			c, err := anyFromGo(e, depth-1)
			if err != nil {
				return Any{}, err
			}
			a.Arr = append(a.Arr, c)
		}
		return a, nil
	case map[string]any:
		// encoding/json loses key order; JSON objects from the API are sorted by key.
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sortStrings(keys)
		a := Any{Kind: AnyObject, Obj: make([]AnyField, 0, len(x))}
		for _, k := range keys {
			c, err := anyFromGo(x[k], depth-1)
			if err != nil {
				return Any{}, err
			}
			a.Obj = append(a.Obj, AnyField{Key: k, Val: c})
		}
		return a, nil
	}
	return Any{}, ErrMalformed
}

// appendJSON appends a as JSON.stringify would write it (undefined → null
// inside arrays; object keys with undefined values are skipped; non-finite
// numbers → null; Uint8Array → {"0":b0,…}; bigint → its decimal digits).
func appendAnyJSON(b []byte, a Any) []byte {
	switch a.Kind {
	case AnyUndefined, AnyNull, 0:
		return append(b, "null"...)
	case AnyInt, AnyFloat32, AnyFloat64:
		return appendJSNumber(b, a.Num)
	case AnyBigInt:
		return strconv.AppendInt(b, a.Big, 10)
	case AnyBool:
		return strconv.AppendBool(b, a.Bool)
	case AnyString:
		return appendJSONString(b, a.Str)
	case AnyArray:
		b = append(b, '[')
		for i, v := range a.Arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAnyJSON(b, v)
		}
		return append(b, ']')
	case AnyObject:
		b = append(b, '{')
		first := true
		for _, f := range a.Obj {
			if f.Val.Kind == AnyUndefined {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, f.Key)
			b = append(b, ':')
			b = appendAnyJSON(b, f.Val)
		}
		return append(b, '}')
	case AnyBytes:
		return appendBytesJSON(b, a.Bytes)
	}
	return append(b, "null"...)
}

func appendBytesJSON(b []byte, v []byte) []byte {
	b = append(b, '{')
	for i, c := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, int64(c), 10)
	}
	return append(b, '}')
}

// appendJSNumber formats f as JavaScript's Number#toString (JSON.stringify).
func appendJSNumber(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	if f == 0 {
		return append(b, '0')
	}
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±x
	mant, exp, _ := strings.Cut(s, "e")
	digits := strings.Replace(mant, ".", "", 1)
	e, _ := strconv.Atoi(exp)
	n := e + 1 // position of the decimal point
	k := len(digits)
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		for i := 0; i < n-k; i++ {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, "0."...)
		for i := 0; i < -n; i++ {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return b
}

// appendJSONString writes s as JSON.stringify does (escapes only what JSON requires).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"':
				b = append(b, '\\', '"')
			case c == '\\':
				b = append(b, '\\', '\\')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigit(c>>4), hexDigit(c&15))
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		b = append(b, s[i:i+size]...)
		i += size
	}
	return append(b, '"')
}

func hexDigit(c byte) byte { return "0123456789abcdef"[c] }

func sortStrings(s []string) {
	// insertion sort for short lists; sort.Strings otherwise
	if len(s) < 16 {
		for i := 1; i < len(s); i++ {
			for j := i; j > 0 && s[j] < s[j-1]; j-- {
				s[j], s[j-1] = s[j-1], s[j]
			}
		}
		return
	}
	sort.Strings(s)
}

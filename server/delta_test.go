package server

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unicode/utf16"
)

// Composed deltas equal the splices applied one by one, in code points and
// in UTF-16 units (through the shadow), with astral characters around.
func TestComposeMatchesSequentialSplices(t *testing.T) {
	alphabet := []rune("ab😀cé🎉")
	for seed := range uint64(500) {
		rng := rand.New(rand.NewPCG(seed, 11))
		base := make([]rune, rng.IntN(12))
		for i := range base {
			base[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cur := slices.Clone(base)
		sh := newUTF16Shadow(string(base))
		var cps, u16 []splice
		for range 1 + rng.IntN(6) {
			pos := rng.IntN(len(cur) + 1)
			del := 0
			if pos < len(cur) && rng.IntN(2) == 0 {
				del = 1 + rng.IntN(len(cur)-pos)
			}
			var ins []rune
			if del == 0 || rng.IntN(2) == 0 {
				for range 1 + rng.IntN(3) {
					ins = append(ins, alphabet[rng.IntN(len(alphabet))])
				}
			}
			s := splice{Pos: pos, Del: del, Ins: string(ins)}
			cps = append(cps, s)
			u16 = append(u16, sh.convert(s))
			cur = slices.Insert(slices.Delete(cur, pos, pos+del), pos, ins...)
		}
		got, ok := applyDelta(string(base), compose(cps, codePoints), codePoints)
		if !ok || got != string(cur) {
			t.Fatalf("seed %d code points: %q, want %q (splices %v, delta %v)", seed, got, string(cur), cps, compose(cps, codePoints))
		}
		// UTF-16: apply on UTF-16 code units as JavaScript would.
		d := compose(u16, utf16Units)
		in := utf16.Encode(base)
		var out []uint16
		for _, op := range d {
			switch {
			case op.Retain > 0:
				out, in = append(out, in[:op.Retain]...), in[op.Retain:]
			case op.Delete > 0:
				in = in[op.Delete:]
			default:
				out = append(out, utf16.Encode([]rune(op.Insert))...)
			}
		}
		out = append(out, in...)
		if string(utf16.Decode(out)) != string(cur) || string(sh.text) != string(cur) {
			t.Fatalf("seed %d utf16: %q, want %q", seed, string(utf16.Decode(out)), string(cur))
		}
	}
}

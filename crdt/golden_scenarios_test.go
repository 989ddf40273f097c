package crdt_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/collabd/collabd/crdt"
)

// Fixed agent ids of the golden scenarios. They cover every msgpack uint
// width, an id above 2^63 and one that a float64 cannot hold exactly (2^53+1),
// so a client that parses agents as doubles fails.
const (
	agA uint64 = 0x1111
	agB uint64 = 0xfedcba9876543210
	agC uint64 = 7
	agD uint64 = 1<<53 + 1
	agE uint64 = 300
	agX uint64 = 0x99
	agY uint64 = 0xffffffffffffffff
)

// steps builds a scenario's step list.
type steps []goldenStep

func (s *steps) add(g goldenStep) { *s = append(*s, g) }

func (s *steps) new(doc string, agent uint64) {
	s.add(goldenStep{Op: "new", Doc: doc, Agent: strconv.FormatUint(agent, 10)})
}
func (s *steps) ins(doc, root string, pos int, text string) {
	s.add(goldenStep{Op: "insert", Doc: doc, Root: root, Pos: pos, Text: text})
}
func (s *steps) del(doc, root string, pos, n int) {
	s.add(goldenStep{Op: "delete", Doc: doc, Root: root, Pos: pos, Len: n})
}
func (s *steps) take(doc, name string)  { s.add(goldenStep{Op: "take", Doc: doc, Name: name}) }
func (s *steps) apply(doc, from string) { s.add(goldenStep{Op: "apply", Doc: doc, From: from}) }
func (s *steps) sv(doc, name string)    { s.add(goldenStep{Op: "sv", Doc: doc, Name: name}) }
func (s *steps) snap(doc, name string)  { s.add(goldenStep{Op: "snapshot", Doc: doc, Name: name}) }
func (s *steps) text(doc, root string)  { s.add(goldenStep{Op: "text", Doc: doc, Root: root}) }
func (s *steps) pending(doc string)     { s.add(goldenStep{Op: "pending", Doc: doc}) }
func (s *steps) diff(doc, sv, name string) {
	s.add(goldenStep{Op: "diff", Doc: doc, From: sv, Name: name})
}
func (s *steps) load(doc string, agent uint64, from string) {
	s.add(goldenStep{Op: "load", Doc: doc, Agent: strconv.FormatUint(agent, 10), From: from})
}
func (s *steps) relpos(doc, root string, index, assoc int, name string) {
	s.add(goldenStep{Op: "relpos", Doc: doc, Root: root, Pos: index, Assoc: assoc, Name: name})
}
func (s *steps) resolve(doc, root, from string) {
	s.add(goldenStep{Op: "resolve", Doc: doc, Root: root, From: from})
}

func goldenScenarios() []goldenScenario {
	return []goldenScenario{
		{"local_typing", scLocalTyping()},
		{"tombstones", scTombstones()},
		{"concurrent_forward", scConcurrent(false)},
		{"concurrent_backward", scConcurrent(true)},
		{"concurrent_mixed", scMixed()},
		{"out_of_order", scOutOfOrder()},
		{"astral", scAstral()},
		{"several_roots", scRoots()},
		{"random_three_agents", scRandom()},
		{"leaf_boundaries", scLeaves()},
	}
}

func scLocalTyping() steps {
	var s steps
	s.new("A", agA)
	s.ins("A", "t", 0, "hello")
	s.ins("A", "t", 5, " world")
	s.take("A", "u1")
	s.ins("A", "t", 5, ",")
	s.take("A", "u2")
	s.del("A", "t", 0, 1)
	s.ins("A", "t", 0, "H")
	s.del("A", "t", 11, 1) // backspacing: "d", then "l"
	s.del("A", "t", 10, 1)
	s.take("A", "u3")
	s.take("A", "none") // nothing new: empty
	s.text("A", "t")
	s.new("B", agB)
	s.apply("B", "u1")
	s.text("B", "t")
	s.apply("B", "u2")
	s.apply("B", "u3")
	s.text("B", "t")
	s.sv("A", "svA")
	s.sv("B", "svB")
	s.diff("A", "", "full")
	s.diff("A", "svB", "nothing")
	s.new("C", agC)
	s.apply("C", "full")
	s.text("C", "t")
	s.snap("A", "s1")
	for i, p := range [][2]int{{3, 0}, {3, 1}, {0, 1}, {0, 0}, {10, 0}, {10, 1}} {
		s.relpos("A", "t", p[0], p[1], fmt.Sprintf("r%d", i))
	}
	s.ins("B", "t", 3, "XY")
	s.del("B", "t", 6, 2)
	s.take("B", "ub")
	s.apply("A", "ub")
	s.text("A", "t")
	for i := range 6 {
		s.resolve("A", "t", fmt.Sprintf("r%d", i))
		s.resolve("C", "t", fmt.Sprintf("r%d", i))
	}
	s.relpos("A", "t", 4, 0, "rb")
	s.resolve("C", "t", "rb") // C has not seen B's insert: does not resolve
	s.load("D", agD, "s1.lz4")
	s.text("D", "t")
	s.load("E", agA, "s1.deflate")
	s.text("E", "t")
	s.snap("E", "s2")
	s.ins("D", "t", 0, ">")
	s.take("D", "ud")
	s.apply("E", "ud")
	s.text("E", "t")
	return s
}

func scTombstones() steps {
	var s steps
	s.new("A", agA)
	s.ins("A", "t", 0, "abcdef")
	s.del("A", "t", 2, 2) // deleted before it was sent: a tombstone insert
	s.take("A", "u1")
	s.new("B", agB)
	s.apply("B", "u1")
	s.text("B", "t")
	s.sv("B", "svB")
	s.del("A", "t", 0, 4)
	s.ins("A", "t", 0, "z")
	s.take("A", "u2")
	s.diff("A", "svB", "d1")
	s.apply("B", "d1")
	s.text("B", "t")
	s.snap("A", "s1")
	s.snap("B", "s2")
	s.load("C", agC, "s2.lz4")
	s.text("C", "t")
	s.diff("C", "", "full")
	return s
}

// scConcurrent: four replicas type a word each at the same spot, one update
// per code point, forwards or backwards; two observers apply them in
// different orders.
func scConcurrent(backward bool) steps {
	var s steps
	s.new("A", agA)
	s.ins("A", "t", 0, "[]")
	s.take("A", "base")
	docs := []string{"A", "B", "C", "D"}
	agents := []uint64{agA, agB, agC, agD}
	words := []string{"one", "two", "six", "ten"}
	for i, d := range docs[1:] {
		s.new(d, agents[i+1])
		s.apply(d, "base")
	}
	for i, d := range docs {
		for k, c := range []rune(words[i]) {
			pos := 1 + k
			if backward {
				pos = 1
				c = []rune(words[i])[len(words[i])-1-k]
			}
			s.ins(d, "t", pos, string(c))
			s.take(d, fmt.Sprintf("%s%d", d, k))
		}
	}
	s.new("X", agX)
	s.new("Y", agY)
	s.apply("X", "base")
	s.apply("Y", "base")
	for _, d := range docs {
		for k := range 3 {
			s.apply("X", fmt.Sprintf("%s%d", d, k))
		}
	}
	for k := range 3 {
		for i := range docs {
			s.apply("Y", fmt.Sprintf("%s%d", docs[len(docs)-1-i], k))
		}
	}
	s.text("X", "t")
	s.text("Y", "t")
	s.sv("X", "svX")
	s.sv("Y", "svY")
	s.diff("X", "", "fullX")
	s.diff("Y", "", "fullY")
	s.snap("X", "sX")
	s.snap("Y", "sY")
	s.sv("A", "svA")
	s.diff("X", "svA", "restA")
	s.apply("A", "restA")
	s.text("A", "t")
	return s
}

// scMixed: one replica types forwards, one backwards at the same spot, and a
// third deletes the text around it.
func scMixed() steps {
	var s steps
	s.new("A", agA)
	s.ins("A", "t", 0, "xy")
	s.take("A", "base")
	s.new("B", agB)
	s.new("C", agC)
	s.apply("B", "base")
	s.apply("C", "base")
	for k, c := range "fwd" {
		s.ins("A", "t", 1+k, string(c))
	}
	s.take("A", "ua")
	for _, c := range "kcb" {
		s.ins("B", "t", 1, string(c))
	}
	s.take("B", "ub")
	s.del("C", "t", 0, 2)
	s.ins("C", "t", 0, "Z")
	s.take("C", "uc")
	for _, d := range []string{"A", "B", "C"} {
		for _, u := range []string{"ua", "ub", "uc"} {
			if u[1] != d[0]+('a'-'A') {
				s.apply(d, u)
			}
		}
		s.text(d, "t")
	}
	s.snap("A", "s")
	return s
}

func scOutOfOrder() steps {
	var s steps
	s.new("A", agA)
	s.ins("A", "t", 0, "abc")
	s.take("A", "u1")
	s.ins("A", "t", 3, "def")
	s.take("A", "u2")
	s.del("A", "t", 1, 2)
	s.take("A", "u3")
	s.ins("A", "t", 0, "X")
	s.take("A", "u4")
	s.diff("A", "", "full")
	s.new("B", agB)
	s.apply("B", "u4")
	s.pending("B")
	s.apply("B", "u3")
	s.pending("B")
	s.apply("B", "u2")
	s.pending("B")
	s.text("B", "t")
	s.snap("B", "sp") // keeps the pending ops
	s.apply("B", "u1")
	s.pending("B")
	s.text("B", "t")
	s.apply("B", "u2") // duplicates are no-ops
	s.apply("B", "full")
	s.text("B", "t")
	s.load("C", agC, "sp.lz4")
	s.pending("C")
	s.apply("C", "u1")
	s.pending("C")
	s.text("C", "t")
	s.sv("B", "svB")
	s.sv("C", "svC")
	// overlapping delivery: E has "abc", the full diff starts at seq 0
	s.new("E", agE)
	s.apply("E", "u1")
	s.apply("E", "full")
	s.text("E", "t")
	s.sv("E", "svE")
	return s
}

func scAstral() steps {
	var s steps
	s.new("A", agA)
	s.ins("A", "t", 0, "a😀b")
	s.ins("A", "t", 2, "👍🏽") // two code points, both astral
	s.ins("A", "t", 1, "𝄞é中")
	s.take("A", "u1")
	s.text("A", "t")
	s.new("B", agB)
	s.apply("B", "u1")
	s.del("B", "t", 4, 1) // the 😀
	s.ins("B", "t", 5, "🇫🇷")
	s.take("B", "ub")
	s.del("A", "t", 0, 1)
	s.ins("A", "t", 7, "e\u0301")
	s.take("A", "u2")
	s.apply("A", "ub")
	s.apply("B", "u2")
	s.text("A", "t")
	s.text("B", "t")
	s.relpos("A", "t", 5, 0, "r0")
	s.relpos("A", "t", 5, 1, "r1")
	s.resolve("B", "t", "r0")
	s.resolve("B", "t", "r1")
	s.snap("A", "s")
	s.load("C", agC, "s.deflate")
	s.text("C", "t")
	return s
}

func scRoots() steps {
	var s steps
	s.new("A", agA)
	s.ins("A", "title", 0, "Doc")
	s.ins("A", "body", 0, "Hello")
	s.ins("A", "注释", 0, "x")
	s.ins("A", "title", 3, "!")
	s.take("A", "u1")
	s.new("B", agB)
	s.apply("B", "u1")
	s.sv("B", "sv1")
	s.ins("B", "body", 5, " there")
	s.del("B", "title", 0, 1)
	s.ins("B", "", 0, "empty name")
	s.take("B", "ub")
	s.ins("A", "body", 0, ">")
	s.take("A", "u2")
	s.apply("A", "ub")
	s.apply("B", "u2")
	for _, d := range []string{"A", "B"} {
		for _, r := range []string{"title", "body", "注释", ""} {
			s.text(d, r)
		}
	}
	s.diff("A", "sv1", "d1")
	s.snap("A", "s")
	s.load("C", agC, "s.lz4")
	s.text("C", "body")
	s.text("C", "")
	return s
}

// scRandom: three replicas edit at random (fixed seed) and deliver each
// other's updates late and in random order, so ops wait in the pending
// buffer; the texts grow past the size at which snapshots are compressed and
// past one B+tree leaf. The generator mirrors the steps on real documents to
// know each replica's length when it picks positions.
func scRandom() steps {
	var s steps
	rng := rand.New(rand.NewPCG(7, 11))
	docs := []string{"A", "B", "C"}
	agents := []uint64{agA, agB, agD}
	real := map[string]*crdt.Doc{}
	ups := map[string][]byte{}
	for i, d := range docs {
		s.new(d, agents[i])
		real[d] = crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(agents[i])})
	}
	must := func(err error) {
		if err != nil {
			panic(fmt.Sprintf("golden scenario generator: %v", err))
		}
	}
	alphabet := []rune("abcdefghij klmnop😀é中")
	queue := map[string][]string{} // undelivered updates per replica
	n := 0
	const rounds = 60
	for round := range rounds {
		for _, d := range docs {
			x := real[d].Text("t")
			for range 1 + rng.IntN(3) {
				if x.Len() > 0 && rng.IntN(4) == 0 {
					pos := rng.IntN(x.Len())
					k := 1 + rng.IntN(min(5, x.Len()-pos))
					s.del(d, "t", pos, k)
					must(x.Delete(pos, k))
				} else {
					w := make([]rune, 1+rng.IntN(8))
					for j := range w {
						w[j] = alphabet[rng.IntN(len(alphabet))]
					}
					pos := rng.IntN(x.Len() + 1)
					s.ins(d, "t", pos, string(w))
					must(x.Insert(pos, string(w)))
				}
			}
			name := fmt.Sprintf("u%d", n)
			n++
			s.take(d, name)
			ups[name] = real[d].TakeUpdate()
			for _, o := range docs {
				if o != d {
					queue[o] = append(queue[o], name)
				}
			}
		}
		// deliver a random part of each queue in random order
		for _, d := range docs {
			q := queue[d]
			rng.Shuffle(len(q), func(a, b int) { q[a], q[b] = q[b], q[a] })
			k := rng.IntN(len(q) + 1)
			if round == rounds-1 {
				k = len(q)
			}
			for _, u := range q[:k] {
				s.apply(d, u)
				must(real[d].ApplyUpdate(ups[u]))
			}
			queue[d] = q[k:]
			if round%20 == 19 {
				s.text(d, "t")
				s.pending(d)
			}
		}
	}
	for _, d := range docs {
		s.sv(d, "sv"+d)
	}
	s.snap("A", "sA")
	s.snap("B", "sB")
	s.load("L", agE, "sA.lz4")
	s.load("M", agE, "sB.deflate")
	s.text("L", "t")
	s.text("M", "t")
	s.diff("L", "svC", "nothingForC")
	s.diff("M", "", "full")
	return s
}

// scLeaves: runs outnumber one B+tree leaf (32 runs; 24 after loading a
// snapshot), and tombstone runs merge only inside a leaf, so the run
// boundaries that updates and snapshots expose depend on where leaves split.
func scLeaves() steps {
	var s steps
	s.new("A", agA)
	s.ins("A", "t", 0, strings.Repeat("0123456789", 10))
	s.take("A", "u1")
	for i := 1; i <= 50; i++ {
		s.del("A", "t", i, 1) // every other code point: 100 runs
	}
	s.take("A", "u2")
	s.snap("A", "s1")
	s.load("L", agA, "s1.lz4") // same agent: a restarted replica goes on
	s.new("B", agB)
	s.apply("B", "u1")
	s.apply("B", "u2")
	for _, d := range []string{"A", "L"} {
		for i := 49; i >= 0; i -= 2 {
			s.del(d, "t", i, 1) // backspace every other one, then the rest
		}
		for i := 24; i >= 0; i-- {
			s.del(d, "t", i, 1)
		}
		// new text after the load: its tombstones merge where leaves allow
		s.ins(d, "t", 0, strings.Repeat("abcdefghij", 6))
		for i := 1; i <= 30; i++ {
			s.del(d, "t", i, 1)
		}
		for i := 29; i >= 0; i-- {
			s.del(d, "t", i, 1)
		}
		s.ins(d, "t", 0, "end")
		s.take(d, "u3"+d)
		s.diff(d, "", "full"+d)
		s.snap(d, "s"+d)
		s.text(d, "t")
	}
	s.apply("B", "u3A")
	s.diff("B", "", "fullB")
	s.snap("B", "sB")
	s.text("B", "t")
	return s
}

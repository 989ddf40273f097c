package owner

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// benchTexts is a 100,000-code-point text and a copy with edits scattered
// through it.
func benchTexts(edits int) (string, string) {
	rng := rand.New(rand.NewPCG(3, 4))
	words := []string{"lorem ", "ipsum ", "dolor ", "sit ", "amet ", "é ", "😀 "}
	var b strings.Builder
	for b.Len() < 100_000 {
		b.WriteString(words[rng.IntN(len(words))])
	}
	a := []rune(b.String())
	c := append([]rune(nil), a...)
	for range edits {
		p := rng.IntN(len(c) - 10)
		c = append(c[:p], append([]rune("EDIT"), c[p+3:]...)...)
	}
	return string(a), string(c)
}

// BenchmarkDiffText: restoring a 100k-code-point text with a few scattered
// edits (Myers within budget), and with many (over budget: one replace).
func BenchmarkDiffText(b *testing.B) {
	for _, n := range []int{10, 200, 5000} {
		x, y := benchTexts(n)
		b.Run("edits="+strconv.Itoa(n), func(b *testing.B) {
			var splices int
			for b.Loop() {
				splices = len(DiffText(x, y, DiffBudget))
			}
			b.ReportMetric(float64(splices), "splices")
		})
	}
}

package chaos

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// marker is the unique text writer w inserts as its batch b: "<w3:b17>".
func marker(w, b int) string { return "<w" + strconv.Itoa(w) + ":b" + strconv.Itoa(b) + ">" }

// parseMarkers counts the well-formed markers in text. Text outside markers
// (there should be none) is counted in junk, in bytes.
func parseMarkers(text string) (counts map[string]int, junk int) {
	counts = map[string]int{}
	for len(text) > 0 {
		i := strings.IndexByte(text, '<')
		if i < 0 {
			junk += len(text)
			break
		}
		junk += i
		text = text[i:]
		j := strings.IndexByte(text, '>')
		if j < 0 || !wellFormed(text[:j+1]) {
			junk++
			text = text[1:]
			continue
		}
		counts[text[:j+1]]++
		text = text[j+1:]
	}
	return counts, junk
}

// wellFormed reports whether m is "<w%d:b%d>".
func wellFormed(m string) bool {
	var w, b int
	n, err := fmt.Sscanf(m, "<w%d:b%d>", &w, &b)
	return err == nil && n == 2 && m == marker(w, b)
}

// SetCheck is the outcome of the set check over every document.
type SetCheck struct {
	Acked      int `json:"acked"`      // markers acked durable
	OK         int `json:"ok"`         // acked and present exactly once
	Lost       int `json:"lost"`       // acked and absent
	Duplicated int `json:"duplicated"` // present more than once (acked or not)
	Recovered  int `json:"recovered"`  // present once though never acked durable (fine)
	Absent     int `json:"absent"`     // never acked durable and absent (fine)
	Misplaced  int `json:"misplaced"`  // present in a document it was not written to
	Unknown    int `json:"unknown"`    // well-formed markers never written
	Junk       int `json:"junk"`       // bytes outside markers
	// Examples of lost, duplicated and misplaced markers (at most 20).
	LostExamples []string `json:"lost_examples,omitempty"`
	DupExamples  []string `json:"dup_examples,omitempty"`
}

// Pass reports whether nothing acked was lost and nothing is duplicated
// or out of place.
func (c SetCheck) Pass() bool {
	return c.Lost == 0 && c.Duplicated == 0 && c.Misplaced == 0 && c.Unknown == 0 && c.Junk == 0
}

// checkSet compares the final texts (by document) with what was written:
// written maps each marker to its document, acked holds the markers acked
// durable.
func checkSet(texts map[string]string, written map[string]string, acked map[string]bool) SetCheck {
	var c SetCheck
	c.Acked = len(acked)
	found := map[string]int{} // marker -> copies in its own document
	for doc, text := range texts {
		counts, junk := parseMarkers(text)
		c.Junk += junk
		for m, n := range counts {
			switch home, ok := written[m]; {
			case !ok:
				c.Unknown += n
			case home != doc:
				c.Misplaced += n
				if len(c.DupExamples) < 20 {
					c.DupExamples = append(c.DupExamples, m+" in "+doc)
				}
			default:
				found[m] += n
			}
		}
	}
	for m := range written {
		n := found[m]
		switch {
		case n > 1:
			c.Duplicated++
			if len(c.DupExamples) < 20 {
				c.DupExamples = append(c.DupExamples, fmt.Sprintf("%s x%d", m, n))
			}
		case acked[m] && n == 1:
			c.OK++
		case acked[m]:
			c.Lost++
			if len(c.LostExamples) < 20 {
				c.LostExamples = append(c.LostExamples, m+" in "+written[m])
			}
		case n == 1:
			c.Recovered++
		default:
			c.Absent++
		}
	}
	slices.Sort(c.LostExamples)
	slices.Sort(c.DupExamples)
	return c
}

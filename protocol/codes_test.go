package protocol_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/collabd/collabd/protocol"
)

func TestCodeTable(t *testing.T) {
	codes := protocol.Codes()
	if !slices.IsSorted(codes) {
		t.Errorf("Codes() not in ascending order: %v", codes)
	}
	names := map[string]protocol.Code{}
	for _, c := range codes {
		retry := c >= 4000 && c <= 4499
		if !retry && (c < 4500 || c > 4999) {
			t.Errorf("code %d outside 4000–4999", c)
		}
		if got := c.Retry(); got != retry {
			t.Errorf("Code(%d).Retry() = %v, want %v", c, got, retry)
		}
		name := c.String()
		if prev, dup := names[name]; dup || strings.ContainsAny(name, "()") {
			t.Errorf("Code(%d).String() = %q: not a table name, or shared with %d", c, name, prev)
		}
		names[name] = c
	}
	for _, want := range []struct {
		c protocol.Code
		n uint16
	}{{protocol.CodeGoingAway, 4001}, {protocol.CodeSlow, 4008}, {protocol.CodeBadFrame, 4500}, {protocol.CodeTokenExpired, 4503}} {
		if uint16(want.c) != want.n {
			t.Errorf("%v = %d, want %d (codes are stable)", want.c, want.c, want.n)
		}
	}
	for _, c := range []struct {
		c     protocol.Code
		retry bool
		name  string
	}{
		{4321, true, "retry(4321)"}, {4777, false, "terminal(4777)"}, {1006, true, "code(1006)"},
		{1001, true, "code(1001)"}, {1013, true, "code(1013)"}, {1000, false, "code(1000)"},
		{1008, false, "code(1008)"}, {1009, false, "code(1009)"}, {3000, false, "code(3000)"},
	} {
		if got := c.c.Retry(); got != c.retry {
			t.Errorf("Code(%d).Retry() = %v, want %v", c.c, got, c.retry)
		}
		if got := c.c.String(); got != c.name {
			t.Errorf("Code(%d).String() = %q, want %q", c.c, got, c.name)
		}
	}
}

// TestProtocolDocListsCodes keeps docs/PROTOCOL.md's code table in step with
// the code: every code has a row "| number | name | retry or terminal |".
func TestProtocolDocListsCodes(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range protocol.Codes() {
		kind := "terminal"
		if c.Retry() {
			kind = "retry"
		}
		row := fmt.Sprintf("| %d | %s | %s |", c, c, kind)
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/PROTOCOL.md lacks the row %q", row)
		}
	}
}

func TestCloseReason(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	for _, c := range []struct {
		msg, want string
	}{
		{"", "slow"},
		{"queue full", "queue full"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{strings.Repeat("x", 123), strings.Repeat("x", 123)},
		{strings.Repeat("x", 124), strings.Repeat("x", 123)},
		{long, strings.Repeat("é", 61)},
	} {
		got := protocol.CloseReason(protocol.CodeSlow, c.msg)
		if got != c.want {
			t.Errorf("CloseReason(%.20q) = %q, want %q", c.msg, got, c.want)
		}
		if len(got) > protocol.MaxCloseReason || !utf8.ValidString(got) {
			t.Errorf("CloseReason(%.20q) = %d bytes, valid UTF-8 %v", c.msg, len(got), utf8.ValidString(got))
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		attempt    int
		retryAfter time.Duration
		r          float64
		want       time.Duration
	}{
		{0, 0, 0, 0},
		{0, 0, 0.5, 125 * time.Millisecond},
		{3, 0, 0.5, time.Second},
		{3, 5 * time.Second, 0, 5 * time.Second},
		{3, 5 * time.Second, 0.5, 6 * time.Second},
		{10, 0, 0.999, time.Duration(0.999 * float64(30*time.Second))},
		{1000, 0, 0.5, 15 * time.Second},
		{-1, 0, 0.5, 15 * time.Second},
		{2, -time.Second, 2, time.Second},
	} {
		if got := protocol.Backoff(c.attempt, c.retryAfter, c.r); got != c.want {
			t.Errorf("Backoff(%d, %v, %v) = %v, want %v", c.attempt, c.retryAfter, c.r, got, c.want)
		}
	}
}

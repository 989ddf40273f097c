package loadgen

import (
	"errors"
	"strings"
	"testing"
)

// A report never prints "<nil>": checks that passed with a nil error have an
// empty detail, and a nil argument anywhere reads "none".
func TestResultNeverPrintsNil(t *testing.T) {
	r := newResult("x", param("p", 1))
	var durErr error
	r.check("writer durable", durErr == nil, "%s", errText(durErr))
	r.check("no failed cycles", true, "%d failed%s", 0, firstErrText(nil))
	r.check("legacy", true, "err %v", durErr) // a nil error passed as is
	r.note("limit %v", nil)
	r.check("failed", false, "%s", errText(errors.New("boom")))
	r.check("counted", false, "%d failed%s", 2, firstErrText(errors.New("first one")))
	r.add(metric("n/a metric", 0/zero(), "ms"))
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "<nil>") {
		t.Errorf("table prints <nil>:\n%s", out)
	}
	for _, want := range []string{"check writer durable", "err none", "note: limit none", "boom", "2 failed; first: first one"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, c := range r.Checks[:2] {
		if c.Detail != "0 failed" && c.Detail != "" {
			t.Errorf("check %q detail = %q, want empty or \"0 failed\"", c.Name, c.Detail)
		}
	}
}

func zero() float64 { return 0 }

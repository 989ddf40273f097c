package loadgen

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is what a scenario measured.
type Result struct {
	Scenario string   `json:"scenario"`
	Params   []Param  `json:"params"`
	Metrics  []Metric `json:"metrics"`
	Checks   []Check  `json:"checks"`
	Steps    []Step   `json:"steps,omitempty"` // ramps (idle)
	Notes    []string `json:"notes,omitempty"`
	Started  string   `json:"started"` // RFC 3339
	Seconds  float64  `json:"seconds"` // wall time of the whole scenario
}

// Param is one input of a run.
type Param struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Metric is one measured number. NaN (n/a) is written as null in JSON.
type Metric struct {
	Name  string   `json:"name"`
	Value *float64 `json:"value"` // nil: not available
	Unit  string   `json:"unit"`
}

// Check is a pass/fail property of a run (convergence, no leak).
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Step is one stage of a ramp.
type Step struct {
	Label   string   `json:"label"`
	Metrics []Metric `json:"metrics"`
}

// OK reports whether every check passed.
func (r *Result) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

func newResult(name string, params ...Param) *Result {
	return &Result{Scenario: name, Params: params, Started: time.Now().UTC().Format(time.RFC3339)}
}

func param(name string, v any) Param { return Param{Name: name, Value: fmt.Sprint(v)} }

// metric returns a Metric; NaN or Inf values become n/a.
func metric(name string, v float64, unit string) Metric {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Metric{Name: name, Unit: unit}
	}
	v = math.Round(v*1000) / 1000
	return Metric{Name: name, Value: &v, Unit: unit}
}

func (r *Result) add(ms ...Metric) { r.Metrics = append(r.Metrics, ms...) }

func (r *Result) check(name string, ok bool, detail string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(detail, noNil(args)...)})
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, noNil(args)...))
}

// noNil replaces nil arguments (a nil error, mostly) with "none", so a
// report never says "<nil>".
func noNil(args []any) []any {
	for i, a := range args {
		if a == nil {
			args[i] = "none"
		}
	}
	return args
}

// errText is err's message, or "" for nil (a check's detail when it passed).
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Lookup returns the value of the metric name (false if absent or n/a).
func (r *Result) Lookup(name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name && m.Value != nil {
			return *m.Value, true
		}
	}
	return 0, false
}

// WriteTable prints r for a human.
func (r *Result) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s (%.1f s)\n", r.Scenario, r.Seconds)
	if len(r.Params) > 0 {
		ps := make([]string, len(r.Params))
		for i, p := range r.Params {
			ps[i] = p.Name + "=" + p.Value
		}
		fmt.Fprintf(&b, "params: %s\n", strings.Join(ps, " "))
	}
	writeMetrics(&b, "", r.Metrics)
	if len(r.Steps) > 0 {
		writeSteps(&b, r.Steps)
	}
	for _, c := range r.Checks {
		status := "ok"
		if !c.OK {
			status = "FAILED"
		}
		fmt.Fprintf(&b, "check %-28s %-6s %s\n", c.Name, status, c.Detail)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeMetrics(b *strings.Builder, indent string, ms []Metric) {
	width := 0
	for _, m := range ms {
		width = max(width, len(m.Name))
	}
	for _, m := range ms {
		fmt.Fprintf(b, "%s%-*s  %12s %s\n", indent, width, m.Name, m.String(), m.Unit)
	}
}

// writeSteps prints steps as one row each, with the metric names as columns.
func writeSteps(b *strings.Builder, steps []Step) {
	var cols []string
	for _, s := range steps {
		for _, m := range s.Metrics {
			if !slices.Contains(cols, m.Name) {
				cols = append(cols, m.Name)
			}
		}
	}
	fmt.Fprintf(b, "| step | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, s := range steps {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = "–"
			for _, m := range s.Metrics {
				if m.Name == c {
					cells[i] = m.String()
				}
			}
		}
		fmt.Fprintf(b, "| %s | %s |\n", s.Label, strings.Join(cells, " | "))
	}
}

// String formats the value ("n/a" if absent).
func (m Metric) String() string {
	if m.Value == nil {
		return "n/a"
	}
	v := *m.Value
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// WriteMarkdown prints r as a markdown section: parameters, a metric
// table, the steps and the checks.
func (r *Result) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", r.Scenario)
	ps := make([]string, len(r.Params))
	for i, p := range r.Params {
		ps[i] = "`" + p.Name + "=" + p.Value + "`"
	}
	fmt.Fprintf(&b, "%s — started %s, %.1f s\n\n| metric | value | unit |\n|---|---|---|\n", strings.Join(ps, " "), r.Started, r.Seconds)
	for _, m := range r.Metrics {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", m.Name, m.String(), m.Unit)
	}
	if len(r.Steps) > 0 {
		b.WriteString("\n")
		writeSteps(&b, r.Steps)
	}
	b.WriteString("\n")
	for _, c := range r.Checks {
		status := "ok"
		if !c.OK {
			status = "**FAILED**"
		}
		fmt.Fprintf(&b, "- check %s: %s (%s)\n", c.Name, status, c.Detail)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- note: %s\n", n)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// firstErrText is "; first: <err>" for a check that counts failures, or ""
// when there was none.
func firstErrText(err error) string {
	if err == nil {
		return ""
	}
	return "; first: " + err.Error()
}

// Package trace reads editing traces in the format of josephg/editing-traces
// (see shared/traces/TRACES.md) and replays them through the crdt package,
// checking every replica against the recorded final text.
package trace

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Patch is one splice: at Pos remove Del code points, then insert Ins.
type Patch struct {
	Pos int
	Del int
	Ins string
}

// UnmarshalJSON reads the [pos, del, "ins"] form.
func (p *Patch) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw) != 3 {
		return fmt.Errorf("patch has %d fields, want 3", len(raw))
	}
	if err := json.Unmarshal(raw[0], &p.Pos); err != nil {
		return fmt.Errorf("patch position: %w", err)
	}
	if err := json.Unmarshal(raw[1], &p.Del); err != nil {
		return fmt.Errorf("patch delete count: %w", err)
	}
	if err := json.Unmarshal(raw[2], &p.Ins); err != nil {
		return fmt.Errorf("patch insert: %w", err)
	}
	if p.Pos < 0 || p.Del < 0 {
		return fmt.Errorf("patch [%d, %d] has a negative field", p.Pos, p.Del)
	}
	return nil
}

// Txn is one transaction of a trace.
type Txn struct {
	Parents []int   `json:"parents"`
	Agent   int     `json:"agent"`
	Patches []Patch `json:"patches"`
}

// Trace is a whole editing trace.
type Trace struct {
	Name         string `json:"-"`
	Kind         string `json:"kind"`
	StartContent string `json:"startContent"`
	EndContent   string `json:"endContent"`
	NumAgents    int    `json:"numAgents"`
	Txns         []Txn  `json:"txns"`
}

// Concurrent reports whether the trace is an event graph of several agents.
func (t *Trace) Concurrent() bool { return t.Kind == "concurrent" }

// Edits is the number of patches in the trace.
func (t *Trace) Edits() int {
	n := 0
	for _, x := range t.Txns {
		n += len(x.Patches)
	}
	return n
}

// Load reads a trace from a .json or .json.gz file.
func Load(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		// Inflated through a hard cap: a small .gz must not expand into
		// gigabytes of JSON held in memory.
		r = &capReader{r: zr, left: MaxTraceBytes}
	}
	t, err := Read(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Name = Name(path)
	return t, nil
}

// MaxAgents bounds numAgents of a concurrent trace (replay keeps one slot
// per agent).
const MaxAgents = 1 << 16

// MaxTraceBytes caps the decompressed size of a .json.gz trace (the largest
// trace in shared/traces is a few tens of MB of JSON).
const MaxTraceBytes = 1 << 30

// ErrTooLarge is returned by Load for a compressed trace that inflates past
// MaxTraceBytes.
var ErrTooLarge = errors.New("trace: decompressed trace exceeds MaxTraceBytes")

// capReader reads at most left bytes from r and then fails with ErrTooLarge.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// Name is the trace name of a file path: its base name without .json(.gz).
func Name(path string) string {
	n := filepath.Base(path)
	n = strings.TrimSuffix(n, ".gz")
	return strings.TrimSuffix(n, ".json")
}

// Read decodes a trace and checks its structure.
func Read(r io.Reader) (*Trace, error) {
	var t Trace
	if err := json.NewDecoder(r).Decode(&t); err != nil {
		return nil, fmt.Errorf("decode trace: %w", err)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

func (t *Trace) validate() error {
	if t.Kind != "" && t.Kind != "concurrent" {
		return fmt.Errorf("unknown trace kind %q", t.Kind)
	}
	if !t.Concurrent() {
		return nil
	}
	if t.StartContent != "" {
		return errors.New("concurrent trace with start content")
	}
	if t.NumAgents <= 0 || t.NumAgents > MaxAgents {
		return fmt.Errorf("concurrent trace with %d agents (1 to %d)", t.NumAgents, MaxAgents)
	}
	for i, x := range t.Txns {
		if x.Agent < 0 || x.Agent >= t.NumAgents {
			return fmt.Errorf("txn %d: agent %d out of range", i, x.Agent)
		}
		for _, p := range x.Parents {
			if p < 0 || p >= i {
				return fmt.Errorf("txn %d: parent %d is not an earlier txn", i, p)
			}
		}
	}
	return nil
}

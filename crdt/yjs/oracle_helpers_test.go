package yjs

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// oracleCase is one line of interop/yjs/histories.mjs output.
type oracleCase struct {
	Seed    int64             `json:"seed"`
	Roots   map[string]string `json:"roots"`
	Updates []string          `json:"updates"`
	Merged  []string          `json:"merged"`
	MergedF [][]int           `json:"mergedFrom"`
	HalfSV  string            `json:"halfSV"`
	Diffs   []struct {
		Update string `json:"update"`
		Out    string `json:"out"`
	} `json:"diffs"`
	State   string                     `json:"state"`
	StateV2 string                     `json:"stateV2"`
	V2Again string                     `json:"stateV2Reloaded"`
	UpdV2   []string                   `json:"updatesV2"`
	UpdV2V1 []string                   `json:"updatesV2V1"`
	Dump    json.RawMessage            `json:"dump"`
	JSON    map[string]json.RawMessage `json:"json"`
	SV      map[string]uint64          `json:"sv"`
	DS      [][]json.RawMessage        `json:"ds"`
}

var kindByName = map[string]TypeKind{"Text": TypeText, "Map": TypeMap, "Array": TypeArray, "XmlFragment": TypeXmlFrag}

// interopDir returns interop/yjs when its node_modules is installed. Without
// it the test is skipped, unless COLLABD_YJS_ORACLE=1 (set by `make
// yjs-oracle`, which installs it) makes that a failure.
func interopDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../../interop/yjs")
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := os.Stat(filepath.Join(dir, "node_modules", "yjs"))
	_, err2 := exec.LookPath("node")
	if err1 != nil || err2 != nil {
		if os.Getenv("COLLABD_YJS_ORACLE") == "1" {
			t.Fatalf("Yjs oracle not installed (run `make yjs-oracle`): %v %v", err1, err2)
		}
		t.Skip("Yjs oracle not installed; `make yjs-oracle` installs it and runs this test")
	}
	return dir
}

func runNode(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("node", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node %v: %v\n%s\n%s", args, err, out, stderr)
	}
	return out
}

func readCases(t testing.TB, path string) []oracleCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cs []oracleCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<28)
	for sc.Scan() {
		var c oracleCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cs
}

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dump is the canonical view of the given roots (interop/yjs/lib/dump.mjs dumpDoc).
func (d *Doc) dump(roots map[string]string) []byte {
	names := make([]string, 0, len(roots))
	for n := range roots {
		names = append(names, n)
	}
	sortStrings(names)
	b := []byte{'{'}
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, n)
		b = append(b, ':')
		t := d.roots[n]
		if t == nil {
			t = &ytype{}
		}
		b = d.appendType(b, t, kindByName[roots[n]], modeDump, 0)
	}
	return append(b, '}')
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// checkAgainst compares a Go doc with what Yjs computed for the case.
func checkAgainst(t testing.TB, what string, d *Doc, c *oracleCase) bool {
	t.Helper()
	ok := true
	if got := d.dump(c.Roots); !jsonEqual(got, c.Dump) {
		t.Errorf("seed %d %s: dump\n got %s\nwant %s", c.Seed, what, got, c.Dump)
		ok = false
	}
	for name, want := range c.JSON {
		if got := d.JSON(name, kindByName[c.Roots[name]]); !jsonEqual(got, want) {
			t.Errorf("seed %d %s: JSON(%s)\n got %s\nwant %s", c.Seed, what, name, got, want)
			ok = false
		}
	}
	sv, err := DecodeStateVector(d.StateVector(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	wantSV := map[uint64]uint64{}
	for k, v := range c.SV {
		n, _ := strconv.ParseUint(k, 10, 64)
		wantSV[n] = v
	}
	if !reflect.DeepEqual(sv, wantSV) {
		t.Errorf("seed %d %s: state vector %v, want %v", c.Seed, what, sv, wantSV)
		ok = false
	}
	ds := d.deleteSet()
	got, _ := json.Marshal(dsJSON(ds))
	want, _ := json.Marshal(c.DS)
	if !jsonEqual(got, want) {
		t.Errorf("seed %d %s: delete set\n got %s\nwant %s", c.Seed, what, got, want)
		ok = false
	}
	return ok
}

func dsJSON(ds deleteSet) []any {
	out := []any{}
	for _, c := range ds.clients {
		rs := []any{}
		for _, r := range c.ranges {
			rs = append(rs, []uint64{r.clock, r.len})
		}
		out = append(out, []any{c.client, rs})
	}
	return out
}

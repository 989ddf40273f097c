package yjs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestDifferentialYjs runs seeded random multi-client histories made by real
// Yjs (interop/yjs/histories.mjs) through the Go engine: in the original
// order, then shuffled with duplicates and Y.mergeUpdates batches mixed in.
// Go's views, state vector and delete set must equal Yjs's, and Go's
// EncodeState and Diff, loaded back into Yjs (verify.mjs), must too.
//
// YJS_DIFF_CASES (default 300), YJS_DIFF_SEED (default 1), YJS_DIFF_OPS
// (operations per history, default 60) and YJS_DIFF_CLIENTS (default 3) set
// the run; the long run is `make yjs-oracle YJS_DIFF_CASES=20000`.
func TestDifferentialYjs(t *testing.T) {
	dir := interopDir(t)
	n := envInt("YJS_DIFF_CASES", 300)
	seed := envInt("YJS_DIFF_SEED", 1)
	if testing.Short() {
		n = 50
	}
	tmp := t.TempDir()
	casesPath := filepath.Join(tmp, "cases.jsonl")
	runNode(t, dir, "histories.mjs", "--seed", strconv.Itoa(seed), "--cases", strconv.Itoa(n), "--out", casesPath,
		"--ops", strconv.Itoa(envInt("YJS_DIFF_OPS", 60)), "--clients", strconv.Itoa(envInt("YJS_DIFF_CLIENTS", 3)))
	cases := readCases(t, casesPath)
	var out []byte
	failed := 0
	for i := range cases {
		c := &cases[i]
		if failed > 5 {
			t.Fatal("too many failures")
		}
		ups := make([][]byte, len(c.Updates))
		for j, s := range c.Updates {
			ups[j] = b64(t, s)
		}
		// 1. original order
		d := New(Limits{})
		for j, u := range ups {
			if _, err := d.Apply(u); err != nil {
				t.Fatalf("seed %d: apply update %d: %v", c.Seed, j, err)
			}
		}
		if !checkAgainst(t, "in order", d, c) {
			failed++
			continue
		}
		// 2. shuffled, with duplicates and merged batches. Yjs's formatting
		// cleanup depends on the order updates arrive in, so the views and
		// delete set are compared with Yjs fed the same order (verify.mjs);
		// the state vector does not depend on it.
		rng := rand.New(rand.NewPCG(uint64(c.Seed), 7))
		type ref struct {
			U int `json:"u"` // an update, or
			M int `json:"m"` // a merged batch (index+1)
		}
		var order []ref
		for j := range ups {
			order = append(order, ref{U: j})
		}
		for j := range c.Merged {
			order = append(order, ref{M: j + 1})
		}
		for j := 0; j < len(ups)/4; j++ {
			order = append(order, ref{U: rng.IntN(len(ups))})
		}
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		d2 := New(Limits{})
		for j, r := range order {
			u := ups[r.U]
			if r.M > 0 {
				u = b64(t, c.Merged[r.M-1])
			}
			if _, err := d2.Apply(u); err != nil {
				t.Fatalf("seed %d: apply shuffled update %d: %v", c.Seed, j, err)
			}
		}
		if !bytes.Equal(d2.StateVector(), d.StateVector()) {
			t.Errorf("seed %d: shuffled delivery: state vector %x, in order %x", c.Seed, d2.StateVector(), d.StateVector())
			failed++
			continue
		}
		shuffledSV, _ := DecodeStateVector(d2.StateVector(), Limits{})
		_ = shuffledSV
		// 2b. MergeUpdates of the same updates as Yjs's mergeUpdates: same bytes
		for j, from := range c.MergedF {
			var in [][]byte
			for _, k := range from {
				in = append(in, ups[k])
			}
			got, err := MergeUpdates(in, Limits{})
			if err != nil {
				t.Fatalf("seed %d: MergeUpdates: %v", c.Seed, err)
			}
			if want := b64(t, c.Merged[j]); !bytes.Equal(got, want) {
				t.Errorf("seed %d: MergeUpdates(%v)\n got %x\nwant %x", c.Seed, from, got, want)
			}
		}
		// 2c. DiffUpdate as Yjs's diffUpdate: same bytes
		for _, df := range c.Diffs {
			got, err := DiffUpdate(b64(t, df.Update), b64(t, c.HalfSV), Limits{})
			if err != nil {
				t.Fatalf("seed %d: DiffUpdate: %v", c.Seed, err)
			}
			if want := b64(t, df.Out); !bytes.Equal(got, want) {
				t.Errorf("seed %d: DiffUpdate\n got %x\nwant %x", c.Seed, got, want)
			}
		}
		// 3. Yjs's own final state loads into Go
		d3 := New(Limits{})
		if _, err := d3.Apply(b64(t, c.State)); err != nil {
			t.Fatalf("seed %d: apply Yjs state: %v", c.Seed, err)
		}
		if !checkAgainst(t, "Yjs state", d3, c) {
			failed++
			continue
		}
		// 3b. the same in the v2 format, and the first updates converted to v2
		if c.StateV2 != "" {
			v2 := b64(t, c.StateV2)
			d4 := New(Limits{})
			if _, err := d4.ApplyV2(v2); err != nil {
				t.Fatalf("seed %d: apply Yjs v2 state: %v", c.Seed, err)
			}
			if !checkAgainst(t, "Yjs v2 state", d4, c) {
				failed++
				continue
			}
			if got := d4.EncodeStateV2(); !bytes.Equal(got, b64(t, c.V2Again)) {
				t.Errorf("seed %d: EncodeStateV2 of the loaded state differs from Yjs's encodeStateAsUpdateV2 of it", c.Seed)
			}
			for j, s := range c.UpdV2 {
				v1, err := ConvertV2ToV1(b64(t, s), Limits{})
				if want := b64(t, c.UpdV2V1[j]); err != nil || !bytes.Equal(v1, want) {
					t.Errorf("seed %d: update %d v2 → v1 = %v, differs from Yjs's convertUpdateFormatV2ToV1\n%q\n%q", c.Seed, j, err, v1, want)
				}
				if v2, err := ConvertV1ToV2(ups[j], Limits{}); err != nil || !bytes.Equal(v2, b64(t, s)) {
					t.Errorf("seed %d: update %d v1 → v2 = %v, differs from Yjs's convertUpdateFormatV1ToV2", c.Seed, j, err)
				}
			}
		}
		// 4. state and a diff for Yjs to check
		k := rng.IntN(len(ups) + 1)
		pre := New(Limits{})
		for _, u := range ups[:k] {
			if _, err := pre.Apply(u); err != nil {
				t.Fatal(err)
			}
		}
		diff, err := d.Diff(pre.StateVector())
		if err != nil {
			t.Fatal(err)
		}
		// 5. a random subset, shuffled: pending structs and deletes stay in
		// the state Yjs checks (verify.mjs)
		var subset []int
		for j := range ups {
			if rng.IntN(2) == 0 {
				subset = append(subset, j)
			}
		}
		part := New(Limits{})
		subsetOrder := make([]int, 0, len(subset))
		for _, j := range rng.Perm(len(subset)) {
			subsetOrder = append(subsetOrder, subset[j])
			if _, err := part.Apply(ups[subset[j]]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Load(part.EncodeState(), Limits{}); err != nil {
			t.Fatalf("seed %d: own state with pending: %v", c.Seed, err)
		}
		partSV, _ := DecodeStateVector(part.StateVector(), Limits{})
		svJSON := map[string]uint64{}
		for k, v := range partSV {
			svJSON[strconv.FormatUint(k, 10)] = v
		}
		line, _ := json.Marshal(map[string]any{
			"seed":          c.Seed,
			"state":         base64.StdEncoding.EncodeToString(d.EncodeState()),
			"prefix":        k,
			"diff":          base64.StdEncoding.EncodeToString(diff),
			"shuffled":      order,
			"shuffledState": base64.StdEncoding.EncodeToString(d2.EncodeState()),
			"subset":        subsetOrder,
			"subsetSV":      svJSON,
			"subsetState":   base64.StdEncoding.EncodeToString(part.EncodeState()),
		})
		out = append(append(out, line...), '\n')
	}
	if t.Failed() {
		return
	}
	goPath := filepath.Join(tmp, "go.jsonl")
	if err := os.WriteFile(goPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	res := runNode(t, dir, "verify.mjs", casesPath, goPath)
	t.Logf("%d cases (seed %d): %s", len(cases), seed, res)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

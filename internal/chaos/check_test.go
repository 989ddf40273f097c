package chaos

import (
	"reflect"
	"testing"
)

func TestCheckSet(t *testing.T) {
	written := map[string]string{
		marker(1, 0): "a", marker(1, 1): "a", marker(1, 2): "a",
		marker(2, 0): "b", marker(2, 1): "b", marker(2, 2): "b",
	}
	acked := map[string]bool{marker(1, 0): true, marker(1, 1): true, marker(2, 0): true}
	texts := map[string]string{
		"a": marker(1, 0) + marker(1, 2) + marker(2, 2), // 1:1 lost, 1:2 recovered, 2:2 misplaced
		"b": marker(2, 0) + marker(2, 1) + marker(2, 1) + "junk<w9:b9>",
	}
	got := checkSet(texts, written, acked)
	want := SetCheck{Acked: 3, OK: 2, Lost: 1, Duplicated: 1, Recovered: 1, Absent: 1, Misplaced: 1, Unknown: 1, Junk: 4}
	got.LostExamples, got.DupExamples = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("checkSet:\n got %+v\nwant %+v", got, want)
	}
	if got.Pass() {
		t.Fatal("Pass() with a lost marker")
	}
}

func TestParseMarkers(t *testing.T) {
	counts, junk := parseMarkers("<w1:b2><w1:b2><w01:b2><w3:b>x")
	if counts[marker(1, 2)] != 2 || len(counts) != 1 || junk != len("<w01:b2><w3:b>x") {
		t.Fatalf("counts %v junk %d", counts, junk)
	}
}

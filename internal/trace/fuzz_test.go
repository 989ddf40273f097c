package trace

import (
	"bytes"
	"testing"
)

// FuzzRead: a trace file is input from outside (`collabd trace FILE`).
// Reading never panics; a trace Read accepts replays through both engines
// to a result or an error, never a panic.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		`{"startContent":"","endContent":"ab","txns":[{"patches":[[0,0,"a"],[1,0,"b"]]}]}`,
		`{"startContent":"xy","endContent":"y","txns":[{"patches":[[0,1,""]]}]}`,
		`{"kind":"concurrent","startContent":"","endContent":"ab","numAgents":2,"txns":[{"parents":[],"agent":0,"patches":[[0,0,"a"]]},{"parents":[0],"agent":1,"patches":[[1,0,"b"]]}]}`,
		`{"kind":"concurrent","numAgents":2,"txns":[{"parents":[],"agent":0,"patches":[[0,0,"a"]]},{"parents":[],"agent":1,"patches":[[0,0,"b"]]}],"endContent":"ab"}`,
		`{"startContent":"","endContent":"","txns":[{"patches":[[5,2,"z"]]}]}`,
		`{"kind":"concurrent","numAgents":1099511627776,"txns":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		if tr.Edits() > 200 || len(b) > 2048 {
			return // replay cost grows with the trace, not its hostility
		}
		_, _ = Run(tr)
		_, _ = RunYjs(tr)
	})
}

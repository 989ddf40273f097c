package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/collabd/collabd/internal/trace"
)

// runTrace implements "collabd trace". For each trace it prints one line:
//
//	trace=NAME edits=N local_ms=F remote_ms=F snapshot_bytes=N encode_ms=F load_ms=F ok
//
// The line's keys and order are a contract scripts rely on (docs/TRACE.md).
// A trace that fails a check is reported on stderr with its file and the first
// mismatch; the exit status is then 1.
func runTrace(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.Int("runs", 1, "replay each trace `N` times and report the median of each timing")
	engine := fs.String("engine", "native", "the CRDT to replay into: native (collabd's crdt) or yjs (crdt/yjs, BMP-only traces)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: collabd trace [-runs N] [-engine native|yjs] FILE.json[.gz]|DIR ...\n\n"+
			"Replays each trace through the CRDT and checks: local replay, remote apply of the\n"+
			"recorded updates one by one, snapshot round trip, and (concurrent traces) that one\n"+
			"replica per agent converges. A directory means every *.json and *.json.gz in it.\n\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	run := trace.Run
	switch *engine {
	case "native":
	case "yjs":
		run = trace.RunYjs
	default:
		fmt.Fprintf(stderr, "collabd trace: unknown engine %q (native or yjs)\n", *engine)
		return 2
	}
	if fs.NArg() == 0 || *runs < 1 {
		fs.Usage()
		return 2
	}
	files, err := expand(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "collabd trace: %v\n", err)
		return 2
	}
	status := 0
	for _, f := range files {
		res, err := replayFile(f, *runs, run)
		if err != nil {
			fmt.Fprintf(stderr, "collabd trace: %s: %v\n", f, err)
			status = 1
			continue
		}
		fmt.Fprintln(stdout, res.Line())
	}
	return status
}

func replayFile(path string, runs int, run func(*trace.Trace) (trace.Result, error)) (trace.Result, error) {
	t, err := trace.Load(path)
	if err != nil {
		return trace.Result{}, err
	}
	results := make([]trace.Result, 0, runs)
	for range runs {
		r, err := run(t)
		if err != nil {
			return trace.Result{}, err
		}
		results = append(results, r)
	}
	out := results[0]
	median := func(get func(trace.Result) time.Duration) time.Duration {
		v := make([]time.Duration, len(results))
		for i, r := range results {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out.Local = median(func(r trace.Result) time.Duration { return r.Local })
	out.Remote = median(func(r trace.Result) time.Duration { return r.Remote })
	out.Encode = median(func(r trace.Result) time.Duration { return r.Encode })
	out.Load = median(func(r trace.Result) time.Duration { return r.Load })
	return out, nil
}

// expand turns directories into the trace files they hold.
func expand(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		var found []string
		for _, e := range entries {
			if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".json.gz")) {
				found = append(found, filepath.Join(a, n))
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no .json or .json.gz traces", a)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

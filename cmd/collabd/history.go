package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/collabd/collabd/storage"
)

// Version history from the command line, against a running server's HTTP
// API (docs/HTTP.md, "Versions"):
//
//	collabd history DOC --url URL [--token T] [--limit N] [--before SEQ]
//	collabd restore-version DOC SEQ --url URL [--token T]

// splitPositional separates the positional arguments from the flags, so
// that "history DOC --url X" and "history --url X DOC" both work (the flag
// package stops at the first positional argument). Every flag of these
// commands takes a value.
func splitPositional(args []string) (pos, flags []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(pos, args[i+1:]...), flags
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && a != "-h" && a != "--help" && a != "-help" && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return pos, flags
}

// historyFlags are the flags both commands share.
func historyFlags(name, usage string, stderr io.Writer) (*flag.FlagSet, *string, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage+"\n\nflags:")
		fs.PrintDefaults()
	}
	base := fs.String("url", "", "the running server, e.g. http://127.0.0.1:8080 (required)")
	token := fs.String("token", "", "bearer token granting the document (read for history, write for restore-version)")
	return fs, base, token
}

// apiError formats a non-2xx answer of the HTTP API.
func apiError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e struct {
		Code    int    `json:"code"`
		Name    string `json:"name"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Code != 0 {
		return fmt.Errorf("%s: %s (%d): %s", resp.Status, e.Name, e.Code, e.Message)
	}
	return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
}

func runHistory(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: collabd history DOC --url URL [--token T] [--limit N] [--before SEQ]\n\nLists a document's versions, newest first, on a running server."
	pos, flags := splitPositional(args)
	fs, base, token := historyFlags("history", usage, stderr)
	limit := fs.Int("limit", 50, "versions shown (1–1000)")
	before := fs.Uint64("before", 0, "only versions older than this seq (the next page)")
	if code, ok := parseFlags(fs, flags); !ok {
		return code
	}
	if err := envDefaults(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "collabd history: %v\n", err)
		return 2
	}
	if len(pos) != 1 || *base == "" || *limit < 1 || *limit > 1000 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	c, err := newAPIClient(*base, *token)
	if err != nil {
		fmt.Fprintf(stderr, "collabd history: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := docPath(pos[0], fmt.Sprintf("/versions?limit=%d", *limit))
	if *before > 0 {
		path += fmt.Sprintf("&before=%d", *before)
	}
	resp, err := c.get(ctx, path)
	if err != nil {
		fmt.Fprintf(stderr, "collabd history: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	var page struct {
		Versions []struct {
			Seq     uint64    `json:"seq"`
			Version uint64    `json:"version"`
			Time    time.Time `json:"time"`
			Kind    string    `json:"kind"`
			Label   string    `json:"label"`
			Authors []string  `json:"authors"`
			Bytes   int       `json:"bytes"`
		} `json:"versions"`
		Next uint64 `json:"next"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		fmt.Fprintf(stderr, "collabd history: %v\n", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tVERSION\tKIND\tLABEL\tAUTHORS\tBYTES")
	for _, v := range page.Versions {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%d\n", v.Seq, v.Time.UTC().Format(time.RFC3339), v.Version, v.Kind,
			strconv.Quote(v.Label), strings.Join(v.Authors, ","), v.Bytes)
	}
	_ = tw.Flush()
	if page.Next != 0 {
		fmt.Fprintf(stdout, "more: --before %d\n", page.Next)
	}
	return 0
}

func runRestoreVersion(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: collabd restore-version DOC SEQ --url URL [--token T]\n\nRestores version SEQ of a document on a running server, CRDT-safe: the\nserver edits the document back to the version's text; concurrent edits merge."
	pos, flags := splitPositional(args)
	fs, base, token := historyFlags("restore-version", usage, stderr)
	if code, ok := parseFlags(fs, flags); !ok {
		return code
	}
	if err := envDefaults(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "collabd restore-version: %v\n", err)
		return 2
	}
	if len(pos) != 2 || *base == "" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	seq, err := strconv.ParseUint(pos[1], 10, 64)
	if err != nil || seq == 0 {
		fmt.Fprintf(stderr, "collabd restore-version: %q is not a version's SEQ (see collabd history)\n", pos[1])
		return 2
	}
	c, err := newAPIClient(*base, *token)
	if err != nil {
		fmt.Fprintf(stderr, "collabd restore-version: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.postJSON(ctx, docPath(pos[0], "/restore"), map[string]uint64{"version": seq})
	if err != nil {
		fmt.Fprintf(stderr, "collabd restore-version: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "collabd restore-version: %v\n", apiError(resp))
		return 1
	}
	var r struct {
		Restored, Version uint64
		Applied           int
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		fmt.Fprintf(stderr, "collabd restore-version: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored version %d of %s: document version %d (%d edits)\n", r.Restored, pos[0], r.Version, r.Applied)
	return 0
}

// parseRetention reads --version-retention: "forever" (keep every
// version), or "all:D,daily:D" where D is a Go duration or a number of
// days ("7d"): every version younger than all, then one a day until daily,
// then one a week.
func parseRetention(s string) (storage.Retention, error) {
	if s == "forever" {
		return storage.Retention{}, nil
	}
	var r storage.Retention
	for _, part := range splitList(s) {
		k, v, ok := strings.Cut(part, ":")
		if !ok {
			return r, fmt.Errorf("--version-retention: %q is not key:duration", part)
		}
		d, err := parseDays(v)
		if err != nil || d <= 0 {
			return r, fmt.Errorf("--version-retention: %s: %q is not a positive duration (e.g. 7d, 36h)", k, v)
		}
		switch k {
		case "all":
			r.All = d
		case "daily":
			r.Daily = d
		default:
			return r, fmt.Errorf("--version-retention: unknown %q (all, daily; or forever)", k)
		}
	}
	if r.All == 0 {
		return r, errors.New("--version-retention: all:D is required (or forever)")
	}
	if r.Daily < r.All {
		r.Daily = r.All
	}
	return r, nil
}

// parseDays parses a Go duration or a number of days ("90d").
func parseDays(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days > 100000 {
			return 0, errors.New("bad days")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

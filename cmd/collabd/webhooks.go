package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// runWebhooks implements "collabd webhooks list|retry": the dead letters
// (and the pending records) of a running server's webhook outbox, over its
// admin API (a token granting "*").
func runWebhooks(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: collabd webhooks list [--state dead|pending] --url URL [--token T]\n       collabd webhooks retry [SEQ] --url URL [--token T]   (no SEQ: every dead letter)"
	sub := "list"
	switch {
	case len(args) > 0 && (args[0] == "list" || args[0] == "retry"):
		sub, args = args[0], args[1:]
	case len(args) == 0 || !strings.HasPrefix(args[0], "-"):
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("webhooks "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage+"\n\nThe webhook outbox of a running server (a token granting '*').\n\nflags:")
		fs.PrintDefaults()
	}
	base := fs.String("url", "", "the running server, e.g. http://127.0.0.1:8080 (required)")
	token := fs.String("token", "", "bearer token granting every document ('*:rw')")
	state := fs.String("state", "dead", "list: dead or pending")
	limit := fs.Int("limit", 100, "list: the most records shown")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := envDefaults(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "collabd webhooks: %v\n", err)
		return 2
	}
	if *base == "" {
		fmt.Fprintln(stderr, "collabd webhooks: --url is required")
		return 2
	}
	c, err := newAPIClient(*base, *token)
	if err != nil {
		fmt.Fprintf(stderr, "collabd webhooks: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if sub == "list" {
		resp, err := c.get(ctx, fmt.Sprintf("/v1/webhooks?state=%s&limit=%d", *state, *limit))
		if err != nil {
			fmt.Fprintf(stderr, "collabd webhooks: %v\n", err)
			return 1
		}
		defer resp.Body.Close()
		var out struct {
			Pending, Dead int
			Records       []struct {
				Seq      uint64
				URL      string
				Attempts int
				Next     string
				Error    string `json:"last_error"`
				Event    struct{ ID, Type, Doc string }
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			fmt.Fprintf(stderr, "collabd webhooks: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%d pending, %d dead\n", out.Pending, out.Dead)
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tEVENT\tTYPE\tDOC\tURL\tATTEMPTS\tLAST ERROR")
		for _, r := range out.Records {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Seq, r.Event.ID, r.Event.Type, r.Event.Doc, r.URL, r.Attempts, r.Error)
		}
		_ = tw.Flush()
		return 0
	}
	var seq uint64
	if fs.NArg() > 0 {
		if seq, err = strconv.ParseUint(fs.Arg(0), 10, 64); err != nil || seq == 0 {
			fmt.Fprintf(stderr, "collabd webhooks retry: %q is not a record's SEQ (see collabd webhooks list)\n", fs.Arg(0))
			return 2
		}
	}
	resp, err := c.postJSON(ctx, "/v1/webhooks/retry", map[string]uint64{"seq": seq})
	if err != nil {
		fmt.Fprintf(stderr, "collabd webhooks: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "collabd webhooks retry: %s: %s\n", resp.Status, bytes.TrimSpace(b))
		return 1
	}
	var r struct{ Retried int }
	_ = json.Unmarshal(b, &r)
	fmt.Fprintf(stdout, "%d dead letters queued again\n", r.Retried)
	return 0
}

package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// runHealthcheck implements "collabd healthcheck": GET a health URL and exit
// 0 on a 2xx answer, 1 otherwise. The container image has no shell and no
// curl; its HEALTHCHECK runs this.
func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "health `URL` to GET (default: http://127.0.0.1:PORT/healthz, PORT from COLLABD_ADDR, else 8080)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	insecure := fs.Bool("insecure", false, "accept any TLS certificate (a self-signed one on https://127.0.0.1)")
	quiet := fs.Bool("quiet", false, "print nothing on success")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "collabd healthcheck: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	target := *url
	if target == "" {
		target = defaultHealthURL(os.Getenv("COLLABD_ADDR"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	status, err := healthGet(ctx, target, *insecure)
	if err != nil {
		fmt.Fprintf(stderr, "collabd healthcheck: %s: %v\n", target, err)
		return 1
	}
	if status < 200 || status > 299 {
		fmt.Fprintf(stderr, "collabd healthcheck: %s: %d %s\n", target, status, http.StatusText(status))
		return 1
	}
	if !*quiet {
		fmt.Fprintf(stdout, "%s: %d %s\n", target, status, http.StatusText(status))
	}
	return 0
}

// defaultHealthURL is /healthz on the loopback address of the port in addr
// (a serve --addr value such as ":8080" or "0.0.0.0:9000"); 8080 if none.
func defaultHealthURL(addr string) string {
	port := "8080"
	if _, p, err := net.SplitHostPort(strings.TrimSpace(addr)); err == nil && p != "" && p != "0" {
		port = p
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz"
}

func healthGet(ctx context.Context, url string, insecure bool) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure, for a loopback self-signed certificate
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // drain a little; the status is the answer
	_ = resp.Body.Close()                                       // read-only
	return resp.StatusCode, nil
}

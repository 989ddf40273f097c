// Command collabd is the collabd server and its tools.
//
//	collabd serve [flags]                          run the server (see -h)
//	collabd token -sub ID -doc 'pattern:rw' ...    mint a token for development
//	collabd trace [-runs N] FILE.json.gz|DIR ...   replay editing traces through the CRDT
//	collabd bench SCENARIO --url ws://... [flags]  load scenarios (see BENCHMARKS.md)
//	collabd export -doc ID [-format text|json|snapshot] (-url URL | -data DIR)
//	collabd backup -url URL -out FILE               hot backup of a running server's store
//	collabd restore -in FILE -data DIR [-force]     put a verified backup in place
//	collabd verify FILE                             check a backup (pages and every document)
//	collabd version                                 module version, VCS revision, Go version
//	collabd healthcheck [-url URL]                  GET /healthz; exit 0 when healthy (no curl in the image)
//	collabd webhooks list|retry -url URL -token T   the webhook outbox's dead letters
//	collabd history DOC -url URL [-token T]         a document's versions, newest first
//	collabd restore-version DOC SEQ -url URL        restore a version (CRDT-safe)
//
// See README.md and docs/TRACE.md.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: collabd <command> [flags] [args]

commands:
  serve   run the collaboration server (WebSocket endpoint /v1/ws)
  token   mint a signed access token (development and scripts)
  trace   replay editing traces (josephg/editing-traces format) through the CRDT
          and check every replica against the recorded final text
  bench   load scenarios against a running server (loopback): fanout, manydocs,
          idle, coldjoin, churn, presence
  chaos   fault injection on a real collabd serve: kill9 (durability), slow, storm
  export  write one document as text, JSON or a CRDT snapshot (from a server or a data directory)
  backup  stream a hot, consistent copy of a running server's store to a file
  restore put a verified backup in place as a data directory's store
  verify  check a backup file: every page, record and document
  version print the version, the VCS revision and the Go toolchain (also --version)
  healthcheck  GET the server's /healthz: exit 0 when healthy (the container's HEALTHCHECK)
  webhooks list|retry  the webhook outbox of a running server: dead letters, send them again
  history DOC          a document's versions on a running server, newest first
  restore-version DOC SEQ  restore a version on a running server (CRDT-safe: concurrent edits merge)

Run "collabd <command> -h" for a command's flags.
`

// run executes one command and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "trace":
		return runTrace(args[1:], stdout, stderr)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "chaos":
		return runChaos(args[1:], stdout, stderr)
	case "export":
		return runExport(args[1:], stdout, stderr)
	case "backup":
		return runBackup(args[1:], stdout, stderr)
	case "restore":
		return runRestore(args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "webhooks":
		return runWebhooks(args[1:], stdout, stderr)
	case "history":
		return runHistory(args[1:], stdout, stderr)
	case "restore-version":
		return runRestoreVersion(args[1:], stdout, stderr)
	case "healthcheck":
		return runHealthcheck(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprint(stdout, versionInfo())
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "collabd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

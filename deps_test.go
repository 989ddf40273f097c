package collabd_test

// This file is a statement of policy: the import graph of every package of
// the module, written down as data, in the style of Go's own
// src/go/build/deps_test.go. DO NOT CHANGE THIS DATA TO MAKE A BUILD PASS:
// an import that is not in its package's row is a design decision, taken in
// review (DESIGN.md "Dependency direction is one-way", STYLE.md B1).
//
// What is checked, on the packages' non-test files (`go list ./...`):
//
//   - Every package of the module has a row in table, and every row names a
//     package that exists: a new package is added on purpose.
//   - A package imports exactly the project packages of its row's Allow
//     (each with its reason): a new edge fails, and so does an edge that is
//     no longer used (delete it, so the table stays the true graph).
//   - No package depends, even through other packages, on an import of its
//     row's Forbid or of forbidAll; none imports directly one of its row's
//     Direct or of directAll.
//   - policy: DESIGN.md's layering rules, checked on the transitive
//     project closure of the real graph, so that editing the table alone
//     cannot break them.
//
// Test files are not constrained: a test may import whatever it needs
// (e2e-style tests of clients/go import server, for instance).
//
// # Adding a package
//
// Add one line to table: its path relative to the module root, the
// project packages it imports with one short reason each, and the
// forbidden sets that apply (pure for a transport-free core, transport for
// anything that must not touch the network). For example:
//
//	"server/owner": {Allow: why{"crdt": "the native Engine", "presence": "the presence.Set it owns", "protocol": "frames it fans out"}, Forbid: transport},
//
// Run `go test -run Deps .` from the module root.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

// why maps an allowed project import (a path relative to the module root)
// to the reason it is allowed.
type why map[string]string

// row is one package's policy.
type row struct {
	Allow  why      // the project packages it imports, each with its reason
	Forbid []string // imports it must not depend on, directly or through other packages
	Direct []string // imports its own files must not use (its dependencies may)
	// Tolerate lists imports of forbidAll that the package may depend on
	// through a third-party dependency (never in its own files), each with
	// its reason; an entry no longer needed fails, like an unused Allow.
	Tolerate why
}

// Forbidden sets.
var (
	// transport: no network in the package or anything it imports.
	transport = []string{"net", "net/http", "github.com/gorilla/websocket"}
	// pure: a transport-free core that also never runs a process or opens
	// the database.
	pure = append(slices.Clone(transport), "os/exec", "go.etcd.io/bbolt")
	// noState: no locks, no logging, no files in the package's own code
	// (STYLE.md B2.8: crdt and presence contain no mutex; B1: no I/O, no
	// logging). pureClock adds the clock: crdt takes time as arguments.
	noState   = []string{"sync", "sync/atomic", "log", "log/slog", "os"}
	pureClock = append(slices.Clone(noState), "time")
)

// forbidAll applies to every package, through any path: net/http/pprof's
// init registers handlers on http.DefaultServeMux (global state, STYLE.md
// B3.2; cmd/collabd serves profiles from its own mux instead).
var forbidAll = []string{"net/http/pprof"}

// directAll applies to every package's own files: expvar's init registers
// on http.DefaultServeMux (a dependency, the Prometheus client, still
// imports it: collabd never serves the default mux); math/rand (v1) has a
// process-wide source (use math/rand/v2 with a seeded source, or crypto/rand).
var directAll = []string{"expvar", "math/rand"}

// natsPprof: nats-server (the embedded NATS node of cluster mode, issue 15)
// imports net/http/pprof for its own profiling port, which collabd never
// enables (natsembed leaves Options.ProfPort 0); the handlers its init
// registers on http.DefaultServeMux are never served, since collabd serves
// its own mux. Tolerated for the packages that embed the server only.
var natsPprof = why{"net/http/pprof": "nats-server's import, for its profiling port that natsembed never enables"}

// table: one row per package of the module, by path relative to the module
// root ("." is the module root).
var table = map[string]row{
	// The core (DESIGN.md: crdt and presence import nothing of the project but
	// small internal codecs; storage imports nothing of the project).
	"internal/mp": {Forbid: pure, Direct: pureClock},
	"crdt":        {Allow: why{"internal/mp": "the hand-written msgpack codec of ops, updates and snapshots"}, Forbid: pure, Direct: pureClock},
	"crdt/yjs":    {Forbid: pure, Direct: pureClock}, // the Yjs engine: pure, its own lib0 codec
	"presence":    {Forbid: pure, Direct: noState},   // time: peers carry the caller's now
	"storage":     {Forbid: transport},               // opaque bytes in bbolt; locks, files and logs are its job
	// The replicated store of cluster mode (issue 15): opaque bytes in a
	// JetStream stream and object store, through nats.go (no server code).
	"storage/jetstream": {Forbid: []string{"github.com/nats-io/nats-server/v2/server", "go.etcd.io/bbolt"}},

	// The wire contract (imports crdt and presence).
	"protocol": {Allow: why{
		"crdt":        "frames carry state vectors, agent ids and crdt updates",
		"presence":    "presence frames carry presence.State",
		"internal/mp": "the hand-written msgpack codec of frames",
	}, Forbid: pure, Direct: noState},

	// The y-websocket wire (y-protocols messages): pure framing, payloads
	// are opaque bytes crdt/yjs decodes.
	"protocol/yjs": {Forbid: pure, Direct: noState},

	// The server (imports all of the above; never a client or a tool).
	"server": {Allow: why{
		"crdt":              "the document replica each owner holds",
		"crdt/yjs":          "the Yjs document engine (engine_yjs.go) behind owner.Engine",
		"presence":          "the presence.Set each owner holds",
		"protocol":          "the frames it reads and writes",
		"protocol/yjs":      "the y-websocket and Hocuspocus frames of the Yjs doors",
		"storage":           "documents are loaded from and committed to the bbolt store",
		"server/owner":      "the document owner, behind its Engine, Store and Subscriber interfaces",
		"server/webhook":    "signed webhook deliveries from a durable outbox",
		"server/cluster":    "cluster mode: leases, placement, forwarding to the owner node (issue 15)",
		"storage/jetstream": "cluster mode's replicated document store (its writers, handed to server/cluster)",
	}},

	// Webhook deliveries: HTTP out, a bbolt outbox, nothing of the project.
	"server/webhook": {},

	// The document owner: a state machine that sees the replica, storage
	// and subscribers only through interfaces it declares (issue 12).
	"server/owner": {Allow: why{
		"presence":     "the presence.Set it owns",
		"protocol":     "error and ack codes, and the presence message it builds",
		"protocol/yjs": "the awareness of a Yjs document it keeps (a pure codec and state)",
	}, Forbid: transport},

	// Cluster mode (issue 15): membership, placement and leases on NATS
	// JetStream (and, later, session forwarding). Not the embedded server:
	// the binary starts that.
	"server/cluster": {Allow: why{
		"server/owner":      "the owner.Store it adapts the replicated store to",
		"storage/jetstream": "the replicated document store, opened at the lease's epoch",
		"protocol":          "codes, ack statuses and the presence frames a forwarded subscriber's messages carry",
		"presence":          "the user a forwarded Join carries",
	}, Forbid: []string{"github.com/nats-io/nats-server/v2/server"}},

	// Clients (crdt, presence, protocol; never server or storage).
	"clients/go": {Allow: why{
		"crdt":     "the replica of each joined document",
		"presence": "the presence state it sends and receives",
		"protocol": "the frames it reads and writes",
	}},

	// Tools: they talk to a server over the wire only.
	"internal/rawclient": {Allow: why{
		"crdt":     "the optional replica and the ops of fanned-out updates",
		"protocol": "the frames it reads and writes",
	}},
	"internal/loadgen": {Allow: why{
		"clients/go":         "full clients: what an app runs",
		"crdt/yjs":           "the Yjs replicas of the Yjs-wire scenarios",
		"protocol/yjs":       "y-websocket and Hocuspocus frames of the Yjs-wire scenarios",
		"crdt":               "markers are read from ops and replicas",
		"presence":           "the presence storm's cursor states",
		"protocol":           "presence and ack frames of the light clients",
		"internal/rawclient": "light clients: hundreds of cheap subscribers",
	}},
	"internal/chaos": {Allow: why{
		"clients/go":         "writers and storm clients that reconnect",
		"crdt":               "markers are read from ops and replicas",
		"internal/loadgen":   "results, markers and bounded dialing shared with bench",
		"internal/rawclient": "subscribers, and the narrow-socket slow consumer",
		"internal/natsembed": "chaos cluster --nats external runs the three NATS servers itself",
	}, Tolerate: natsPprof},
	"internal/trace": {Allow: why{"crdt": "traces are replayed into a crdt.Doc", "crdt/yjs": "collabd trace -engine yjs replays them into the Yjs engine"}, Forbid: transport},
	"internal/demo":  {}, // the embedded demo page: net/http and embed only

	// Cluster mode (issue 15): the embedded NATS server and its test helper.
	"internal/natsembed":          {Tolerate: natsPprof}, // nats-server and nats.go only
	"internal/natsembed/natstest": {Allow: why{"internal/natsembed": "the nodes it starts for tests"}, Tolerate: natsPprof},

	// The binary wires it together.
	"cmd/collabd": {Allow: why{
		"server":             "collabd serve",
		"server/webhook":     "serve opens the webhook outbox; webhooks verifies signatures in its tests",
		"storage":            "opens the store; offline backup, export, restore and verify",
		"crdt":               "offline export rebuilds a document from snapshot and log",
		"crdt/yjs":           "offline export and verify rebuild Yjs documents",
		"server/owner":       "the kind prefix of stored records (owner.RecordKind)",
		"internal/demo":      "the demo page served at /",
		"internal/loadgen":   "collabd bench",
		"internal/chaos":     "collabd chaos",
		"internal/trace":     "collabd trace",
		"internal/natsembed": "serve --nats-embedded runs a NATS node in the process",
		"server/cluster":     "serve's cluster mode: leases and membership",
		"storage/jetstream":  "serve's cluster mode: the replicated document store",
	}, Tolerate: natsPprof},

	// Test-only packages (no non-test files: nothing to allow).
	".":   {}, // this file
	"e2e": {},
}

// policy: DESIGN.md's layering, on the transitive closure of the real
// graph (project packages only): a package matching from never depends on
// one matching never, unless it also matches except. Patterns are paths
// relative to the module root; "dir/..." is dir and everything under it,
// "..." is anything.
var policy = []struct {
	from, never, except []string
	because             string
}{
	{[]string{"crdt/..."}, []string{"..."}, []string{"crdt/...", "internal/mp"}, "crdt imports nothing of the project except small internal codecs"},
	{[]string{"presence/..."}, []string{"..."}, []string{"presence/...", "internal/mp"}, "presence imports nothing of the project except small internal codecs"},
	{[]string{"storage/..."}, []string{"..."}, []string{"storage/..."}, "storage imports nothing of the project: it stores opaque bytes"},
	{[]string{"protocol/..."}, []string{"..."}, []string{"protocol/...", "crdt/...", "presence/...", "internal/mp"}, "protocol imports crdt and presence only"},
	{[]string{"clients/..."}, []string{"server/...", "storage/...", "cmd/...", "internal/..."}, []string{"internal/mp"}, "clients/go imports crdt, presence and protocol, never server or storage"},
	{[]string{"server/..."}, []string{"clients/...", "cmd/...", "internal/chaos/...", "internal/loadgen/...", "internal/rawclient/...", "internal/trace/..."}, nil, "the server never depends on a client or a tool"},
	{[]string{"internal/chaos/...", "internal/loadgen/...", "internal/rawclient/..."}, []string{"server/...", "storage/..."}, nil, "the load and fault tools reach the server over the wire only"},
	{[]string{"server/owner/..."}, []string{"storage/...", "server", "server/cluster/..."}, nil, "the owner sees storage through its Store interface and sessions through Subscriber (issue 12), and does not know whether it runs in a cluster; its row must also Forbid transport"},
}

// forbids reports the reason policy forbids from → to ("" if it does not).
func forbids(from, to string) string {
	for _, rule := range policy {
		if matchAny(from, rule.from) && matchAny(to, rule.never) && !matchAny(to, rule.except) {
			return rule.because
		}
	}
	return ""
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
}

// graph lists the module's packages (go list ./...) by path relative to
// the module root, with their imports and dependencies as full paths.
func graph(t *testing.T) (module string, pkgs map[string]*pkg) {
	t.Helper()
	gotool, err := exec.LookPath("go")
	if err != nil {
		gotool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(gotool, "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	module = strings.TrimSpace(string(out))
	cmd := exec.Command(gotool, "list", "-e", "-json=ImportPath,Imports,Deps,Error", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out, err = cmd.Output(); err != nil {
		t.Fatalf("go list ./...: %v\n%s", err, stderr.String())
	}
	pkgs = map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs[rel(module, p.ImportPath)] = p
	}
	if len(pkgs) == 0 {
		t.Fatal("go list ./... found no packages")
	}
	return module, pkgs
}

// rel is path relative to the module root: "." for the root, "" for a
// path outside the module.
func rel(module, path string) string {
	if path == module {
		return "."
	}
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return ""
}

func TestDepsTable(t *testing.T) {
	module, pkgs := graph(t)
	for _, name := range sortedKeys(pkgs) {
		if _, ok := table[name]; !ok {
			t.Errorf("package %s has no row in table (deps_test.go): add one, with a reason for each project import", name)
		}
	}
	for _, name := range sortedKeys(table) {
		r := table[name]
		p, ok := pkgs[name]
		if !ok {
			t.Errorf("table has a row for %s, which is not a package of the module: delete the row", name)
			continue
		}
		used := map[string]bool{}
		for _, imp := range p.Imports {
			dep := rel(module, imp)
			if dep == "" {
				continue // std or third party: see Forbid and Direct
			}
			used[dep] = true
			if _, ok := r.Allow[dep]; !ok {
				t.Errorf("%s imports %s, which its row does not allow (DESIGN.md: dependencies are one-way; add the edge with its reason only if the design allows it)", name, dep)
			}
		}
		for _, dep := range sortedKeys(r.Allow) {
			if strings.TrimSpace(r.Allow[dep]) == "" {
				t.Errorf("%s → %s is allowed without a reason", name, dep)
			}
			if !used[dep] {
				t.Errorf("%s no longer imports %s: delete the edge from its row", name, dep)
			}
		}
		deps := map[string]bool{}
		for _, d := range p.Deps {
			deps[d] = true
		}
		for _, f := range sortedKeys(r.Tolerate) {
			switch {
			case !slices.Contains(forbidAll, f):
				t.Errorf("%s tolerates %s, which is not in forbidAll: delete it", name, f)
			case strings.TrimSpace(r.Tolerate[f]) == "":
				t.Errorf("%s tolerates %s without a reason", name, f)
			case !deps[f]:
				t.Errorf("%s no longer depends on %s: delete it from its row's Tolerate", name, f)
			case slices.Contains(p.Imports, f):
				t.Errorf("%s imports %s in its own files: Tolerate covers a dependency's import only", name, f)
			}
		}
		for _, f := range slices.Concat(forbidAll, r.Forbid) {
			if _, ok := r.Tolerate[f]; ok && !slices.Contains(r.Forbid, f) {
				continue
			}
			if deps[f] {
				t.Errorf("%s depends on %s (forbidden for it, directly or through %s)", name, f, importersOf(module, pkgs, name, f))
			}
		}
		for _, f := range slices.Concat(directAll, r.Direct) {
			if slices.Contains(p.Imports, f) {
				t.Errorf("%s imports %s, which its own code must not use", name, f)
			}
		}
	}
}

// importersOf names the packages on name's dependency path that import f
// directly (the module's own packages, or "a dependency").
func importersOf(module string, pkgs map[string]*pkg, name, f string) string {
	var who []string
	for _, d := range append([]string{pkgs[name].ImportPath}, pkgs[name].Deps...) {
		if p, ok := pkgs[rel(module, d)]; ok && rel(module, d) != "" && slices.Contains(p.Imports, f) {
			who = append(who, rel(module, d))
		}
	}
	if len(who) == 0 {
		return "a dependency outside the module"
	}
	return strings.Join(who, ", ")
}

func TestDepsPolicy(t *testing.T) {
	module, pkgs := graph(t)
	for _, name := range sortedKeys(pkgs) {
		for _, d := range pkgs[name].Deps {
			if dep := rel(module, d); dep != "" {
				if why := forbids(name, dep); why != "" {
					t.Errorf("%s depends on %s: %s", name, dep, why)
				}
			}
		}
	}
}

// TestDepsPolicyCatches: the policy and the matcher reject the edges
// DESIGN.md forbids (a guard against a policy that matches nothing).
func TestDepsPolicyCatches(t *testing.T) {
	forbidden := [][2]string{
		{"crdt", "protocol"}, {"crdt/yjs", "server"}, {"presence", "crdt"}, {"storage", "crdt"}, {"storage", "internal/mp"},
		{"protocol", "server"}, {"protocol/yjs", "storage"}, {"clients/go", "server"}, {"clients/go", "storage/x"},
		{"server/owner", "clients/go"}, {"server/owner", "storage"}, {"server/owner", "server"}, {"server/owner", "server/cluster"}, {"server/owner", "storage/jetstream"}, {"storage/jetstream", "server/owner"}, {"internal/chaos", "server"}, {"internal/rawclient", "storage"},
	}
	for _, e := range forbidden {
		if forbids(e[0], e[1]) == "" {
			t.Errorf("policy allows %s → %s", e[0], e[1])
		}
	}
	allowed := [][2]string{
		{"crdt", "internal/mp"}, {"crdt", "crdt/internal/runtree"}, {"crdt/yjs", "crdt"}, {"protocol", "crdt"}, {"protocol/yjs", "crdt/yjs"},
		{"server", "storage"}, {"server/owner", "crdt"}, {"clients/go", "protocol"}, {"internal/chaos", "clients/go"},
	}
	for _, e := range allowed {
		if why := forbids(e[0], e[1]); why != "" {
			t.Errorf("policy forbids %s → %s (%s)", e[0], e[1], why)
		}
	}
}

// matchAny reports whether name matches one of the patterns: a path, or
// "dir/..." for dir and everything under it, or "..." for anything.
func matchAny(name string, patterns []string) bool {
	for _, p := range patterns {
		if p == "..." || p == name {
			return true
		}
		if dir, ok := strings.CutSuffix(p, "/..."); ok && (name == dir || strings.HasPrefix(name, dir+"/")) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

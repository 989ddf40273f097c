package main

import (
	"bufio"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// dockerfile is the parsed ../../Dockerfile: instructions by stage, with
// line continuations joined.
type dockerfile struct {
	args   map[string]string // ARG defaults (global and of the build stage)
	stages [][]string        // instructions of each stage ("RUN …", "USER …")
	names  []string          // stage names ("" when unnamed)
}

func parseDockerfile(t *testing.T, path string) *dockerfile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	df := &dockerfile{args: map[string]string{}}
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		ins := cur.String()
		cur.Reset()
		op, rest, _ := strings.Cut(ins, " ")
		switch strings.ToUpper(op) {
		case "FROM":
			name := ""
			if f := strings.Fields(rest); len(f) == 3 && strings.EqualFold(f[1], "AS") {
				name = f[2]
			}
			df.stages = append(df.stages, nil)
			df.names = append(df.names, name)
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			df.args[k] = v
		}
		if n := len(df.stages); n > 0 {
			df.stages[n-1] = append(df.stages[n-1], strings.ToUpper(op)+" "+rest)
		}
	}
	return df
}

// shellWords splits a RUN command line as sh would for the simple forms the
// Dockerfile uses: spaces separate words, double quotes group, ${VAR} and
// $VAR expand from vars.
func shellWords(s string, vars map[string]string) []string {
	expand := func(w string) string {
		return os.Expand(w, func(k string) string { return vars[k] })
	}
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			inWord = true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, expand(cur.String()))
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, expand(cur.String()))
	}
	return words
}

// TestDockerfileBuild runs the `go build` of the Dockerfile's build stage
// (its environment, flags and ARG substitutions, output redirected to a
// temporary directory) and checks the result: a static binary that reports
// the build-arg version and revision and whose healthcheck (the image's
// HEALTHCHECK) tells a serving server from a stopped one. It also checks
// the image's shape (non-root, /data volume, healthcheck, port) and the
// compose example. Docker itself is not needed.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds collabd with the Dockerfile's flags (a minute on a cold cache)")
	}
	df := parseDockerfile(t, "../../Dockerfile")
	if len(df.stages) < 2 || df.names[0] != "build" {
		t.Fatalf("want a multi-stage Dockerfile whose first stage is \"build\"; stages %q", df.names)
	}

	// The build stage's go build line.
	var buildLine string
	for _, ins := range df.stages[0] {
		if strings.HasPrefix(ins, "RUN ") && strings.Contains(ins, "go build") {
			if buildLine != "" {
				t.Fatal("two go build lines in the build stage")
			}
			buildLine = strings.TrimPrefix(ins, "RUN ")
		}
	}
	if buildLine == "" || strings.ContainsAny(buildLine, "&|;`'") {
		t.Fatalf("build line %q: want one plain `ENV=… go build …` command", buildLine)
	}
	vars := map[string]string{}
	for k, v := range df.args {
		vars[k] = v
	}
	vars["VERSION"], vars["REVISION"] = "v9.8.7-docker-test", "0123abcd"
	words := shellWords(buildLine, vars)
	var env []string
	for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
		env = append(env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("build line %q does not run go build", buildLine)
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("the build does not set CGO_ENABLED=0 (a static binary for distroless/static): env %q", env)
	}
	out := filepath.Join(t.TempDir(), "collabd")
	args := slices.Clone(words[1:])
	o := slices.Index(args, "-o")
	if o < 0 || o+1 >= len(args) || args[o+1] != "/out/collabd" {
		t.Fatalf("build args %q: want -o /out/collabd (the path the run stage copies)", args)
	}
	args[o+1] = out
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}

	// Static: no program interpreter, no shared libraries.
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter: not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %q", libs)
	}
	_ = f.Close() // read-only

	v, err := exec.Command(out, "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "collabd v9.8.7-docker-test\nrevision 0123abcd\n") {
		t.Errorf("version of the image build = %q, %v", v, err)
	}

	checkImageShape(t, df)
	checkHealthcheck(t, out)
	checkCompose(t)
	ignore, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "**/node_modules", "data"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
}

// checkImageShape checks the run stage: non-root, the /data volume as the
// data directory, the port, and a healthcheck through the binary.
func checkImageShape(t *testing.T, df *dockerfile) {
	t.Helper()
	run := strings.Join(df.stages[len(df.stages)-1], "\n")
	for _, re := range []string{
		`(?m)^USER (\d+|[a-z]+)(:\d+)?$`,
		`(?m)^VOLUME \["/data"\]$`,
		`COLLABD_DATA=/data`,
		`COLLABD_ADDR=0\.0\.0\.0:8080`,
		`(?m)^EXPOSE 8080$`,
		`(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/collabd", "healthcheck"`,
		`(?m)^ENTRYPOINT \["/usr/local/bin/collabd"\]$`,
		`(?m)^COPY --from=build /out/collabd /usr/local/bin/collabd$`,
	} {
		if !regexp.MustCompile(re).MatchString(run) {
			t.Errorf("the run stage does not match %s:\n%s", re, run)
		}
	}
	if m := regexp.MustCompile(`(?m)^USER (\S+)$`).FindStringSubmatch(run); m == nil || m[1] == "root" || strings.HasPrefix(m[1], "0") {
		t.Errorf("the image runs as root (USER %v)", m)
	}
}

// checkHealthcheck: `collabd healthcheck` with the port from COLLABD_ADDR
// (as in the image) passes against a serving server and fails once it stopped.
func checkHealthcheck(t *testing.T, bin string) {
	t.Helper()
	srv := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "warn")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() { // ends when the server's stdout closes
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	var a string
	select {
	case a = <-addr:
	case <-time.After(20 * time.Second):
	}
	if a == "" {
		_ = srv.Process.Kill() // the test failed already
		t.Fatal("the server did not print its address")
	}
	check := func() (int, string) {
		hc := exec.Command(bin, "healthcheck")
		hc.Env = append(os.Environ(), "COLLABD_ADDR="+a)
		b, err := hc.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(b)
		}
		return 0, string(b)
	}
	if code, msg := check(); code != 0 || !strings.Contains(msg, "/healthz: 200 OK") {
		t.Errorf("healthcheck of a serving server: exit %d %q", code, msg)
	}
	if err := srv.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("serve after SIGINT: %v", err)
	}
	if code, msg := check(); code != 1 || !strings.Contains(msg, "connection refused") {
		t.Errorf("healthcheck of a stopped server: exit %d %q, want 1", code, msg)
	}
}

// checkCompose: compose.yaml runs the image with the secret required, the
// data volume on /data and the port published.
func checkCompose(t *testing.T) {
	t.Helper()
	c := readCompose(t, "../../compose.yaml")
	s, ok := c.Services["collabd"]
	if !ok {
		t.Fatalf("compose.yaml has no collabd service: %v", c.Services)
	}
	if s.Build != "." || !slices.Contains(s.Ports, "8080:8080") || !strings.Contains(s.Environment["COLLABD_AUTH_SECRET"], ":?") {
		t.Errorf("collabd service: build %q, ports %q, secret %q (want required)", s.Build, s.Ports, s.Environment["COLLABD_AUTH_SECRET"])
	}
	if len(s.Volumes) != 1 || !strings.HasSuffix(s.Volumes[0], ":/data") {
		t.Errorf("volumes %q: want one on /data", s.Volumes)
	}
	if name, _, _ := strings.Cut(s.Volumes[0], ":"); c.Volumes == nil || !hasKey(c.Volumes, name) {
		t.Errorf("volume %q is not declared", name)
	}
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

// composeFile is what the tests read of a compose file.
type composeFile struct {
	Services map[string]struct {
		Build       string            `yaml:"build"`
		Hostname    string            `yaml:"hostname"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func readCompose(t *testing.T, path string) composeFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefaultHealthURL(t *testing.T) {
	for addr, want := range map[string]string{
		"":             "http://127.0.0.1:8080/healthz",
		"0.0.0.0:8080": "http://127.0.0.1:8080/healthz",
		":9000":        "http://127.0.0.1:9000/healthz",
		"[::]:7000":    "http://127.0.0.1:7000/healthz",
		"127.0.0.1:0":  "http://127.0.0.1:8080/healthz",
		"junk":         "http://127.0.0.1:8080/healthz",
	} {
		if got := defaultHealthURL(addr); got != want {
			t.Errorf("defaultHealthURL(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestComposeCluster: compose.cluster.yaml runs three nodes of one embedded
// NATS cluster: every COLLABD_* setting it uses is one serve reads (a typo
// would be ignored with a warning in a container log nobody reads), secrets
// are required, node ids and volumes differ, and the routes name the nodes.
func TestComposeCluster(t *testing.T) {
	c := readCompose(t, "../../compose.cluster.yaml")
	var usage strings.Builder
	if code := runServe([]string{"-h"}, io.Discard, &usage); code != 0 {
		t.Fatalf("serve -h: exit %d", code)
	}
	if len(c.Services) != 3 {
		t.Fatalf("%d services, want 3", len(c.Services))
	}
	ids, vols, ports := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for name, s := range c.Services {
		for k, v := range s.Environment {
			if !strings.Contains(usage.String(), k+" ") {
				t.Errorf("%s: %s is not a collabd serve setting", name, k)
			}
			if strings.HasSuffix(k, "SECRET") && !strings.Contains(v, ":?") {
				t.Errorf("%s: %s = %q, want required (${VAR:?…})", name, k, v)
			}
		}
		id := s.Environment["COLLABD_NODE_ID"]
		if id != name || s.Hostname != name || ids[id] {
			t.Errorf("service %s: node id %q, hostname %q (want the service name, unique)", name, id, s.Hostname)
		}
		ids[id] = true
		if s.Environment["COLLABD_NATS_EMBEDDED"] != "true" || !strings.Contains(s.Environment["COLLABD_NATS_ROUTES"], "nats://"+name+":6222") {
			t.Errorf("%s: embedded %q, routes %q", name, s.Environment["COLLABD_NATS_EMBEDDED"], s.Environment["COLLABD_NATS_ROUTES"])
		}
		if a := s.Environment["COLLABD_NATS_CLUSTER_ADVERTISE"]; a != name+":6222" {
			t.Errorf("%s: announces route address %q, want %s:6222", name, a, name)
		}
		if len(s.Volumes) != 1 || len(s.Ports) != 1 {
			t.Fatalf("%s: volumes %q ports %q, want one each", name, s.Volumes, s.Ports)
		}
		vol, _, _ := strings.Cut(s.Volumes[0], ":")
		if vols[vol] || !hasKey(c.Volumes, vol) || ports[s.Ports[0]] {
			t.Errorf("%s: volume %q (shared or undeclared) or port %q shared", name, vol, s.Ports[0])
		}
		vols[vol], ports[s.Ports[0]] = true, true
	}
}

package main

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVersionCommand(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version"} {
		code, out, errOut := runCmd(t, arg)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "collabd ") || !strings.HasPrefix(lines[1], "revision ") ||
			lines[2] != runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
			t.Errorf("%s printed %q; want collabd VERSION / revision … / go version", arg, out)
		}
	}
}

func TestFormatVersion(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/collabd/collabd", Version: "v1.4.0"}}
		for i := 0; i < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	for _, tc := range []struct {
		name     string
		bi       *debug.BuildInfo
		override string
		rev      string
		want     []string // first two lines
	}{
		{"release", vcs("vcs.revision", "abc123", "vcs.time", "2026-01-02T03:04:05Z", "vcs.modified", "false"), "", "",
			[]string{"collabd v1.4.0", "revision abc123 (2026-01-02T03:04:05Z)"}},
		{"dirty tree", vcs("vcs.revision", "abc123", "vcs.time", "2026-01-02T03:04:05Z", "vcs.modified", "true"), "", "",
			[]string{"collabd v1.4.0", "revision abc123 (2026-01-02T03:04:05Z), modified"}},
		{"no vcs", vcs(), "", "", []string{"collabd v1.4.0", "revision unknown (built without VCS information)"}},
		{"link-time version", vcs(), "v2.0.0-rc1", "", []string{"collabd v2.0.0-rc1", "revision unknown (built without VCS information)"}},
		{"link-time revision", vcs(), "v2.0.0", "feedbeef", []string{"collabd v2.0.0", "revision feedbeef"}},
		{"vcs wins over link-time revision", vcs("vcs.revision", "abc123"), "", "feedbeef", []string{"collabd v1.4.0", "revision abc123"}},
		{"no build info", nil, "", "", []string{"collabd (devel)", "revision unknown (built without VCS information)"}},
	} {
		got := strings.Split(formatVersion(tc.bi, tc.override, tc.rev), "\n")
		if len(got) < 2 || got[0] != tc.want[0] || got[1] != tc.want[1] {
			t.Errorf("%s: formatVersion = %q, want first lines %q", tc.name, got, tc.want)
		}
	}
}

// Every command's -h exits 0 with its usage on stderr; a bad flag exits 2.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"serve", "token", "trace", "export", "backup", "restore", "verify", "healthcheck"} {
		for _, h := range []string{"-h", "--help"} {
			code, _, errOut := runCmd(t, cmd, h)
			if code != 0 || !strings.Contains(strings.ToLower(errOut), "usage") {
				t.Errorf("%s %s: exit %d, stderr %q; want 0 and the usage", cmd, h, code, errOut)
			}
		}
		if code, _, _ := runCmd(t, cmd, "--no-such-flag"); code != 2 {
			t.Errorf("%s --no-such-flag: exit %d, want 2", cmd, code)
		}
	}
}

func TestServeHelpListsEnvironment(t *testing.T) {
	code, _, errOut := runCmd(t, "serve", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	names := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(errOut, -1)
	if len(names) < 10 {
		t.Fatalf("serve --help lists %d flags:\n%s", len(names), errOut)
	}
	for _, m := range names {
		name := m[1]
		if !regexp.MustCompile(`(?m)^\s+` + envName(name) + `\s+--` + name + `$`).MatchString(errOut) {
			t.Errorf("serve --help does not list %s for --%s:\n%s", envName(name), name, errOut)
		}
	}
}

func TestVerifyHelpShowsFile(t *testing.T) {
	code, _, errOut := runCmd(t, "verify", "-h")
	if code != 0 || !strings.HasPrefix(errOut, "usage: collabd verify FILE\n") {
		t.Errorf("verify -h: exit %d, %q", code, errOut)
	}
}

// envFlags lists exactly the flags of each command that reads COLLABD_*
// variables (so the unknown-variable warning knows them all).
func TestEnvFlagsComplete(t *testing.T) {
	flagRE := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for cmd, names := range envFlags {
		_, _, errOut := runCmd(t, cmd, "-h")
		var got []string
		for _, m := range flagRE.FindAllStringSubmatch(errOut, -1) {
			got = append(got, m[1])
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(names))
		if !slices.Equal(got, want) {
			t.Errorf("%s: flags %q, envFlags lists %q", cmd, got, want)
		}
	}
}

func TestWarnUnknownEnv(t *testing.T) {
	var b bytes.Buffer
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.String("addr", "", "")
	warnUnknownEnv(&b, "serve", fs, []string{"PATH=/bin", "COLLABD_ADDR=:1", "COLLABD_ADRR=:2", "COLLABD_TOKEN=x", "COLLABD_TRACES=/t", "COLLABD_SOMETHING_ELSE=1"})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"collabd serve: warning: COLLABD_ADRR is not a collabd setting; ignored (did you mean COLLABD_ADDR?)",
		"collabd serve: warning: COLLABD_SOMETHING_ELSE is not a collabd setting; ignored",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("warnings\n%q\nwant\n%q", lines, want)
	}
}

// The warning reaches stderr from a real serve run (which then refuses
// the public address, so nothing is served).
func TestServeWarnsUnknownEnv(t *testing.T) {
	t.Setenv("COLLABD_MAX_FRAMES", "1")
	code, _, errOut := runCmd(t, "serve", "-addr", "0.0.0.0:0", "-data", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "COLLABD_MAX_FRAMES is not a collabd setting; ignored (did you mean COLLABD_MAX_FRAME?)") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestTokenGrantErrorNamesForms(t *testing.T) {
	for _, g := range []string{"x:write", "x", ":rw", "notes/*:RW"} {
		code, out, errOut := runCmd(t, "token", "-auth-secret", "s3cret-s3cret-s3cret-s3cret-32by", "-sub", "a", "-doc", g)
		if code != 2 || out != "" || !strings.Contains(errOut, "want PATTERN:r (read) or PATTERN:rw (read and write)") {
			t.Errorf("--doc %q: exit %d, stdout %q, stderr %q", g, code, out, errOut)
		}
	}
	if code, _, errOut := runCmd(t, "token", "-auth-secret", "s3cret-s3cret-s3cret-s3cret-32by", "-sub", "a", "-doc", "org:42/notes:rw"); code != 0 {
		t.Errorf("a pattern with ':' inside: exit %d, %q", code, errOut)
	}
}

// restore's hints name only flags restore has.
func TestRestoreHintsOwnFlags(t *testing.T) {
	_, _, help := runCmd(t, "restore", "-h")
	has := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help, -1) {
		has[m[1]] = true
	}
	held := startLive(t) // a running server holds data/collabd.db
	backupFile := t.TempDir() + "/b.db"
	if code, _, errOut := runCmd(t, "backup", "-url", held.url, "-out", backupFile); code != 0 {
		t.Fatalf("backup: %d %s", code, errOut)
	}
	for _, args := range [][]string{
		{"restore", "-in", backupFile, "-data", held.data},           // exists: --force
		{"restore", "-in", backupFile, "-data", held.data, "-force"}, // held by the server
		{"restore", "-in", backupFile + ".missing", "-data", t.TempDir()},
	} {
		code, _, errOut := runCmd(t, args...)
		if code != 1 {
			t.Errorf("%q: exit %d, want 1 (%s)", args, code, errOut)
		}
		for _, m := range regexp.MustCompile(`--([a-z][a-z-]*)`).FindAllStringSubmatch(errOut, -1) {
			if !has[m[1]] {
				t.Errorf("%q: the error hints at --%s, which restore does not have: %s", args, m[1], errOut)
			}
		}
		if args[len(args)-1] == "-force" && !strings.Contains(errOut, "stop the server first") {
			t.Errorf("restore over a held store: %q should say to stop the server", errOut)
		}
	}
}

// copyProgress: lines every interval and a final one, with the total, rate
// and time left; on a terminal one line rewritten in place.
func TestCopyProgress(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	var out bytes.Buffer
	p := newCopyProgress(&out, "backup", 40<<20)
	if p.tty || p.every != progressLogEvery {
		t.Fatalf("a buffer is not a terminal: tty=%v every=%v", p.tty, p.every)
	}
	p.now = now
	w := p.writer(&bytes.Buffer{})
	chunk := make([]byte, 1<<20)
	for i := range 40 {
		if i > 0 {
			clock = clock.Add(500 * time.Millisecond) // 2 MiB/s
		}
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	p.done()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// 19.5 s of copying: a line at 5, 10 and 15 s, and the final one.
	want := []string{
		"backup: 11.0 MiB of 40.0 MiB (27%), 2.2 MiB/s, 13s left",
		"backup: 21.0 MiB of 40.0 MiB (52%), 2.1 MiB/s, 9s left",
		"backup: 31.0 MiB of 40.0 MiB (77%), 2.1 MiB/s, 4s left",
		"backup: 40.0 MiB of 40.0 MiB (100%), 2.1 MiB/s, done in 19.5s",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("lines\n%q\nwant\n%q", lines, want)
	}

	out.Reset()
	q := newCopyProgress(&out, "restore", 0)
	q.now, q.tty, q.every = now, true, progressTTYEvery
	w = q.writer(&bytes.Buffer{})
	for range 3 {
		clock = clock.Add(time.Second)
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	q.done()
	if got := out.String(); got != "\rrestore: 2.0 MiB, 2.0 MiB/s\x1b[K\rrestore: 3.0 MiB, 1.5 MiB/s\x1b[K\rrestore: 3.0 MiB, 1.5 MiB/s, done in 2s\x1b[K\n" {
		t.Errorf("terminal output %q", got)
	}

	out.Reset()
	e := newCopyProgress(&out, "export", 5)
	e.quick = true
	if _, err := e.writer(&bytes.Buffer{}).Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	e.done()
	if out.Len() != 0 {
		t.Errorf("a quick export printed %q", out.String())
	}
}

func TestSizeString(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := sizeString(n); got != want {
			t.Errorf("sizeString(%d) = %q, want %q", n, got, want)
		}
	}
}

// restore prints its progress on stderr, the result on stdout.
func TestRestoreProgress(t *testing.T) {
	ls := startLive(t)
	if err := postEdits(t.Context(), ls.url, "p", 0, "x"); err != nil {
		t.Fatal(err)
	}
	b := t.TempDir() + "/b.db"
	if code, _, errOut := runCmd(t, "backup", "-url", ls.url, "-out", b); code != 0 || !regexp.MustCompile(`(?m)^backup: [0-9.]+ [KM]iB, .*done in`).MatchString(errOut) {
		t.Fatalf("backup: exit %d, stderr %q", code, errOut)
	}
	code, out, errOut := runCmd(t, "restore", "-in", b, "-data", t.TempDir())
	if code != 0 || !strings.Contains(out, "restored") || !regexp.MustCompile(`(?m)^restore: [0-9.]+ [KM]iB of [0-9.]+ [KM]iB \(100%\), .*done in`).MatchString(errOut) {
		t.Errorf("restore: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(b); err != nil {
		t.Error(err)
	}
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
)

// Command-line plumbing shared by the commands: help that exits 0, the
// version, and the COLLABD_* environment variables.

// buildVersion may be set at link time (-ldflags "-X main.buildVersion=v1.2.3")
// by builds without the module version or VCS information, such as the
// Dockerfile's (the image is built without .git). It is never changed at run
// time.
var buildVersion = ""

// buildRevision may likewise be set at link time (-X main.buildRevision=…)
// when the build has no VCS information; VCS information wins.
var buildRevision = ""

// parseFlags parses args into fs. ok is false when the command must stop:
// code is then 0 for -h/--help (the usage was printed) and 2 for a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	default:
		return 2, false
	}
}

// versionInfo is what `collabd version` prints: the module version, the VCS
// revision, its time and whether the tree was modified, and the toolchain.
func versionInfo() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return formatVersion(bi, buildVersion, buildRevision)
}

// formatVersion formats bi (nil: none) with override as the version if set,
// and rev as the revision when bi has none.
func formatVersion(bi *debug.BuildInfo, override, rev string) string {
	var b strings.Builder
	version, revision, when, modified := override, "", "", ""
	if bi != nil {
		if version == "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	if version == "" {
		version = "(devel)"
	}
	if revision == "" {
		revision = rev
	}
	fmt.Fprintf(&b, "collabd %s\n", version)
	if revision != "" {
		fmt.Fprintf(&b, "revision %s", revision)
		if when != "" {
			fmt.Fprintf(&b, " (%s)", when)
		}
		if modified == "true" {
			b.WriteString(", modified")
		}
		b.WriteString("\n")
	} else {
		b.WriteString("revision unknown (built without VCS information)\n")
	}
	fmt.Fprintf(&b, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// envName is the COLLABD_* variable of a flag name.
func envName(flagName string) string {
	return "COLLABD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// setUsageWithEnv makes fs's usage (-h) say what the command does, list its
// flags, and then each flag's COLLABD_* variable.
func setUsageWithEnv(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(out, "\nenvironment (a flag on the command line wins):\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(out, "  %-32s --%s\n", envName(f.Name), f.Name)
		})
	}
}

// envFlags are the flags, by command, that may come from COLLABD_*
// variables, for the commands other than serve that call envDefaults (serve
// knows its own flags when it warns). TestEnvFlagsComplete checks them
// against the commands' real flags.
var envFlags = map[string][]string{
	"token":           {"auth-secret", "sub", "name", "ttl", "doc", "color", "iss", "aud"},
	"backup":          {"url", "token", "out", "verify"},
	"export":          {"doc", "format", "root", "url", "token", "data", "out"},
	"webhooks":        {"url", "token", "state", "limit"},
	"history":         {"url", "token", "limit", "before"},
	"restore-version": {"url", "token"},
}

// otherEnv are COLLABD_* variables that are not flags: read by the tests and
// the benchmark scripts of this repository.
var otherEnv = []string{
	"COLLABD_TRACES", "COLLABD_BIN", "COLLABD_TEST_MAIN", "COLLABD_CLIENT_JS", "COLLABD_TXT",
	"COLLABD_MODEL_SEED", "COLLABD_CRASH_SEED", "COLLABD_CRASH_CYCLES", "COLLABD_BENCH_CPUPROFILE",
	"COLLABD_STORAGE_CRASH_PATH", "COLLABD_STORAGE_CRASH_JOURNAL", "COLLABD_STORAGE_CRASH_CYCLE", "COLLABD_STORAGE_CRASH_CHILD",
}

// warnUnknownEnv prints a warning on w for each COLLABD_* variable in
// environ (KEY=value entries) that no command reads (fs's flags, the other
// commands' envFlags, otherEnv), naming the closest known one (a typo such as
// COLLABD_ADRR is otherwise silently ignored).
func warnUnknownEnv(w io.Writer, command string, fs *flag.FlagSet, environ []string) {
	known := slices.Clone(otherEnv)
	fs.VisitAll(func(f *flag.Flag) { known = append(known, envName(f.Name)) })
	for _, names := range envFlags {
		for _, n := range names {
			known = append(known, envName(n))
		}
	}
	for _, kv := range environ {
		key, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(key, "COLLABD_") || slices.Contains(known, key) {
			continue
		}
		msg := fmt.Sprintf("collabd %s: warning: %s is not a collabd setting; ignored", command, key)
		if near := closest(key, known); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", near)
		}
		fmt.Fprintln(w, msg)
	}
}

// closest is the name in names within edit distance 2 of s ("" if none).
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

const verifyUsage = `usage: collabd verify FILE

Checks FILE, a backup (collabd backup) or the collabd.db of a stopped
server: every bbolt page, every record's checksum, and every document
rebuilt as the server would load it. Prints the counts and each problem;
exits 0 when the file is sound, 1 when it is not (or cannot be read), 2 on
bad usage.
`

// versionString is the version on one line (the start log line): the
// first two lines of versionInfo.
func versionString() string {
	lines := strings.SplitN(versionInfo(), "\n", 3)
	if len(lines) >= 2 {
		return strings.TrimPrefix(lines[0], "collabd ") + ", " + lines[1]
	}
	return lines[0]
}

# collabd — every check the project has runs from `make test` (CI calls it through .ci/run).
GO      ?= go
# The recorded editing traces live in ../shared/traces beside the repository; override with
# `make test TRACES=/path/to/traces`.
TRACES  ?= $(abspath $(CURDIR)/../shared/traces)
export COLLABD_TRACES = $(TRACES)

# Packages with goroutines run under the race detector; pure packages run without it
# (the race detector slows the trace replays tenfold and finds nothing in code without goroutines).
RACE_PKGS = ./storage/... ./server/... ./clients/go/... ./e2e/... ./internal/rawclient/... ./internal/natsembed/...

FUZZTIME ?= 3s

.PHONY: test vet unit race fuzz-smoke bench build js demo browser yjs-oracle
# js runs before unit: it installs clients/js/node_modules, which the Go/JS interop test (e2e) needs.
test: vet js yjs-oracle unit race fuzz-smoke browser

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

# unit includes the short chaos runs of cmd/collabd (TestChaos*Short; the
# cluster one starts three serve --nats-embedded processes, ~45 s).
unit:
	$(GO) test -count=1 ./...

race:
	$(GO) test -count=1 -race $(RACE_PKGS)

# A short run of every fuzz target (the seed corpora in testdata/fuzz also run in `unit`).
# Go's fuzzing engine now and then ends a short -fuzztime with "context deadline exceeded"
# and no crasher; a failing target is therefore run once more (a real crasher was saved to
# testdata/fuzz by the first run and fails the second one too).
fuzz-smoke:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    out=$$($(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) -parallel=2 $$pkg 2>&1) || { \
	      echo "$$out"; echo "fuzz $$t failed; running it again (a crasher is kept in testdata/fuzz and fails again)"; \
	      $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) -parallel=2 $$pkg || exit 1; }; \
	  done; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# The JavaScript client (clients/js): npm ci when node_modules is missing or stale, build, test.
js:
	bash clients/js/scripts/check.sh

# The Yjs oracle (interop/yjs: real yjs, npm ci when missing or stale) and the
# crdt/yjs tests that compare the Go engine with it (golden vectors, seeded
# differential histories). Long run: `make yjs-oracle YJS_DIFF_CASES=20000`.
yjs-oracle:
	GO=$(GO) bash interop/yjs/scripts/check.sh

# The demo page served at / by `collabd serve`: rebuilds internal/demo/static
# from clients/js/demo (commit the result: a fresh clone builds without Node).
demo:
	cd clients/js && npm run --silent demo

# Browser end-to-end: the demo in Debian's Chromium through playwright-core
# (clients/js/scripts/browser-setup.sh installs chromium when missing, as root).
browser:
	bash clients/js/scripts/browser-setup.sh
	cd clients/js && npm run --silent build && npm run --silent test:browser

# The project's commands. `make test` is what CI runs (.ci/run calls it).
SHELL := /bin/bash
GO ?= go

.PHONY: test vet unit bench fuzz demo testenv

# ALLOC_PKGS hold the tests that pin allocation counts (names with "Alloc");
# the race detector changes what allocates, so they skip under -race and
# run once more without it.
ALLOC_PKGS := . ./tenant ./interceptors ./dbwrap ./internal/guard

# test: start (or reuse) the PostgreSQL primary + streaming replica and check
# Redis, then vet and race-test the module, run the allocation tests without
# the race detector, run the guard's long simulations (skipped under -race)
# without it, run the demo's tests once more on the shop as `make demo`
# builds it (-tags demo_embedded), vet and run the benchmarks module once, and run other
# drivers' test suites through dbwrap (dbwrap/conformance, its own module;
# see docs/db-routing.md, "Conformance: other drivers' test suites").
test:
	@set -euo pipefail; \
	eval "$$(bash scripts/testenv.sh)"; \
	$(GO) vet ./...; \
	$(GO) test -race -count=1 -timeout 15m ./...; \
	$(GO) test -count=1 -run Alloc $(ALLOC_PKGS); \
	$(GO) test -count=1 -run Simulation ./internal/guard; \
	$(GO) vet -tags demo_embedded ./cmd/demo-shop; \
	$(GO) test -count=1 -tags demo_embedded ./cmd/demo-shop; \
	(cd benchmarks && $(GO) vet ./... && $(GO) test -count=1 -run . -bench . -benchtime 1x ./...); \
	cd dbwrap/conformance && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 10m ./...

# testenv prints the environment the tests use; `eval "$(make -s testenv)"`.
testenv:
	@bash scripts/testenv.sh

# bench runs the benchmarks whose figures docs/benchmarks.md reports.
bench:
	@set -euo pipefail; eval "$$(bash scripts/testenv.sh)"; \
	cd benchmarks && $(GO) test -run '^$$' -bench . -benchmem -count 5 ./...

# fuzz runs each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	@set -euo pipefail; \
	for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# demo builds the shop with -v, so that a first build (hundreds of packages
# from an empty build cache) shows its progress instead of a silent pause,
# then runs it. It builds the embedded mode only (-tags demo_embedded: SQLite,
# no Redis, etcd, PostgreSQL or MariaDB clients to compile) without the
# optimizer (-N -l: a shop tried by hand needs none, and the first build from
# an empty cache takes a third less; DEMO_GCFLAGS= builds it optimized); the
# service modes are `go run ./cmd/demo-shop -pg-primary …` (docs/demo.md).
# docs/benchmarks.md, "The demo's first build", has the figures. DEMO_ARGS
# are passed to the shop.
DEMO_GCFLAGS ?= all=-N -l
demo:
	@set -eo pipefail; mkdir -p bin; \
	echo "make demo: building ./cmd/demo-shop (from an empty build cache this compiles about 460 packages: about a minute on 2 quiet cores; then seconds)"; \
	$(GO) build -v -tags demo_embedded -gcflags='$(DEMO_GCFLAGS)' -ldflags=-s -o bin/demo-shop ./cmd/demo-shop 2>&1 | awk '/^[^ #:]+$$/ { n++; printf "\r  %4d compiled, now %-70.70s", n, $$0; fflush(); next } { print "\n" $$0 } END { if (n) printf "\r  %4d packages compiled.%-70s\n", n, "" }'; \
	echo "make demo: starting the shop (Ctrl-C stops it)"; \
	exec ./bin/demo-shop $(DEMO_ARGS)

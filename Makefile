# The project's commands. `make test` is what CI runs (.ci/run calls it).
SHELL := /bin/bash
GO ?= go

.PHONY: test vet unit bench fuzz demo testenv

# test: start (or reuse) the PostgreSQL primary + streaming replica and check
# Redis, then vet and race-test the module and the benchmarks module.
test:
	@set -euo pipefail; \
	eval "$$(bash scripts/testenv.sh)"; \
	$(GO) vet ./...; \
	$(GO) test -race -count=1 -timeout 15m ./...; \
	cd benchmarks && $(GO) vet ./... && $(GO) test -count=1 -run . -bench . -benchtime 1x ./...

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

demo:
	$(GO) run ./cmd/demo-shop

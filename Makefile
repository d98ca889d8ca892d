# Portcullis — the commands of the contract. `make test` is exactly what CI runs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Every Lambda function (folders under functions/); scripts/check_consistency.py keeps this,
# template.yaml and events/ in step.
FUNCTIONS := login refresh logout validate-key authorizer whoami jwks rotate-keys oauth web mfa account

VENV := .venv
PY := $(VENV)/bin/python
ARCH ?= arm64
export PORTCULLIS_LOCAL_AWS_PORT ?= 4566
export PORTCULLIS_WATCH_PORT ?= 9000

# cargo-nextest: the one on PATH if there is one, else this pinned version, built once into a
# project-local root (nothing is installed outside the checkout); it comes after $PATH in the
# test recipe.
NEXTEST_VERSION := 0.9.143
CARGO_TOOLS := $(CURDIR)/.local/cargo-tools
# AWS SAM CLI (scripts/requirements-sam.txt), pinned, in a virtualenv of its own: its click
# pin conflicts with schemathesis's in .venv.
SAM_VENV := .local/sam-venv
SAM := AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam

.PHONY: help tools nextest dev test lint contract build sam deploy bench bench-enumeration clean

help:
	@echo "make dev     local stack: emulator + tables + demo user + cargo lambda watch on 127.0.0.1:$(PORTCULLIS_WATCH_PORT)"
	@echo "make test    fmt, clippy, template lint, consistency check, unit + integration + HTTP tests"
	@echo "make build   release bootstraps for every function (ARCH=arm64|x86_64)"
	@echo "make sam     sam validate --lint + sam build into .local/sam/build (ARCH=arm64|x86_64)"
	@echo "make deploy  sam build + sam deploy --guided"
	@echo "make bench   benchmarks"
	@echo "make bench-enumeration  known vs unknown addresses: register and reset-request timing"

# Python tools (moto server, cargo-lambda, ziglang, cfn-lint), pinned, in a project-local venv.
$(VENV)/.installed: scripts/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
	touch $@

# panva/jose for the interop tests (pinned by tests/interop/package-lock.json).
tests/interop/node_modules/.package-lock.json: tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --silent

# schemathesis for the OpenAPI contract test (pinned separately: it is large).
$(VENV)/.contract-installed: scripts/requirements-contract.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-contract.txt
	touch $@

$(SAM_VENV)/.installed: scripts/requirements-sam.txt
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-sam.txt
	touch $@

# Debian's Chromium for the browser test (tests/interop/browser_flow.mjs): playwright-core
# drives it and downloads no browser of its own, and Playwright's browser builds are not
# fetched here anyway. A system package, so it needs root (CI is root); anyone else installs it
# by hand once.
/usr/bin/chromium:
	@[ "$$(id -u)" -eq 0 ] || { echo "/usr/bin/chromium is missing: install Debian's chromium package as root (apt-get install chromium)" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

tools: $(VENV)/.installed $(VENV)/.contract-installed tests/interop/node_modules/.package-lock.json /usr/bin/chromium

nextest:
	@PATH="$$PATH:$(CARGO_TOOLS)/bin"; cargo nextest --version >/dev/null 2>&1 || { \
	  echo "cargo-nextest not found: installing $(NEXTEST_VERSION) into $(CARGO_TOOLS) (once; 5-15 minutes on 2 cores)"; \
	  cargo install --locked --quiet cargo-nextest --version $(NEXTEST_VERSION) --root "$(CARGO_TOOLS)"; }

lint: tools
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(PY) scripts/check_consistency.py
	$(VENV)/bin/cfn-lint template.yaml

# One local stack for everything: the Rust tests (unit, emulator, HTTP through watch, invoke,
# interop, faults, properties), then the bounded schemathesis run of docs/openapi.yaml against
# the function URLs. The test runner's own output is kept: with-stack.sh scans it and every
# function and emulator log for the passwords, tokens, keys and signing keys the tests used.
test: lint nextest
	mkdir -p .local
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH:$(CARGO_TOOLS)/bin" PORTCULLIS_TEST_OUTPUT_LOG="$(CURDIR)/.local/test-output.log" \
	  scripts/with-stack.sh bash -o pipefail -c 'cargo nextest run --workspace --no-fail-fast \
	  --test-threads 8 --failure-output final 2>&1 | tee "$$PORTCULLIS_TEST_OUTPUT_LOG" \
	  && bash scripts/api-contract-test.sh'

# The OpenAPI contract test alone.
contract: tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/with-stack.sh bash scripts/api-contract-test.sh

dev: tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/dev.sh

build: tools
	@arch_flag=$$([ "$(ARCH)" = "x86_64" ] && echo --x86-64 || echo --arm64); \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release $$arch_flag $(addprefix --bin ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do \
	  b=target/lambda/$$f/bootstrap; \
	  (cd target/lambda/$$f && rm -f bootstrap.zip && $(CURDIR)/$(PY) -m zipfile -c bootstrap.zip bootstrap); \
	  printf '%-14s %s bootstrap %8s bytes, zipped %8s bytes\n' $$f "$(ARCH)" $$(stat -c %s $$b) $$(stat -c %s target/lambda/$$f/bootstrap.zip); \
	done

# The deploy path as CI checks it, offline and without credentials: the template as SAM reads
# it, and `sam build`, which runs `cargo lambda build --release --bin F` once per function into
# the workspace's target/ (cargo-lambda from .venv). After `make build` with the same ARCH
# nothing is compiled again: sam build only copies the bootstraps.
sam: $(VENV)/.installed $(SAM_VENV)/.installed
	$(SAM) validate --lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM) build --build-dir .local/sam/build \
	  --parameter-overrides Architecture=$(ARCH)

# Benchmarks: criterion microbenchmarks (with the local emulator for login), then one harness
# run: the authorizer against the Node and Python peers and the floor (bench/floor, a bare
# lambda_runtime loop), and every function's zipped size, cold start and cold-path profile
# against the floor, with issue #16's targets marked met / not met; writes docs/benchmarks.md.
# The floor is built on its own: built with the functions, cargo would unify its dependencies'
# features with theirs (hyper's HTTP/2 from the AWS SDK's client) and it would be no floor.
# The binaries measured are the deployed ones: `make build ARCH=x86_64` (cargo lambda, zig),
# each target/lambda/NAME/bootstrap linked as .local/bench-bin/NAME for the harness.
BENCH_BIN := .local/bench-bin
bench: tools
	$(MAKE) build ARCH=x86_64
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --x86-64 --bin floor
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/with-stack.sh \
	  cargo bench -p portcullis-tests --bench portcullis -- --warm-up-time 1 --measurement-time 3
	mkdir -p $(BENCH_BIN)
	for f in $(FUNCTIONS) floor; do ln -sf $(CURDIR)/target/lambda/$$f/bootstrap $(BENCH_BIN)/$$f; done
	bash bench/run.sh --portcullis $(BENCH_BIN)/authorizer --floor $(BENCH_BIN)/floor \
	  --functions $(BENCH_BIN)

# Account enumeration (issue #14): known vs unknown addresses for register and reset-request,
# 50 interleaved tries each, through the account function URL; prints the table of
# docs/enumeration.md (a benchmark, not a test: nothing asserts on times).
bench-enumeration: tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/with-stack.sh $(PY) bench/enumeration.py

deploy: tools $(SAM_VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM) build
	$(SAM) deploy --guided

clean:
	cargo clean
	rm -rf .local

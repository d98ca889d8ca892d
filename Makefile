# Portcullis — the commands of the contract. `make test` is exactly what CI runs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Every Lambda function (folders under functions/); scripts/check_consistency.py keeps this,
# template.yaml and events/ in step.
FUNCTIONS := login refresh logout validate-key authorizer whoami jwks rotate-keys

VENV := .venv
PY := $(VENV)/bin/python
ARCH ?= arm64
export PORTCULLIS_LOCAL_AWS_PORT ?= 4566
export PORTCULLIS_WATCH_PORT ?= 9000

.PHONY: help tools dev test lint unit build deploy bench clean

help:
	@echo "make dev     local stack: emulator + tables + demo user + cargo lambda watch on 127.0.0.1:$(PORTCULLIS_WATCH_PORT)"
	@echo "make test    fmt, clippy, template lint, consistency check, unit + integration + HTTP tests"
	@echo "make build   release bootstraps for every function (ARCH=arm64|x86_64)"
	@echo "make deploy  sam build + sam deploy --guided"
	@echo "make bench   benchmarks"

# Python tools (moto server, cargo-lambda, ziglang, cfn-lint), pinned, in a project-local venv.
$(VENV)/.installed: scripts/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
	touch $@

tools: $(VENV)/.installed

lint: tools
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(PY) scripts/check_consistency.py
	$(VENV)/bin/cfn-lint template.yaml

test: lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/with-stack.sh \
	  cargo nextest run --workspace --no-fail-fast --test-threads 8 --failure-output final

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

deploy: tools
	sam build
	sam deploy --guided

clean:
	cargo clean
	rm -rf .local

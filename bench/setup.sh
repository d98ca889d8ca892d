#!/usr/bin/env bash
# Installs the peers' dependencies: npm ci in peers/node, a venv bench/.venv (Python 3.11) with
# the Python peer's pinned requirements. Idempotent: does nothing when already installed.
set -euo pipefail
cd "$(dirname "$0")"

# Node peer: reinstall only when package-lock.json changed since the last npm ci.
if [[ ! -f peers/node/node_modules/.package-lock.json ]] \
   || ! cmp -s peers/node/package-lock.json peers/node/node_modules/.bench-installed-lock; then
  echo "bench/setup: npm ci (peers/node)"
  (cd peers/node && npm ci --no-audit --no-fund --loglevel=error)
  cp peers/node/package-lock.json peers/node/node_modules/.bench-installed-lock
fi

# Python peer: Python 3.11, like the Lambda runtime python3.11.
PY311="${PYTHON311:-$(command -v python3.11 || true)}"
if [[ -z "$PY311" ]]; then
  echo "bench/setup: python3.11 not found (set PYTHON311=/path/to/python3.11)" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]] || ! cmp -s peers/python/requirements.txt .venv/.bench-installed-req; then
  echo "bench/setup: venv bench/.venv (peers/python/requirements.txt)"
  [[ -x .venv/bin/python ]] || "$PY311" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r peers/python/requirements.txt
  cp peers/python/requirements.txt .venv/.bench-installed-req
fi

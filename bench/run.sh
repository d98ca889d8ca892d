#!/usr/bin/env bash
# Benchmark entry point (make bench): installs the peers' deps, then runs the harness.
#   bench/run.sh [--portcullis PATH] [--floor PATH] [--functions DIR] [--runs K] [--warm N]
#                [--function-runs K]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
py="${BENCH_PYTHON:-$root/.venv/bin/python}"   # the repo venv: moto, boto3, cryptography
if [[ ! -x "$py" ]]; then
  echo "bench: $py missing (make tools creates the repo venv)" >&2
  exit 1
fi
bash "$here/setup.sh"
exec "$py" "$here/harness.py" "$@"

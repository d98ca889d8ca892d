#!/usr/bin/env bash
# Run a command against a private local stack: a moto server (DynamoDB + Secrets Manager) on a
# free 127.0.0.1 port, the tables and signing secret made by `portcullis init`, and
# `cargo lambda watch` serving every function twice: over plain HTTP (what `cargo lambda
# invoke` speaks) and over HTTPS with a locally made certificate. Everything it
# starts is stopped when the command ends, whatever happens.
#
# usage: scripts/with-stack.sh COMMAND [ARGS...]
# The command sees: PORTCULLIS_TEST_AWS_ENDPOINT, PORTCULLIS_TEST_WATCH_URL (http),
# PORTCULLIS_TEST_WATCH_PORT, PORTCULLIS_TEST_TLS_URL (https), PORTCULLIS_TEST_FAULT_URL (a
# server whose AWS endpoint is unreachable), PORTCULLIS_TEST_GATEWAY_URL (scripts/gateway.py:
# API Gateway's routes + authorizer in front of the http server), PORTCULLIS_TEST_CA,
# PORTCULLIS_TEST_ENV_FILE, PORTCULLIS_TEST_SECRETS_FILE (where tests note the secrets they use).
# When the command succeeds, every log of the stack (and the file PORTCULLIS_TEST_OUTPUT_LOG,
# if the caller sets it: the command's own output) is scanned for those secrets and the
# signing keys' private material (scripts/scan-logs.py); a secret found fails the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv/bin"
state="$root/.local/stack-$$"
mkdir -p "$state"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

aws_port=$(python3 "$root/scripts/free-port.py")
watch_port=$(python3 "$root/scripts/free-port.py")
tls_port=$(python3 "$root/scripts/free-port.py")
endpoint="http://127.0.0.1:$aws_port"

setsid "$venv/python" "$root/scripts/moto-server.py" "$aws_port" >"$state/moto.log" 2>&1 &
pids+=($!)
python3 "$root/scripts/wait-http.py" "$endpoint/moto-api/" 30

bash "$root/scripts/tls-cert.sh" "$root/.local/tls" >/dev/null

# The functions' environment: the local defaults, this emulator, and test-only knobs.
env_file="$state/test.env"
{
  grep -v '^#' "$root/scripts/local.env" | grep -v '^LOGIN_RATE_LIMIT=' | grep -v '^REFRESH_COOKIE=' \
    | grep -v '^JWT_ISSUER='
  echo "AWS_ENDPOINT_URL=$endpoint"
  # The issuer is where the metadata documents are served, so OAuth/OIDC clients that check
  # it (RFC 8414 §3.3) discover this stack; the OAuth endpoints live under the oauth function.
  echo "JWT_ISSUER=http://127.0.0.1:$watch_port/lambda-url/jwks"
  echo "OAUTH_ENDPOINT_BASE=http://127.0.0.1:$watch_port/lambda-url/oauth"
  # The sign-in and consent pages need HTTPS (their __Host- cookies are Secure): the TLS server.
  echo "WEB_BASE_URL=https://127.0.0.1:$tls_port/lambda-url/web"
  # Self-service accounts, with mail through the emulator's SES (init registers the sender;
  # the tests read the mail from moto-server.py's /_test/ses/messages).
  echo "SELF_SIGNUP=on"
  echo "MAIL_FROM=no-reply@portcullis.test"
  echo "ACCOUNT_RATE_LIMIT=100000/900"
  # Every OAuth test request comes from 127.0.0.1 too; limits are tested in-process.
  echo "OAUTH_TOKEN_IP_RATE_LIMIT=100000/60"
  # Real production argon2 parameters: the HTTP tests measure the real thing.
  echo "PASSWORD_HASH_PROFILE=production"
  # Every test request comes from 127.0.0.1; the limit is exercised by the in-process tests.
  echo "LOGIN_RATE_LIMIT=100000/900"
  echo "REFRESH_COOKIE=on"
  # The HTTP session tests exercise the concurrent-tabs grace (the default is 0: no grace).
  echo "REFRESH_REUSE_GRACE_SECONDS=10"
} >"$env_file"

set -a; source "$env_file"; set +a
cargo build --quiet --workspace --bins
"$root/target/debug/portcullis" init >/dev/null

export PATH="$venv:$PATH"
watch() {  # PORT LOG ENV_FILE [TLS ARGS...]
  local port=$1 log=$2 env=$3; shift 3
  # An admin route that demands a second factor (gateway.py's GET /admin/whoami, http_mfa.rs).
  # Inherited, not in the env file: cargo lambda's --env-file splits an unquoted value at its
  # spaces (and `source` runs it), and a quoted one reaches the CLI with its quotes (tests/lib.rs).
  AUTHORIZER_ROUTE_RULES="GET /admin/*=mfa" setsid cargo lambda watch -A 127.0.0.1 -P "$port" \
    --ignore-changes --quiet --concurrency 8 --env-file "$env" "$@" >"$log" 2>&1 &
  pids+=($!)
}
watch "$watch_port" "$state/watch.log" "$env_file"
watch "$tls_port" "$state/watch-tls.log" "$env_file" \
  --tls-cert "$root/.local/tls/cert.pem" --tls-key "$root/.local/tls/key.pem"
# A third server whose AWS endpoint is a closed port: every function's cold start finds its
# stores unreachable (the fault tests).
fault_port=$(python3 "$root/scripts/free-port.py")
dead_port=$(python3 "$root/scripts/free-port.py")
fault_env="$state/fault.env"
sed "s|^AWS_ENDPOINT_URL=.*|AWS_ENDPOINT_URL=http://127.0.0.1:$dead_port|" "$env_file" >"$fault_env"
watch "$fault_port" "$state/watch-fault.log" "$fault_env"
python3 "$root/scripts/wait-http.py" "http://127.0.0.1:$watch_port/lambda-url/login/" 300 \
  || { cat "$state/watch.log" >&2; exit 1; }
python3 "$root/scripts/wait-http.py" "https://127.0.0.1:$tls_port/lambda-url/login/" 300 "$root/.local/tls/ca.pem" \
  || { cat "$state/watch-tls.log" >&2; exit 1; }
gw_port=$(python3 "$root/scripts/free-port.py")
setsid python3 "$root/scripts/gateway.py" "$gw_port" "http://127.0.0.1:$watch_port" >"$state/gateway.log" 2>&1 &
pids+=($!)
python3 "$root/scripts/wait-http.py" "http://127.0.0.1:$gw_port/_health" 30 \
  || { cat "$state/gateway.log" >&2; exit 1; }

export PORTCULLIS_TEST_AWS_ENDPOINT="$endpoint"
export PORTCULLIS_TEST_WATCH_URL="http://127.0.0.1:$watch_port"
export PORTCULLIS_TEST_TLS_URL="https://127.0.0.1:$tls_port"
export PORTCULLIS_TEST_FAULT_URL="http://127.0.0.1:$fault_port"
export PORTCULLIS_TEST_GATEWAY_URL="http://127.0.0.1:$gw_port"
export PORTCULLIS_TEST_WATCH_PORT="$watch_port"
export PORTCULLIS_TEST_CA="$root/.local/tls/ca.pem"
export PORTCULLIS_TEST_ENV_FILE="$env_file"
export PORTCULLIS_TEST_SECRETS_FILE="$state/secrets.txt"
: >"$PORTCULLIS_TEST_SECRETS_FILE"
status=0
"$@" || status=$?
if [ "$status" -ne 0 ] && [ -n "${CI:-}" ]; then
  echo "---- cargo lambda watch log (tail) ----" >&2; tail -n 80 "$state/watch.log" >&2
fi
if [ "$status" -eq 0 ]; then
  # No secrets in logs: the scanner first proves it can fail, then scans.
  logs=("$state"/watch*.log "$state/moto.log" "$state/gateway.log")
  if [ -n "${PORTCULLIS_TEST_OUTPUT_LOG:-}" ]; then logs+=("$PORTCULLIS_TEST_OUTPUT_LOG"); fi
  "$venv/python" "$root/scripts/scan-logs.py" --self-test >/dev/null \
    && "$venv/python" "$root/scripts/scan-logs.py" --secrets "$PORTCULLIS_TEST_SECRETS_FILE" \
      --endpoint "$endpoint" --env-file "$env_file" "${logs[@]}" \
    || status=$?
fi
exit "$status"

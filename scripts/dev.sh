#!/usr/bin/env bash
# make dev: the local stack in the foreground. moto (DynamoDB + Secrets Manager) on
# 127.0.0.1:$PORTCULLIS_LOCAL_AWS_PORT, tables + signing secret + a demo user, and
# `cargo lambda watch` on 127.0.0.1:$PORTCULLIS_WATCH_PORT. DEV_TLS=1 serves HTTPS with a
# locally generated certificate. Ctrl-C stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
aws_port=${PORTCULLIS_LOCAL_AWS_PORT:-4566}
watch_port=${PORTCULLIS_WATCH_PORT:-9000}
endpoint="http://127.0.0.1:$aws_port"
mkdir -p "$root/.local"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo; echo "stopped."
}
trap cleanup EXIT INT TERM

setsid python "$root/scripts/moto-server.py" "$aws_port" >"$root/.local/moto.log" 2>&1 &
pids+=($!)
python3 "$root/scripts/wait-http.py" "$endpoint/moto-api/" 30

env_file="$root/.local/dev.env"
scheme=http
[ "${DEV_TLS:-0}" = "1" ] && scheme=https
base="$scheme://127.0.0.1:$watch_port/lambda-url"
# The issuer is where the metadata is served, so OAuth clients can discover this stack.
{ grep -v '^#' "$root/scripts/local.env" | grep -v '^JWT_ISSUER='
  echo "AWS_ENDPOINT_URL=$endpoint"
  echo "JWT_ISSUER=$base/jwks"
  echo "OAUTH_ENDPOINT_BASE=$base/oauth"; } >"$env_file"
set -a; source "$env_file"; set +a

echo "building..."
cargo build --quiet --workspace --bins
"$root/target/debug/portcullis" init
demo_email=demo@portcullis.dev
demo_password='Demo-passw0rd!'
printf '%s\n' "$demo_password" | "$root/target/debug/portcullis" user create --email "$demo_email" --role admin >/dev/null 2>&1 || true
# A demo OAuth client (client credentials), made anew each run: its secret is shown once.
demo_client=$("$root/target/debug/portcullis" client create --name demo-partner --scopes orders:read,orders:write)
client_id=$(sed -n 1p <<<"$demo_client")
client_secret=$(sed -n 2p <<<"$demo_client")

tls_args=()
curl_tls=""
if [ "$scheme" = https ]; then
  bash "$root/scripts/tls-cert.sh" "$root/.local/tls" >/dev/null
  tls_args=(--tls-cert "$root/.local/tls/cert.pem" --tls-key "$root/.local/tls/key.pem")
  curl_tls="--cacert .local/tls/ca.pem "
fi
setsid cargo lambda watch -A 127.0.0.1 -P "$watch_port" --concurrency 4 --env-file "$env_file" "${tls_args[@]}" &
pids+=($!)
if [ "$scheme" = https ]; then
  python3 "$root/scripts/wait-http.py" "$base/login/" 300 "$root/.local/tls/ca.pem"
else
  python3 "$root/scripts/wait-http.py" "$base/login/" 300
fi

cat <<TXT

Portcullis is running (emulator at $endpoint, functions at $base/<name>/).

Log the demo user in:
  curl -s ${curl_tls}-X POST $base/login/ -H 'content-type: application/json' \\
    -d '{"email":"$demo_email","password":"$demo_password"}'

Get an OAuth access token for the demo client (client credentials), then introspect it:
  curl -s ${curl_tls}$base/jwks/.well-known/oauth-authorization-server
  curl -s ${curl_tls}-u '$client_id:$client_secret' $base/oauth/oauth/token \\
    -d grant_type=client_credentials -d scope=orders:read
  curl -s ${curl_tls}-u '$client_id:$client_secret' $base/oauth/oauth/introspect -d token=ACCESS_TOKEN

Or invoke with a sample event:
  cargo lambda invoke login --invoke-address 127.0.0.1 --invoke-port $watch_port --data-file events/login.json

The CLI uses the same environment:  set -a; source .local/dev.env; set +a; target/debug/portcullis --help
Ctrl-C stops everything.
TXT
wait

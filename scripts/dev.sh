#!/usr/bin/env bash
# make dev: the local stack in the foreground. moto (DynamoDB + Secrets Manager) on
# 127.0.0.1:$PORTCULLIS_LOCAL_AWS_PORT, tables + signing secret + MFA key + a demo user, and
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
# The issuer is where the metadata is served, so OAuth clients can discover this stack; the
# sign-in and consent pages live under the web function.
{ grep -v '^#' "$root/scripts/local.env" | grep -v '^JWT_ISSUER='
  echo "AWS_ENDPOINT_URL=$endpoint"
  echo "JWT_ISSUER=$base/jwks"
  echo "OAUTH_ENDPOINT_BASE=$base/oauth"
  echo "WEB_BASE_URL=$base/web"
  # Self-service accounts, with mail through the emulator's SES (init registers the sender;
  # GET $endpoint/_test/ses/messages lists what was sent).
  echo "SELF_SIGNUP=on"
  echo "MAIL_FROM=no-reply@portcullis.dev"; } >"$env_file"
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
# A demo web app (authorization code + PKCE, OpenID Connect), also made anew each run, and one
# authorization request for it: a PKCE verifier, its S256 challenge, a state and a nonce.
redirect_uri=http://127.0.0.1:8080/callback
demo_web=$("$root/target/debug/portcullis" client create --name "Demo web app" --scopes openid,email \
  --grants authorization_code,refresh_token --redirect-uri "$redirect_uri")
web_client_id=$(sed -n 1p <<<"$demo_web")
web_client_secret=$(sed -n 2p <<<"$demo_web")
read -r code_verifier authorize_query < <(python3 - "$web_client_id" "$redirect_uri" <<'EOF'
import base64, hashlib, secrets, sys, urllib.parse
client_id, redirect_uri = sys.argv[1:]
verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
query = urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
    "scope": "openid email", "state": secrets.token_urlsafe(12), "nonce": secrets.token_urlsafe(12),
    "code_challenge": challenge, "code_challenge_method": "S256"}, quote_via=urllib.parse.quote)
print(verifier, query)
EOF
)

tls_args=()
curl_tls=""
web_note="  The sign-in pages need DEV_TLS=1 make dev: their __Host- cookies are Secure, so HTTPS
  only (then trust .local/tls/ca.pem in the browser, or accept its warning).
"
if [ "$scheme" = https ]; then
  web_note="  (A browser that does not trust .local/tls/ca.pem shows a warning first.)
"
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

Sign in with Portcullis (authorization code + PKCE + OpenID Connect) as the demo web app:
$web_note  1. open in a browser, sign in as $demo_email / $demo_password and allow:
       $base/web/oauth/authorize?$authorize_query
  2. the browser lands on $redirect_uri?code=...&state=...&iss=... (nothing listens
     there, so it shows an error page: copy the code from the address bar) and, within 60 s:
  curl -s ${curl_tls}-u '$web_client_id:$web_client_secret' $base/oauth/oauth/token \\
    -d grant_type=authorization_code -d redirect_uri=$redirect_uri \\
    -d code_verifier=$code_verifier -d code=CODE
  curl -s ${curl_tls}$base/oauth/oauth/userinfo -H 'Authorization: Bearer ACCESS_TOKEN'
  The sign-in page alone: $base/web/auth/signin

Turn on the second factor (TOTP) for the demo user, with ACCESS_TOKEN from the login above and
CODE from any authenticator app given the secret or QR code (or: oathtool --totp -b SECRET):
  curl -s ${curl_tls}-X POST $base/mfa/auth/mfa/totp -H 'Authorization: Bearer ACCESS_TOKEN'
  curl -s ${curl_tls}$base/mfa/auth/mfa/totp/confirm -H 'Authorization: Bearer ACCESS_TOKEN' \\
    -H 'content-type: application/json' -d '{"code":"CODE"}'
  Login then answers 401 MFA_REQUIRED with error.challenge; finish it with a later CODE:
  curl -s ${curl_tls}$base/mfa/auth/login/mfa -H 'content-type: application/json' \\
    -d '{"challenge":"CHALLENGE","code":"CODE"}'
  Back to the password alone (with .local/dev.env sourced, as below):
    target/debug/portcullis user mfa reset --email $demo_email

Sign up (the mail with its verification link lands in the emulator), then verify:
  curl -s ${curl_tls}$base/account/auth/register -H 'content-type: application/json' \\
    -d '{"email":"ann@example.com","password":"a long passphrase of mine"}'
  curl -s $endpoint/_test/ses/messages     # the link ends in #token=TOKEN
  curl -s ${curl_tls}$base/account/auth/verify-email -H 'content-type: application/json' \\
    -d '{"token":"TOKEN"}'
  Forgotten password: POST {"email": ...} to $base/account/auth/password-reset, then
  {"token": ..., "password": ...} to .../auth/password-reset/confirm.

Or invoke with a sample event:
  cargo lambda invoke login --invoke-address 127.0.0.1 --invoke-port $watch_port --data-file events/login.json

The CLI uses the same environment:  set -a; source .local/dev.env; set +a; target/debug/portcullis --help
Ctrl-C stops everything.
TXT
wait

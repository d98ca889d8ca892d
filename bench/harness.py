#!/usr/bin/env python3
"""Portcullis benchmark harness: Portcullis's `authorizer` Lambda vs the peer authorizers users
would otherwise write (Node 20 + aws-jwt-verify, Python 3.11 + PyJWT) and vs the floor (a bare
Rust `lambda_runtime` loop, `bench/floor`), each run as a real process under a local Lambda
Runtime API served here; then every function's release binary against the floor.

Per cold start (one spawned process): init (spawn -> first GET next), cold invocation
(spawn -> first response; the first event is queued at spawn), N warm invocations (enqueue ->
response; p50/p99), peak RSS (VmHWM just before the kill). Every answer is checked: the exact
Allow policy for the bench token, the Unauthorized error for bad tokens, the floor's echo, each
function's exact HTTP status. Runs alternate implementations (A,B,C,A,B,C,...); medians over
runs are reported. With --functions, every function (and the floor, interleaved with them, as
many cold starts) also gets: its binary's size and zipped size (deflate, as `make build` zips a
bootstrap), init and first response as multiples of the floor's cold invocation, and the
cold-path profile from its `cold start config_us=.. clients_us=.. ready_us=..` log line. The
targets of issue #16 (zipped <= 3 MB each, whoami <= 1 MB, authorizer cold <= 2x the floor) are
marked met / not met. Timings are printed, never asserted; a correctness failure makes the exit
status 1.

Needs: this interpreter with boto3 + cryptography + moto_server beside it (the repo's .venv),
bench/setup.sh done (peers' deps). Only 127.0.0.1 is used.

Writes bench/results/latest.json, docs/benchmarks.md, docs/benchmarks.svg.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import platform
import queue
import re
import secrets
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
DOCS = ROOT / "docs"

ISSUER = "https://auth.bench.local"
AUDIENCE = "portcullis-bench"
SECRET_ID = "portcullis/bench-signing-keys"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/whoami"
FUNCTION_NAME = "portcullis-bench-authorizer"
TABLES = {
    "bench-users": [("email", "HASH")],
    "bench-refresh-tokens": [("tokenHash", "HASH")],
    "bench-api-keys": [("keyId", "HASH")],
    "bench-rate-limits": [("pk", "HASH")],
    "bench-revoked-tokens": [("pk", "HASH"), ("sk", "RANGE")],
    "bench-oauth-clients": [("clientId", "HASH")],  # left empty: the oauth event's client is unknown
}
UNAUTHORIZED = {"errorMessage": "Unauthorized", "errorType": "Unauthorized"}
COLD_TIMEOUT_S = 30.0
INVOKE_TIMEOUT_S = 10.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def now_ns() -> int:
    return time.perf_counter_ns()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Keys and tokens (Ed25519 with `cryptography`; a JWS is small enough to sign by hand, so the
# harness needs no JWT library).
# ---------------------------------------------------------------------------------------------
class Keys:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.kid = b64url(secrets.token_bytes(12))
        raw_pub = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        raw_priv = self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption())
        self.x = b64url(raw_pub)
        self.d = b64url(raw_priv)

    def public_jwks(self) -> dict:
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid,
                          "alg": "EdDSA", "use": "sig"}]}

    def private_jwks(self) -> dict:
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": self.x, "d": self.d,
                          "kid": self.kid, "alg": "EdDSA"}]}

    def sign(self, header: dict, claims: dict, key: Ed25519PrivateKey | None = None) -> str:
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = (key or self.private).sign(signing_input.encode())
        return signing_input + "." + b64url(sig)


def make_tokens(keys: Keys) -> tuple[str, list[tuple[str, str]]]:
    """The bench token, and (name, authorizationToken) cases that must all be Unauthorized."""
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "kid": keys.kid}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "usr_bench", "exp": now + 3600, "iat": now,
              "jti": "at_bench", "token_use": "access", "email": "bench@example.com",
              "role": "admin"}
    good = keys.sign(header, claims)

    def with_claims(**kw) -> str:
        return "Bearer " + keys.sign(header, {**claims, **kw})

    other_key = Ed25519PrivateKey.generate()
    h64 = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": keys.kid}).encode())
    p64 = b64url(json.dumps(claims).encode())
    bad = [
        ("garbage", "Bearer garbage.token.value"),
        ("empty", ""),
        ("wrong issuer", with_claims(iss="https://evil.example")),
        ("wrong audience", with_claims(aud="someone-else")),
        ("expired", with_claims(exp=now - 3600, iat=now - 7200)),
        ("token_use refresh", with_claims(token_use="refresh")),
        ("unknown kid", "Bearer " + keys.sign({**header, "kid": "not-the-kid"}, claims)),
        ("alg none", f"Bearer {h64}.{p64}."),
        ("signed by another key", "Bearer " + keys.sign(header, claims, other_key)),
        ("tampered payload", "Bearer " + good.split(".")[0] + "." +
         b64url(json.dumps({**claims, "role": "root"}).encode()) + "." + good.split(".")[2]),
    ]
    return good, bad


def event_for(authorization_token: str) -> bytes:
    return json.dumps({"type": "TOKEN", "authorizationToken": authorization_token,
                       "methodArn": METHOD_ARN}).encode()


EXPECTED_ALLOW = {
    "principalId": "usr_bench",
    "policyDocument": {"Version": "2012-10-17", "Statement": [{
        "Action": "execute-api:Invoke", "Effect": "Allow",
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/*"}]},
    "context": {"principalId": "usr_bench", "userId": "usr_bench", "email": "bench@example.com",
                "role": "admin", "scopes": "", "authType": "jwt"},
}


# ---------------------------------------------------------------------------------------------
# moto (Secrets Manager + DynamoDB) for Portcullis
# ---------------------------------------------------------------------------------------------
class Moto:
    def __init__(self, logdir: Path) -> None:
        exe = Path(sys.executable).parent / "moto_server"
        if not exe.exists():
            exe = ROOT / ".venv" / "bin" / "moto_server"
        self.port = free_port()
        self.log = open(logdir / "moto.log", "wb")
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"moto_server did not start (see {logdir / 'moto.log'})")
                time.sleep(0.05)

    def provision(self, keys: Keys) -> None:
        import boto3  # moto depends on boto3, so the repo venv has it

        common = dict(endpoint_url=self.url, region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
        boto3.client("secretsmanager", **common).create_secret(
            Name=SECRET_ID, SecretString=json.dumps(keys.private_jwks()))
        ddb = boto3.client("dynamodb", **common)
        for table, schema in TABLES.items():
            ddb.create_table(
                TableName=table, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": n, "KeyType": t} for n, t in schema],
                AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                                      for n, _ in schema])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# Local Lambda Runtime API
# ---------------------------------------------------------------------------------------------
class Invocation:
    def __init__(self, body: bytes, enqueued_ns: int) -> None:
        self.id = str(uuid.uuid4())
        self.body = body
        self.enqueued_ns = enqueued_ns
        self.done = threading.Event()
        self.kind: str | None = None  # "response" | "error"
        self.result: bytes = b""
        self.done_ns = 0
        self.sent_ns = 0
        self.trace_id = (f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
                         f"Parent={secrets.token_hex(8)};Sampled=0")


class RuntimeApi(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.port = self.server_address[1]
        self.events: queue.Queue[Invocation] = queue.Queue()
        self.pending: dict[str, Invocation] = {}
        self.first_next_ns: int | None = None
        self.init_error: bytes | None = None
        self.init_error_event = threading.Event()
        self.stopping = threading.Event()
        self.unexpected: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def handle_error(self, request, client_address) -> None:
        # the function process is SIGKILLed at the end of a run: resets are expected then
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError)) or self.stopping.is_set():
            return
        super().handle_error(request, client_address)

    def enqueue(self, body: bytes, enqueued_ns: int | None = None) -> Invocation:
        inv = Invocation(body, enqueued_ns if enqueued_ns is not None else now_ns())
        self.pending[inv.id] = inv
        self.events.put(inv)
        return inv

    def close(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class RuntimeHandler(socketserver.StreamRequestHandler):
    """A lean HTTP/1.1 keep-alive server for the Runtime API paths only. http.server's header
    parsing (email.parser) costs ~100 µs a request, which would blur the warm figures."""

    disable_nagle_algorithm = True  # TCP_NODELAY: no 40 ms Nagle/delayed-ACK stalls
    server: RuntimeApi
    PREFIX = "/2018-06-01/runtime"
    REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found"}

    def handle(self) -> None:
        while not self.server.stopping.is_set():
            line = self.rfile.readline(65537)
            if not line:
                return
            if not line.strip():
                continue
            try:
                method, path, _version = line.decode("latin-1").split()
            except ValueError:
                return self._reply(400, b'{"errorMessage":"bad request line"}')
            length, chunked = 0, False
            while True:
                h = self.rfile.readline(65537)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                k = k.strip().lower()
                if k == "content-length":
                    length = int(v.strip())
                elif k == "transfer-encoding" and "chunked" in v.lower():
                    chunked = True
            body = self._read_chunked() if chunked else (self.rfile.read(length) if length else b"")
            if method == "GET":
                if not self._get(path):
                    return
            elif method == "POST":
                self._post(path, body)
            else:
                self.server.unexpected.append(f"{method} {path}")
                self._reply(404, b'{"errorMessage":"not found"}')

    def _read_chunked(self) -> bytes:
        out = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(out)
            out.append(self.rfile.read(size))
            self.rfile.readline()

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        # status line, headers and body in one write (one segment)
        head = [f"HTTP/1.1 {status} {self.REASONS.get(status, '')}",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def _get(self, path: str) -> bool:
        if path != self.PREFIX + "/invocation/next":
            self.server.unexpected.append(f"GET {path}")
            self._reply(404, b'{"errorMessage":"not found"}')
            return True
        t = now_ns()
        if self.server.first_next_ns is None:
            self.server.first_next_ns = t
        while True:
            try:
                inv = self.server.events.get(timeout=0.05)
                break
            except queue.Empty:
                if self.server.stopping.is_set():
                    return False
        deadline_ms = int(time.time() * 1000) + 30_000
        inv.sent_ns = now_ns()
        self._reply(200, inv.body, {
            "Lambda-Runtime-Aws-Request-Id": inv.id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn":
                f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}",
            "Lambda-Runtime-Trace-Id": inv.trace_id,
        })
        return True

    def _post(self, path: str, body: bytes) -> None:
        t = now_ns()
        if path == self.PREFIX + "/init/error":
            self.server.init_error = body
            self.server.init_error_event.set()
            return self._reply(202, b'{"status":"OK"}')
        parts = path[len(self.PREFIX):].split("/") if path.startswith(self.PREFIX) else []
        # ['', 'invocation', id, 'response'|'error']
        if len(parts) == 4 and parts[1] == "invocation" and parts[3] in ("response", "error"):
            inv = self.server.pending.pop(parts[2], None)
            if inv is None:
                self.server.unexpected.append(f"POST {path} (unknown request id)")
                return self._reply(400, b'{"errorMessage":"unknown request id"}')
            inv.kind, inv.result, inv.done_ns = parts[3], body, t
            inv.done.set()
            return self._reply(202, b'{"status":"OK"}')
        self.server.unexpected.append(f"POST {path}")
        self._reply(404, b'{"errorMessage":"not found"}')


# ---------------------------------------------------------------------------------------------
# Implementations
# ---------------------------------------------------------------------------------------------
class Impl:
    def __init__(self, name: str, argv: list[str], check: bool, cwd: Path | None = None) -> None:
        self.name, self.argv, self.check, self.cwd = name, argv, check, cwd


def implementations(args) -> list[Impl]:
    impls = []
    if args.portcullis:
        p = Path(args.portcullis).resolve()
        if p.is_file() and os.access(p, os.X_OK):
            impls.append(Impl("portcullis", [str(p)], check=True))
        else:
            print(f"bench: --portcullis {args.portcullis} does not exist or is not executable; "
                  "skipping Portcullis", file=sys.stderr)
    node = shutil.which("node")
    if node and (BENCH / "peers/node/node_modules/aws-jwt-verify").is_dir():
        impls.append(Impl("node", [os.path.realpath(node), str(BENCH / "peers/node/index.js")],
                          check=True, cwd=BENCH / "peers/node"))
    else:
        print("bench: node or peers/node/node_modules missing (run bench/setup.sh); "
              "skipping node", file=sys.stderr)
    py = BENCH / ".venv/bin/python"
    if py.exists():
        # the venv's python is a symlink to the real interpreter: the spawned pid is the runtime
        impls.append(Impl("python", [str(py), str(BENCH / "peers/python/authorizer.py")],
                          check=True, cwd=BENCH / "peers/python"))
    else:
        print("bench: bench/.venv missing (run bench/setup.sh); skipping python", file=sys.stderr)
    if args.floor:
        p = Path(args.floor).resolve()
        if p.is_file() and os.access(p, os.X_OK):
            impls.append(Impl("floor", [str(p)], check=True))  # checked: it echoes
        else:
            print(f"bench: --floor {args.floor} does not exist; skipping floor", file=sys.stderr)
    return impls


def base_env(runtime_port: int, moto_url: str, jwks_file: Path) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{runtime_port}",
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "SIGNING_KEYS_SECRET_ID": SECRET_ID,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWKS_FILE": str(jwks_file),
        "USERS_TABLE": "bench-users",
        "REFRESH_TOKENS_TABLE": "bench-refresh-tokens",
        "API_KEYS_TABLE": "bench-api-keys",
        "RATE_LIMITS_TABLE": "bench-rate-limits",
        "REVOKED_TOKENS_TABLE": "bench-revoked-tokens",
        "OAUTH_CLIENTS_TABLE": "bench-oauth-clients",
        "WEB_SESSIONS_TABLE": "bench-web-sessions",
        "AUTHORIZER_RESPONSE": "iam",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    }
    return env


def read_status(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "Name", "Threads"):
                out[k] = v.strip()
        out["exe"] = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        pass
    return out


def kb(v: str | None) -> int | None:
    return int(v.split()[0]) if v else None


class RunFailure(Exception):
    pass


def wait_inv(inv: Invocation, proc: subprocess.Popen, api: RuntimeApi, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not inv.done.wait(0.02):
        if api.init_error_event.is_set():
            raise RunFailure(f"init error: {api.init_error!r}")
        if proc.poll() is not None:
            raise RunFailure(f"process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RunFailure(f"no answer within {timeout} s")


def wait_all(invs: list[Invocation], proc: subprocess.Popen, api: RuntimeApi,
             stall_timeout: float) -> None:
    """Wait for all, polling (no wake-up per completion); fail if no progress for stall_timeout."""
    if not invs:
        return
    last_done, last_progress = -1, time.monotonic()
    while not invs[-1].done.wait(0.05):
        done = sum(1 for i in invs if i.done.is_set())
        if done != last_done:
            last_done, last_progress = done, time.monotonic()
        if api.init_error_event.is_set():
            raise RunFailure(f"init error: {api.init_error!r}")
        if proc.poll() is not None:
            raise RunFailure(f"process exited with {proc.returncode} after {done} warm invocations")
        if time.monotonic() - last_progress > stall_timeout:
            raise RunFailure(f"warm invocation {done}: no answer within {stall_timeout} s")


def check_echo(inv: Invocation, what: str, failures: list[str]) -> None:
    """The floor answers every event with the event itself (or `{}`)."""
    try:
        got = json.loads(inv.result) if inv.kind == "response" else None
    except ValueError:
        got = None
    if got != {} and got != json.loads(inv.body):
        failures.append(f"{what}: the floor must echo the event (or answer {{}}), got "
                        f"{inv.kind}: {inv.result[:300]!r}")


def check_allow(impl: Impl, inv: Invocation, what: str, failures: list[str]) -> None:
    if impl.name == "floor":
        return check_echo(inv, what, failures)
    if not impl.check:
        return
    if inv.kind != "response":
        failures.append(f"{what}: expected the Allow policy, got {inv.kind}: {inv.result[:300]!r}")
        return
    try:
        got = json.loads(inv.result)
    except ValueError:
        failures.append(f"{what}: response is not JSON: {inv.result[:300]!r}")
        return
    if got != EXPECTED_ALLOW:
        failures.append(f"{what}: policy differs from the expected one: "
                        f"{json.dumps(got)[:400]}")


def check_unauthorized(impl: Impl, inv: Invocation, what: str, failures: list[str],
                       warnings: list[str]) -> None:
    if impl.name == "floor":
        return check_echo(inv, what, failures)
    if not impl.check:
        return
    if inv.kind != "error":
        failures.append(f"{what}: expected the Unauthorized error, got {inv.kind}: "
                        f"{inv.result[:300]!r}")
        return
    try:
        got = json.loads(inv.result)
    except ValueError:
        failures.append(f"{what}: error body is not JSON: {inv.result[:300]!r}")
        return
    if not isinstance(got, dict) or got.get("errorMessage") != "Unauthorized":
        # API Gateway answers 401 only for errorMessage exactly "Unauthorized"
        failures.append(f"{what}: errorMessage must be \"Unauthorized\", got "
                        f"{json.dumps(got)[:300]}")
    elif got != UNAUTHORIZED:
        msg = f"{what}: error body {json.dumps(got)} (errorMessage right, rest differs)"
        (warnings if impl.name == "portcullis" else failures).append(msg)


def end_run(proc: subprocess.Popen | None, api: RuntimeApi) -> None:
    """Kill the function process (if it still runs), reap it, stop the Runtime API."""
    if proc is not None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    api.close()


def one_run(impl: Impl, run_idx: int, warm: int, negatives: bool, good: str,
            bad: list[tuple[str, str]], moto: Moto, jwks_file: Path, logdir: Path) -> dict:
    api = RuntimeApi()
    env = base_env(api.port, moto.url, jwks_file)
    log_path = logdir / f"{impl.name}-run{run_idx}.log"
    rec: dict = {"impl": impl.name, "run": run_idx, "failures": [], "warnings": [],
                 "log": str(log_path)}
    failures, warnings = rec["failures"], rec["warnings"]
    good_event = event_for("Bearer " + good)
    proc = None
    with open(log_path, "wb") as log:
        try:
            t0 = now_ns()
            cold = api.enqueue(good_event, t0)
            proc = subprocess.Popen(impl.argv, env=env, cwd=impl.cwd, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
            wait_inv(cold, proc, api, COLD_TIMEOUT_S)
            rec["init_ns"] = api.first_next_ns - t0
            rec["cold_ns"] = cold.done_ns - t0
            check_allow(impl, cold, "cold invocation", failures)
            st = read_status(proc.pid)
            rec["process"] = {"exe": st.get("exe"), "name": st.get("Name"),
                              "threads": st.get("Threads")}
            if Path(st.get("exe") or "").name in ("bash", "sh", "dash", "env"):
                failures.append(f"measured pid {proc.pid} is a shell wrapper ({st.get('exe')})")

            inv = api.enqueue(event_for("Bearer garbage.token.value"))
            wait_inv(inv, proc, api, INVOKE_TIMEOUT_S)
            check_unauthorized(impl, inv, "garbage token", failures, warnings)

            # Warm: all N events are queued up front; each is timed from its delivery to the
            # waiting function (the moment GET next is answered) to its response, so no harness
            # thread wake-up (~0.3 ms on a loaded 2-core box) is counted. One in flight at a time.
            invs = [api.enqueue(good_event) for _ in range(warm)]
            wait_all(invs, proc, api, INVOKE_TIMEOUT_S)
            samples, warm_fail = [], []
            for i, inv in enumerate(invs):
                samples.append(inv.done_ns - inv.sent_ns)
                check_allow(impl, inv, f"warm invocation {i}", warm_fail)
            if warm_fail:
                failures.append(f"{len(warm_fail)} of {warm} warm invocations wrong; first: "
                                f"{warm_fail[0]}")
            rec["warm_ns"] = samples
            if samples:
                q = statistics.quantiles(samples, n=100, method="inclusive") \
                    if len(samples) > 1 else [samples[0]] * 99
                rec["warm_p50_ns"], rec["warm_p99_ns"] = q[49], q[98]

            # peak RSS now (the bad-token checks below run on the first run only)
            st = read_status(proc.pid)
            rec["peak_rss_kb"] = kb(st.get("VmHWM"))
            rec["rss_kb"] = kb(st.get("VmRSS"))

            if negatives:
                for name, token in bad:
                    inv = api.enqueue(event_for(token))
                    wait_inv(inv, proc, api, INVOKE_TIMEOUT_S)
                    check_unauthorized(impl, inv, f"bad token ({name})", failures, warnings)
                rec["negative_cases"] = [n for n, _ in bad]

            if api.unexpected:
                failures.append(f"unexpected Runtime API calls: {api.unexpected[:5]}")
        except RunFailure as e:
            failures.append(f"run aborted: {e}")
        finally:
            end_run(proc, api)
    if failures:
        try:
            tail = log_path.read_text(errors="replace")[-1500:]
        except OSError:
            tail = ""
        rec["log_tail"] = tail
    return rec


# ---------------------------------------------------------------------------------------------
# Every function's cold start (--functions DIR), against the floor (--floor)
# ---------------------------------------------------------------------------------------------
# name -> (event file under events/, expected HTTP status, expected OAuth `error` code);
# None = a plain Lambda event
FUNCTION_EVENTS = {
    "authorizer": (None, None, None),        # the bench TOKEN event, the exact Allow policy
    "login": ("login.json", 401, None),      # unknown email: rate limit + user read + dummy argon2id
    "refresh": ("refresh.json", 401, None),
    "logout": ("logout.json", 401, None),
    "validate-key": ("validate-key.json", 401, None),
    "whoami": ("whoami.json", 200, None),
    "jwks": ("jwks.json", 200, None),
    "rotate-keys": (None, None, None),       # a createSecret step on the bench secret
    "oauth": ("oauth.json", 401, "invalid_client"),  # a made-up Basic client, empty clients table
}
# The functions that log `cold start config_us=.. clients_us=.. ready_us=..` once per container
# (whoami and rotate-keys read nothing before the first event and do not log it).
PROFILED = {"authorizer", "login", "refresh", "logout", "validate-key", "jwks", "oauth"}
# Issue #16's targets: zipped x86_64 bootstrap (MB = 10^6 bytes); authorizer cold invocation
# as a multiple of the floor's, in the same run.
ZIP_TARGET = 3_000_000
ZIP_TARGET_OF = {"whoami": 1_000_000}
COLD_TARGET_VS_FLOOR = 2.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
COLD_FIELD = re.compile(r"\b(config_us|clients_us|ready_us)\"?[=:]\s*(\d+)")


def function_event(name: str, run_idx: int, good: str) -> bytes:
    if name in ("authorizer", "floor"):
        return event_for("Bearer " + good)
    if name == "rotate-keys":
        return json.dumps({"SecretId": SECRET_ID, "ClientRequestToken": str(uuid.uuid4()),
                           "Step": "createSecret"}).encode()
    event = json.loads((ROOT / "events" / FUNCTION_EVENTS[name][0]).read_text())
    # a fresh client address (and email) per run: the login and oauth rate limits must not turn
    # the expected 401 into a 429
    event["requestContext"]["http"]["sourceIp"] = f"198.51.100.{run_idx + 1}"
    if name == "login":
        event["body"] = json.dumps({"email": f"nobody-{run_idx}@bench.example",
                                    "password": "Not-the-passw0rd"})
    return json.dumps(event).encode()


def check_function(name: str, inv: Invocation, failures: list[str]) -> None:
    if name == "floor":
        return check_echo(inv, "cold invocation", failures)
    if name == "authorizer":
        return check_allow(Impl(name, [], check=True), inv, "cold invocation", failures)
    _, status, error_code = FUNCTION_EVENTS[name]
    if inv.kind != "response":
        failures.append(f"cold invocation: expected a response, got {inv.kind}: "
                        f"{inv.result[:300]!r}")
        return
    if status is None:
        return
    try:
        resp = json.loads(inv.result)
        got = resp.get("statusCode")
    except (ValueError, AttributeError):
        resp, got = None, None
    if got != status:
        failures.append(f"cold invocation: expected HTTP {status}, got {got}: "
                        f"{inv.result[:300]!r}")
        return
    if error_code is not None:
        try:
            body = resp.get("body") or ""
            if resp.get("isBase64Encoded"):
                body = base64.b64decode(body).decode()
            code = json.loads(body).get("error")
        except (ValueError, AttributeError, TypeError):
            code = None
        if code != error_code:
            failures.append(f"cold invocation: expected OAuth error {error_code!r}, got "
                            f"{code!r}: {inv.result[:300]!r}")


def cold_start_line(log_path: Path) -> dict | None:
    """The function's `cold start config_us=.. clients_us=.. ready_us=..` (text or JSON log)."""
    try:
        text = ANSI.sub("", log_path.read_text(errors="replace"))
    except OSError:
        return None
    for line in text.splitlines():
        if "cold start" in line:
            fields = {k: int(v) for k, v in COLD_FIELD.findall(line)}
            if len(fields) == 3:
                return fields
    return None


def function_run(name: str, binary: Path, run_idx: int, good: str, moto: Moto,
                 jwks_file: Path, logdir: Path) -> dict:
    """One cold start of one function: init, first response, peak RSS, the answer checked,
    the cold-start line from its log."""
    api = RuntimeApi()
    env = base_env(api.port, moto.url, jwks_file)
    env["AWS_LAMBDA_FUNCTION_NAME"] = f"portcullis-bench-{name}"
    log_path = logdir / f"fn-{name}-run{run_idx}.log"
    rec: dict = {"function": name, "run": run_idx, "failures": [], "warnings": []}
    proc = None
    with open(log_path, "wb") as log:
        try:
            t0 = now_ns()
            cold = api.enqueue(function_event(name, run_idx, good), t0)
            proc = subprocess.Popen([str(binary)], env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
            wait_inv(cold, proc, api, COLD_TIMEOUT_S)
            rec["init_ns"] = api.first_next_ns - t0
            rec["cold_ns"] = cold.done_ns - t0
            check_function(name, cold, rec["failures"])
            rec["peak_rss_kb"] = kb(read_status(proc.pid).get("VmHWM"))
            if api.unexpected:
                rec["failures"].append(f"unexpected Runtime API calls: {api.unexpected[:5]}")
        except RunFailure as e:
            rec["failures"].append(f"run aborted: {e}")
        finally:
            end_run(proc, api)
    rec["cold_start_us"] = cold_start_line(log_path)
    if name in PROFILED and rec["cold_start_us"] is None and "cold_ns" in rec:
        rec["warnings"].append("no `cold start config_us=.. clients_us=.. ready_us=..` line "
                               f"in {log_path.name}")
    if rec["failures"]:
        rec["log_tail"] = log_path.read_text(errors="replace")[-1500:]
    return rec


def zipped_size(path: Path) -> int:
    """The bootstrap zipped as `make build` does (`python -m zipfile -c`: deflate, level 6)."""
    with tempfile.TemporaryDirectory(prefix="portcullis-zip-") as tmp:
        z = Path(tmp) / "bootstrap.zip"
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(path, "bootstrap")
        return z.stat().st_size


def binary_sizes(binaries: dict[str, Path]) -> dict:
    return {name: {"bytes": p.stat().st_size, "zipped": zipped_size(p),
                   "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for name, p in binaries.items()}


def summarise_functions(runs: list[dict], sizes: dict) -> dict:
    out: dict = {}
    for name in ("floor", *FUNCTION_EVENTS):
        mine = [r for r in runs if r["function"] == name]
        if not mine:
            continue
        ok = [r for r in mine if "cold_ns" in r]
        s = {"runs": len(mine), "correct": all(not r["failures"] for r in mine)}
        for key, src, div in (("init_ms", "init_ns", 1e6), ("cold_ms", "cold_ns", 1e6),
                              ("peak_rss_mb", "peak_rss_kb", 1024)):
            v = median([r.get(src) for r in ok])
            s[key] = None if v is None else round(v / div, 3)
        # cold-path profile: the log line's marks (µs since main), and per-run phases, medians
        prof = [r for r in ok if r.get("cold_start_us")]
        s["profiled_runs"] = len(prof)

        def med_ms(f, rs=prof):
            v = median([f(r) for r in rs])
            return None if v is None else round(v / 1e3, 3)

        c = lambda r: r["cold_start_us"]
        s["config_ms"] = med_ms(lambda r: c(r)["config_us"])
        s["clients_ms"] = med_ms(lambda r: c(r)["clients_us"])
        s["ready_ms"] = med_ms(lambda r: c(r)["ready_us"])
        s["phase_clients_ms"] = med_ms(lambda r: c(r)["clients_us"] - c(r)["config_us"])
        s["phase_reads_ms"] = med_ms(lambda r: c(r)["ready_us"] - c(r)["clients_us"])
        # spawn -> main's clock starts, plus ready -> the runtime's first GET next
        s["outside_ms"] = med_ms(lambda r: r["init_ns"] / 1e3 - c(r)["ready_us"])
        s["first_event_ms"] = med_ms(lambda r: (r["cold_ns"] - r["init_ns"]) / 1e3, ok)
        if name in sizes:
            s["bytes"], s["zipped"] = sizes[name]["bytes"], sizes[name]["zipped"]
        out[name] = s
    floor = (out.get("floor") or {}).get("cold_ms")
    for s in out.values():
        for key in ("init_ms", "cold_ms"):
            s[f"{key}_vs_floor"] = (round(s[key] / floor, 3)
                                    if floor and s.get(key) is not None else None)
    return out


def size_target(name: str) -> int | None:
    return None if name == "floor" else ZIP_TARGET_OF.get(name, ZIP_TARGET)


def targets(fs: dict, summary: dict) -> list[dict]:
    """Issue #16's targets, each with what was measured and met True/False (None: not measured)."""
    rows = []
    missing = [n for n in FUNCTION_EVENTS if (fs.get(n) or {}).get("zipped") is None]
    zipped = {n: fs[n]["zipped"] for n in FUNCTION_EVENTS if n not in missing}
    over = [n for n, z in zipped.items() if z > ZIP_TARGET]
    worst = max(zipped, key=zipped.get) if zipped else None
    rows.append({
        "target": f"every function zipped ≤ {ZIP_TARGET / 1e6:g} MB",
        "measured": "; ".join(x for x in (
            worst and f"largest: {worst} {zipped[worst] / 1e6:.2f} MB",
            over and f"over: {', '.join(over)}",
            missing and f"not measured: {', '.join(missing)}") if x),
        "met": None if missing else not over,
    })
    w = zipped.get("whoami")
    rows.append({
        "target": f"whoami zipped ≤ {ZIP_TARGET_OF['whoami'] / 1e6:g} MB",
        "measured": "not measured" if w is None else f"{w / 1e6:.2f} MB ({w:,} bytes)",
        "met": None if w is None else w <= ZIP_TARGET_OF["whoami"],
    })
    a, f = fs.get("authorizer") or {}, fs.get("floor") or {}
    ratio = a.get("cold_ms_vs_floor")
    measured = ("not measured (needs --functions and --floor)" if ratio is None else
                f"{ratio:.2f}× ({fmt(a['cold_ms'])} ms vs the floor's {fmt(f['cold_ms'])} ms, "
                f"{a['runs']} cold starts each, interleaved)")
    p, q = summary.get("portcullis") or {}, summary.get("floor") or {}
    if p.get("cold_ms") and q.get("cold_ms"):
        measured += f"; in the peer loop {p['cold_ms'] / q['cold_ms']:.2f}×"
    rows.append({
        "target": f"authorizer cold invocation ≤ {COLD_TARGET_VS_FLOOR:g}× the floor's",
        "measured": measured,
        "met": None if ratio is None else ratio <= COLD_TARGET_VS_FLOOR,
    })
    return rows


def met_md(met) -> str:
    return "not measured" if met is None else ("**met**" if met else "**not met**")


def targets_md(rows: list[dict]) -> str:
    lines = ["| target (issue #16) | measured | |", "|---|---|---|"]
    lines += [f"| {r['target']} | {r['measured']} | {met_md(r['met'])} |" for r in rows]
    return "\n".join(lines)


def answer_of(name: str) -> str:
    if name == "floor":
        return "echo"
    if name == "authorizer":
        return "Allow policy"
    if name == "rotate-keys":
        return "createSecret done"
    _, status, code = FUNCTION_EVENTS[name]
    return f"HTTP {status}" + (f" `{code}`" if code else "")


def mb(n) -> str:
    return "—" if n is None else f"{n / 1e6:.2f}"


def functions_md(fs: dict) -> str:
    x = lambda v: "—" if v is None else f"{v:.2f}×"
    lines = ["| function | bootstrap MB | zipped MB | ≤ target | init ms | ×floor | "
             "first response ms | ×floor | answer | peak RSS MB | correct |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|---:|---|"]
    for name, s in fs.items():
        t = size_target(name)
        size_ok = ("—" if t is None or s.get("zipped") is None else
                   f"{'yes' if s['zipped'] <= t else '**NO**'} ({t / 1e6:g} MB)")
        label = "**floor** (bare runtime loop)" if name == "floor" else name
        lines.append(f"| {label} | {mb(s.get('bytes'))} | {mb(s.get('zipped'))} | {size_ok} | "
                     f"{fmt(s['init_ms'])} | {x(s['init_ms_vs_floor'])} | {fmt(s['cold_ms'])} | "
                     f"{x(s['cold_ms_vs_floor'])} | {answer_of(name)} | {fmt(s['peak_rss_mb'])} | "
                     f"{'yes' if s['correct'] else '**NO**'} |")
    return "\n".join(lines)


def profile_md(fs: dict) -> str:
    f2 = lambda v: fmt(v, 2)
    lines = ["| function | config | AWS clients | ready | spawn → init | first response | "
             "outside `main` (init − ready) | reads (ready − clients) | the event (response − init) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in fs.items():
        label = "**floor**" if name == "floor" else name
        lines.append(f"| {label} | {f2(s['config_ms'])} | {f2(s['clients_ms'])} | "
                     f"{f2(s['ready_ms'])} | {f2(s['init_ms'])} | {f2(s['cold_ms'])} | "
                     f"{f2(s['outside_ms'])} | {f2(s['phase_reads_ms'])} | "
                     f"{f2(s['first_event_ms'])} |")
    return "\n".join(lines)


def gap_md(fs: dict) -> str | None:
    """The authorizer's cold invocation over the floor's, phase by phase (medians)."""
    a, f = fs.get("authorizer"), fs.get("floor")
    if not a or not f or a.get("cold_ms") is None or f.get("cold_ms") is None \
            or a.get("ready_ms") is None:
        return None
    parts = [("configuration and logging set-up (main → config read)", a["config_ms"]),
             ("the AWS SDK config and clients", a["phase_clients_ms"]),
             ("the two network reads, concurrently (key ring from Secrets Manager, revocation "
              "list from DynamoDB; moto on 127.0.0.1)", a["phase_reads_ms"]),
             ("process start and runtime start beyond the floor's (outside `main` − the floor's "
              "init)", None if a["outside_ms"] is None or f["init_ms"] is None
              else round(a["outside_ms"] - f["init_ms"], 3)),
             ("the first decision beyond the floor's echo (the event − the floor's)",
              None if a["first_event_ms"] is None or f["first_event_ms"] is None
              else round(a["first_event_ms"] - f["first_event_ms"], 3))]
    gap = a["cold_ms"] - f["cold_ms"]
    known = sum(v for _, v in parts if v is not None)
    lines = [f"The authorizer's cold invocation is {fmt(gap, 2)} ms over the floor's "
             f"({fmt(a['cold_ms'], 2)} vs {fmt(f['cold_ms'], 2)} ms; the target allows "
             f"{fmt(f['cold_ms'] * (COLD_TARGET_VS_FLOOR - 1), 2)} ms over). Where it goes, "
             f"medians per phase (they add up to {fmt(known, 2)} ms: medians do not add "
             "exactly):", ""]
    lines += [f"- {what}: {fmt(v, 2)} ms" + (f" ({100 * v / gap:.0f} %)" if v is not None
                                               and gap > 0 else "")
              for what, v in parts]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------
def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarise(name: str, runs: list[dict]) -> dict:
    ok = [r for r in runs if "cold_ns" in r]
    s = {
        "runs": len(runs),
        "runs_measured": len(ok),
        "correct": all(not r["failures"] for r in runs),
        "init_ms": median([r.get("init_ns") for r in ok]),
        "cold_ms": median([r.get("cold_ns") for r in ok]),
        "warm_p50_us": median([r.get("warm_p50_ns") for r in ok]),
        "warm_p99_us": median([r.get("warm_p99_ns") for r in ok]),
        "peak_rss_mb": median([r.get("peak_rss_kb") for r in ok]),
    }
    for k, div in (("init_ms", 1e6), ("cold_ms", 1e6), ("warm_p50_us", 1e3),
                   ("warm_p99_us", 1e3), ("peak_rss_mb", 1024)):
        if s[k] is not None:
            s[k] = round(s[k] / div, 3)
    return s


def ratios(summary: dict) -> dict:
    out = {}
    p = summary.get("portcullis")
    for peer in ("node", "python", "floor"):
        q = summary.get(peer)
        for metric in ("cold_ms", "warm_p50_us", "peak_rss_mb"):
            key = f"portcullis/{peer} {metric}"
            if p and q and p.get(metric) and q.get(metric):
                out[key] = round(p[metric] / q[metric], 4)
            else:
                out[key] = None
    return out


def cmd_out(argv: list[str], cwd: Path | None = None) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              cwd=cwd).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def machine_info() -> dict:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Hardware", "cpu model"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pkg = BENCH / "peers/node/node_modules/aws-jwt-verify/package.json"
    try:
        ajv = json.loads(pkg.read_text())["version"]
    except (OSError, ValueError, KeyError):
        ajv = None
    bpy = str(BENCH / ".venv/bin/python")
    return {
        "nproc": cmd_out(["nproc"]),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "mem_total": next((ln.split(":")[1].strip() for ln in
                           Path("/proc/meminfo").read_text().splitlines()
                           if ln.startswith("MemTotal")), None),
        "versions": {
            "node": cmd_out(["node", "--version"]),
            "python_peer": cmd_out([bpy, "-c", "import platform; print(platform.python_version())"]),
            "aws-jwt-verify": ajv,
            "PyJWT": cmd_out([bpy, "-c", "import jwt; print(jwt.__version__)"]),
            "cryptography_peer": cmd_out([bpy, "-c",
                                          "import cryptography; print(cryptography.__version__)"]),
            "harness_python": platform.python_version(),
        },
    }


def file_info(path: str | None) -> dict | None:
    if not path or not Path(path).is_file():
        return None
    p = Path(path).resolve()
    return {"path": str(p), "bytes": p.stat().st_size, "zipped": zipped_size(p),
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}


def fmt(v, nd=1) -> str:
    return "—" if v is None else f"{v:,.{nd}f}"


def table_md(summary: dict) -> str:
    lines = ["| implementation | init ms | cold invocation ms | warm p50 µs | warm p99 µs | "
             "peak RSS MB | correct |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, s in summary.items():
        correct = ("yes" if s["correct"] else "**NO**") + (" (echo)" if name == "floor" else "")
        lines.append(f"| {name} | {fmt(s['init_ms'])} | {fmt(s['cold_ms'])} | "
                     f"{fmt(s['warm_p50_us'], 0)} | {fmt(s['warm_p99_us'], 0)} | "
                     f"{fmt(s['peak_rss_mb'])} | {correct} |")
    return "\n".join(lines)


RATIO_LABELS = {"cold_ms": "cold invocation", "warm_p50_us": "warm p50", "peak_rss_mb": "peak RSS"}


def ratios_md(r: dict) -> str:
    if all(v is None for v in r.values()):
        return "_No ratios: Portcullis was not measured (no `--portcullis` binary)._"
    lines = ["| ratio (lower is better for Portcullis) | vs Node | vs Python | vs the floor |",
             "|---|---:|---:|---:|"]
    for metric, label in RATIO_LABELS.items():
        cells = []
        for peer in ("node", "python", "floor"):
            v = r.get(f"portcullis/{peer} {metric}")
            cells.append("—" if v is None else f"{v:.3f}× ({1 / v:.1f}× {'less' if metric == 'peak_rss_mb' else 'faster'})" if v < 1 else f"{v:.3f}×")
        lines.append(f"| Portcullis/peer {label} | {cells[0]} | {cells[1]} | {cells[2]} |")
    return "\n".join(lines)


def svg_chart(r: dict) -> str:
    """Horizontal bars on a log scale, growing from parity (1×): left = Portcullis better."""
    import math

    W, H = 900, 380
    left, right, top = 170, 200, 70
    colors = {"node": "#3c873a", "python": "#3572a5"}
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="13">',
           f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
           f'<text x="{W / 2}" y="26" text-anchor="middle" font-size="16" font-weight="bold">'
           'Portcullis / peer ratios (log scale; left of 1× = Portcullis better)</text>']
    vals = [v for k, v in r.items() if v and not k.startswith("portcullis/floor")]
    if not vals:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" fill="#666">'
                   'No Portcullis binary measured yet (bench/run.sh --portcullis PATH)</text>')
        out.append("</svg>")
        return "\n".join(out) + "\n"
    lo = 10 ** math.floor(math.log10(min(vals + [0.1])))
    hi = 10 ** math.ceil(math.log10(max(vals + [10.0])))  # room right of 1× for the labels
    plot_w = W - left - right
    xpos = lambda v: left + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * plot_w
    bottom = H - 60
    # grid: decades, with 2x and 5x minor lines
    d = lo
    while d <= hi * 1.0001:
        for m in (1, 2, 5):
            v = d * m
            if v > hi * 1.0001:
                break
            x = xpos(v)
            parity = abs(v - 1) < 1e-9
            out.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{bottom}" '
                       f'stroke="{"#333" if parity else ("#ccc" if m == 1 else "#eee")}" '
                       f'stroke-width="{1.5 if parity else 1}"/>')
            out.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle" '
                       f'fill="{"#444" if m == 1 else "#999"}">{v:g}×</text>')
        d *= 10
    group_h = (bottom - top) / len(RATIO_LABELS)
    bar_h = group_h * 0.3
    for gi, (metric, label) in enumerate(RATIO_LABELS.items()):
        gy = top + gi * group_h
        out.append(f'<text x="{left - 12}" y="{gy + group_h / 2 + 4:.1f}" text-anchor="end" '
                   f'font-weight="bold">{esc(label)}</text>')
        for bi, peer in enumerate(("node", "python")):
            v = r.get(f"portcullis/{peer} {metric}")
            y = gy + group_h * 0.15 + bi * (bar_h + 4)
            if not v:
                out.append(f'<text x="{xpos(1) + 6:.1f}" y="{y + bar_h * 0.7:.1f}" fill="#999">'
                           f'vs {peer}: not measured</text>')
                continue
            x0, x1 = sorted((xpos(1), xpos(v)))
            out.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 1):.1f}" '
                       f'height="{bar_h:.1f}" fill="{colors[peer]}"/>')
            better = "less" if metric == "peak_rss_mb" else "faster"
            txt = f"vs {peer}: {v:.3f}×" + (f" ({1 / v:.1f}× {better})" if v < 1 else "")
            out.append(f'<text x="{x1 + 6:.1f}" y="{y + bar_h * 0.75:.1f}" '
                       f'fill="#222">{esc(txt)}</text>')
    # legend
    lx = left
    for peer in ("node", "python"):
        out.append(f'<rect x="{lx}" y="{H - 22}" width="12" height="12" fill="{colors[peer]}"/>')
        out.append(f'<text x="{lx + 18}" y="{H - 12}">Portcullis / {peer}</text>')
        lx += 170
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_markdown(results: dict) -> str:
    m = results["machine"]
    v = m["versions"]
    s = results["summary"]
    fs = results.get("functions")
    bad = [n for n, x in s.items() if not x["correct"]]
    bad += [f"function {n}" for n, x in (fs or {}).items() if not x["correct"]]
    parts = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run.sh`, harness `bench/harness.py`) on "
        f"{results['generated_at']}; raw figures in `bench/results/latest.json`. One run "
        "measures the authorizer against the peers and the floor, then every function's release "
        "binary against the floor, interleaved.",
        "",
        f"Machine: {m['cpu_model']}, {m['nproc']} cores, {m['mem_total']}, Linux {m['kernel']} "
        f"({m['arch']}). Load average at start/end: {results['loadavg_start']} / "
        f"{results['loadavg_end']}. The **floor** is `bench/floor`: a bare Rust "
        "`lambda_runtime` loop (current-thread tokio, the workspace's release profile, no "
        "Portcullis code) that answers each event with the event itself — what any Rust Lambda "
        "pays before doing any work.",
        "",
    ]
    if bad:
        parts += [f"**CORRECTNESS FAILURE: {', '.join(bad)} — see `failures` in latest.json; "
                  "their timings mean nothing.**", ""]
    if results.get("targets"):
        parts += [
            "## Targets",
            "",
            targets_md(results["targets"]),
            "",
            "Sizes: each function's bootstrap as `make build ARCH=x86_64` makes it (cargo lambda, "
            f"{m['arch']} Linux, the workspace's release profile), zipped as `make build` zips a "
            "bootstrap (deflate); MB = 10⁶ bytes. Cold invocation: spawn → first response, "
            "medians; the floor and every function alternate in one loop.",
            "",
        ]
        gap = gap_md(fs or {})
        if gap:
            parts += [gap, "", "Per function in [Cold-path profile](#cold-path-profile).", ""]
    parts += [
        "## The authorizer against the peers and the floor",
        "",
        "Portcullis's `authorizer` Lambda against the authorizer a user would otherwise write: "
        f"Node {v['node']} with aws-jwt-verify {v['aws-jwt-verify']}, Python {v['python_peer']} "
        f"with PyJWT {v['PyJWT']} (cryptography {v['cryptography_peer']}). All do the same check "
        "(Bearer JWT, EdDSA/Ed25519 pinned, `kid` from the key set, `iss`, `aud`, `exp`, "
        "`token_use` = `access`) and answer the same REST API TOKEN-authorizer IAM policy. "
        "Each runs as its own process under a local Lambda Runtime API; Portcullis loads its "
        "signing keys from Secrets Manager and its revocation list from DynamoDB (moto on "
        "127.0.0.1), the peers read a local JWKS file and check no revocation. "
        f"{results['params']['runs']} cold starts per implementation (interleaved), "
        f"{results['params']['warm']} warm invocations each; medians over runs.",
        "",
        table_md(s),
        "",
        "- **init**: spawn → first `GET /runtime/invocation/next`.",
        "- **cold invocation**: spawn → first response (the event is queued at spawn).",
        "- **warm p50/p99**: event delivered (the function's `GET next` answered) → response "
        "received, one invocation in flight, per-run percentiles, median over runs. Includes the "
        "local HTTP round trip and the harness's Runtime API parsing (Python), the same for "
        "everyone"
        + (" and is what the `floor` row (a bare Rust echo loop) measures" if "floor" in s else "")
        + ".",
        "- **peak RSS**: `VmHWM` of the function process after the warm invocations "
        "(the process itself, not a wrapper).",
        "",
        ratios_md(results["ratios"]),
        "",
        "![Portcullis / peer ratios](benchmarks.svg)",
        "",
        "Correctness is checked before speed: every answer of every run must be exactly the "
        "expected Allow policy, a garbage token must get the `Unauthorized` error on every run, and "
        f"on the first run {len(results['negative_cases'])} bad tokens "
        f"({', '.join(results['negative_cases'])}) must all get it too; the floor must echo "
        "every event.",
        "",
        "Timings on a shared 2-core machine are noisy; the bench reports, it never asserts.",
        "",
    ]
    if fs:
        runs = max(x["runs"] for x in fs.values())
        parts += [
            "## Every function against the floor",
            "",
            f"Each function's release binary and the floor, {runs} cold starts each "
            "(interleaved: floor, authorizer, login, …, floor, …), the same Runtime API, moto and "
            "environment, medians. ×floor divides by the floor's cold invocation (spawn → first "
            "response) in this loop. The event is the function's own file in `events/` (login "
            "with an unknown email, so it runs the dummy argon2id verify; refresh, logout and "
            "validate-key with credentials the bench never issued; oauth a `POST /oauth/token` "
            "with a made-up Basic client against the empty clients table), checked for the exact "
            "status (and oauth for `invalid_client`); the authorizer and the floor get the bench "
            "TOKEN event. *init* (spawn → first `GET next`) is what Lambda reports as Init "
            "Duration. The first response adds each function's own work: login two emulator "
            "round trips and the dummy argon2id verify (m=19 MiB, t=2); refresh and logout one "
            "re-read of the key ring, because the sample tokens name a `kid` the bench never "
            "issued (the kid-miss reload, at most one per 10 s); validate-key one GetItem; oauth "
            "the client GetItem and the per-IP rate-limit write; rotate-keys a whole "
            "`createSecret` step (a new key, several Secrets Manager calls).",
            "",
            functions_md(fs),
            "",
            "## Cold-path profile",
            "",
            "Where each cold start goes, ms, medians over the same runs. *config*, *AWS clients* "
            "and *ready* are the function's own `cold start config_us=… clients_us=… ready_us=…` "
            "log line (time since its `main` began: configuration read, AWS SDK config and "
            "clients built, network reads done — the key ring, and for the authorizer the "
            "revocation list too); whoami and rotate-keys read nothing before the first event and "
            "log no such line. *spawn → init* and *first response* are the harness's clock. "
            "*outside `main`* = init − ready: process start (exec, dynamic loader, the tokio "
            "runtime) before the function's clock starts, plus the runtime's first `GET next` "
            "after it; for the floor, all of init. *the event* = first response − init: the "
            "first event's own work.",
            "",
            profile_md(fs),
            "",
        ]
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--portcullis", help="path to Portcullis's authorizer bootstrap binary")
    ap.add_argument("--floor", help="path to the bare lambda_runtime echo binary (bench/floor): "
                    "run with the peers, and with every function when --functions is given")
    ap.add_argument("--runs", type=int, default=10, help="cold starts per implementation")
    ap.add_argument("--warm", type=int, default=200, help="warm invocations per cold start")
    ap.add_argument("--functions", help="folder with every function's release binary "
                    "(target/release): measures each one's size and cold start against the "
                    "floor's (--floor)")
    ap.add_argument("--function-runs", type=int, default=10,
                    help="cold starts per function (and of the floor, interleaved with them)")
    ap.add_argument("--results", default=str(RESULTS / "latest.json"))
    ap.add_argument("--docs", default=str(DOCS), help="folder for benchmarks.md / .svg")
    args = ap.parse_args()
    if args.runs < 1 or args.warm < 0 or args.function_runs < 1:
        ap.error("--runs and --function-runs must be >= 1, --warm >= 0")

    impls = implementations(args)
    if not impls:
        print("bench: nothing to run", file=sys.stderr)
        return 1
    load_start = os.getloadavg()
    nproc = os.cpu_count() or 1
    if load_start[0] > 0.5 * nproc:
        print(f"bench: WARNING load average {load_start[0]:.2f} on {nproc} cores: "
              "timings will be noisy", file=sys.stderr)

    # the function loop: the floor first, then every function, alternating run by run
    fn_binaries: dict[str, Path] = {}
    if args.functions:
        if args.floor and "floor" in [i.name for i in impls]:
            fn_binaries["floor"] = Path(args.floor).resolve()
        else:
            print("bench: no --floor: the functions are not compared with the floor",
                  file=sys.stderr)
        for name in FUNCTION_EVENTS:
            binary = Path(args.functions).resolve() / name
            if binary.is_file() and os.access(binary, os.X_OK):
                fn_binaries[name] = binary
            else:
                print(f"bench: {binary} missing; skipping {name}", file=sys.stderr)
    sizes = binary_sizes(fn_binaries)

    work = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    keys = Keys()
    jwks_file = work / "jwks.json"
    jwks_file.write_text(json.dumps(keys.public_jwks()))
    good, bad = make_tokens(keys)
    print(f"bench: moto + keys (kid {keys.kid}); logs in {work}")
    moto = Moto(work)
    all_runs: list[dict] = []
    fn_runs: list[dict] = []
    try:
        moto.provision(keys)
        for run_idx in range(args.runs):
            for impl in impls:
                rec = one_run(impl, run_idx, args.warm, negatives=(run_idx == 0), good=good,
                              bad=bad, moto=moto, jwks_file=jwks_file, logdir=work)
                all_runs.append(rec)
                status = "ok" if not rec["failures"] else "FAILED"
                cold = rec.get("cold_ns")
                print(f"  run {run_idx + 1}/{args.runs} {impl.name:<10} "
                      f"cold {fmt(cold / 1e6 if cold else None)} ms  "
                      f"p50 {fmt((rec.get('warm_p50_ns') or 0) / 1e3, 0)} µs  "
                      f"rss {fmt((rec.get('peak_rss_kb') or 0) / 1024)} MB  {status}",
                      flush=True)
                for f in rec["failures"][:3]:
                    print(f"    FAIL {f[:300]}", flush=True)
        for run_idx in range(args.function_runs if args.functions else 0):
            for name, binary in fn_binaries.items():
                rec = function_run(name, binary, run_idx, good, moto, jwks_file, work)
                fn_runs.append(rec)
                cold = rec.get("cold_ns")
                ready = (rec.get("cold_start_us") or {}).get("ready_us")
                print(f"  function run {run_idx + 1}/{args.function_runs} {name:<12} "
                      f"init {fmt((rec.get('init_ns') or 0) / 1e6)} ms  "
                      f"first response {fmt(cold / 1e6 if cold else None)} ms  "
                      f"ready {fmt(ready / 1e3 if ready is not None else None)} ms  "
                      f"{'ok' if not rec['failures'] else 'FAILED'}", flush=True)
                for f in rec["failures"][:3]:
                    print(f"    FAIL {f[:300]}", flush=True)
    finally:
        moto.stop()

    summary = {impl.name: summarise(impl.name, [r for r in all_runs if r["impl"] == impl.name])
               for impl in impls}
    functions = summarise_functions(fn_runs, sizes) if fn_runs else None
    results = {
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "params": {"runs": args.runs, "warm": args.warm, "order": [i.name for i in impls],
                   "function_runs": args.function_runs if fn_runs else 0,
                   "function_order": list(fn_binaries) if fn_runs else []},
        "machine": machine_info(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "binaries": {"portcullis": file_info(args.portcullis), "floor": file_info(args.floor)},
        "summary": summary,
        "ratios": ratios(summary),
        "expected_allow": EXPECTED_ALLOW,
        "negative_cases": [n for n, _ in bad],
        "failures": {**{r["impl"] + f"#{r['run']}": r["failures"]
                        for r in all_runs if r["failures"]},
                     **{f"function {r['function']}#{r['run']}": r["failures"]
                        for r in fn_runs if r["failures"]}},
        "warnings": {**{r["impl"] + f"#{r['run']}": r["warnings"]
                        for r in all_runs if r["warnings"]},
                     **{f"function {r['function']}#{r['run']}": r["warnings"]
                        for r in fn_runs if r["warnings"]}},
        "runs": all_runs,
        "functions": functions,
        "targets": targets(functions, summary) if functions else None,
        "sizes": sizes,
        "function_runs": fn_runs,
        "units": {"*_ns": "nanoseconds (perf_counter_ns)", "*_kb": "KiB from /proc/<pid>/status",
                  "summary": "medians over runs; ms, µs, MiB as named"},
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "benchmarks.md").write_text(write_markdown(results))
    (docs / "benchmarks.svg").write_text(svg_chart(results["ratios"]))

    print()
    print(table_md(summary))
    print()
    print(ratios_md(results["ratios"]))
    print()
    print(f"bench: wrote {out}, {docs / 'benchmarks.md'}, {docs / 'benchmarks.svg'}")
    if results["functions"]:
        print()
        print(functions_md(results["functions"]))
        print()
        print(profile_md(results["functions"]))
        print()
        print(targets_md(results["targets"]))
        gap = gap_md(results["functions"])
        if gap:
            print()
            print(gap)
        print()
    failed = {n for n, s in summary.items() if not s["correct"]}
    failed |= {f"function {r['function']}" for r in fn_runs if r["failures"]}
    for r in fn_runs:
        if r["failures"]:
            print(f"bench: function {r['function']}#{r['run']}: {r['failures'][0][:300]}\n"
                  f"{r.get('log_tail', '')}", file=sys.stderr)
            break
    for k, w in results["warnings"].items():
        for x in w[:3]:
            print(f"bench: warning {k}: {x}", file=sys.stderr)
    if failed:
        print("\n" + "!" * 72, file=sys.stderr)
        print(f"bench: CORRECTNESS FAILURE in {', '.join(sorted(failed))}:", file=sys.stderr)
        shown = 0
        for k, fs in results["failures"].items():
            for f in fs:
                if shown < 12:
                    print(f"  {k}: {f[:300]}", file=sys.stderr)
                shown += 1
        if shown > 12:
            print(f"  ... {shown - 12} more in {out} (\"failures\")", file=sys.stderr)
        for r in all_runs:
            if r["failures"] and r.get("log_tail"):
                print(f"--- {r['impl']}#{r['run']} log tail ({r['log']}) ---\n{r['log_tail']}",
                      file=sys.stderr)
                break
        print("!" * 72, file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

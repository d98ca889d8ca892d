#!/usr/bin/env python3
"""Portcullis benchmark harness: Portcullis's `authorizer` Lambda vs the peer authorizers users
would otherwise write (Node 20 + aws-jwt-verify, Python 3.11 + PyJWT), each run as a real process
under a local Lambda Runtime API served here.

Per cold start (one spawned process): init (spawn -> first GET next), cold invocation
(spawn -> first response; the first event is queued at spawn), N warm invocations (enqueue ->
response; p50/p99), peak RSS (VmHWM just before the kill). Every answer is checked: the exact
Allow policy for the bench token, the Unauthorized error for bad tokens. Runs alternate
implementations (A,B,C,A,B,C,...); medians over runs are reported. Timings are printed, never
asserted; a correctness failure makes the exit status 1.

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
            impls.append(Impl("floor", [str(p)], check=False))
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


def check_allow(impl: Impl, inv: Invocation, what: str, failures: list[str]) -> None:
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
# Every function's cold start (--functions DIR)
# ---------------------------------------------------------------------------------------------
# name -> (event file under events/, expected HTTP status; None = a plain Lambda event)
FUNCTION_EVENTS = {
    "authorizer": (None, None),      # the reference: the bench TOKEN event, the Allow policy
    "login": ("login.json", 401),    # unknown email: rate limit + user read + dummy argon2id
    "refresh": ("refresh.json", 401),
    "logout": ("logout.json", 401),
    "validate-key": ("validate-key.json", 401),
    "whoami": ("whoami.json", 200),
    "jwks": ("jwks.json", 200),
    "rotate-keys": (None, None),     # a createSecret step on the bench secret
}


def function_event(name: str, run_idx: int, good: str) -> bytes:
    if name == "authorizer":
        return event_for("Bearer " + good)
    if name == "rotate-keys":
        return json.dumps({"SecretId": SECRET_ID, "ClientRequestToken": str(uuid.uuid4()),
                           "Step": "createSecret"}).encode()
    event = json.loads((ROOT / "events" / FUNCTION_EVENTS[name][0]).read_text())
    # a fresh client address (and email) per run: the login rate limit must not turn the
    # expected 401 into a 429
    event["requestContext"]["http"]["sourceIp"] = f"198.51.100.{run_idx + 1}"
    if name == "login":
        event["body"] = json.dumps({"email": f"nobody-{run_idx}@bench.example",
                                    "password": "Not-the-passw0rd"})
    return json.dumps(event).encode()


def check_function(name: str, inv: Invocation, failures: list[str]) -> None:
    status = FUNCTION_EVENTS[name][1]
    if name == "authorizer":
        return check_allow(Impl(name, [], check=True), inv, "cold invocation", failures)
    if inv.kind != "response":
        failures.append(f"cold invocation: expected a response, got {inv.kind}: "
                        f"{inv.result[:300]!r}")
        return
    if status is None:
        return
    try:
        got = json.loads(inv.result).get("statusCode")
    except (ValueError, AttributeError):
        got = None
    if got != status:
        failures.append(f"cold invocation: expected HTTP {status}, got {got}: "
                        f"{inv.result[:300]!r}")


def function_run(name: str, binary: Path, run_idx: int, good: str, moto: Moto,
                 jwks_file: Path, logdir: Path) -> dict:
    """One cold start of one function: init, first response, peak RSS, the answer checked."""
    api = RuntimeApi()
    env = base_env(api.port, moto.url, jwks_file)
    env["AWS_LAMBDA_FUNCTION_NAME"] = f"portcullis-bench-{name}"
    log_path = logdir / f"fn-{name}-run{run_idx}.log"
    rec: dict = {"function": name, "run": run_idx, "failures": []}
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
        except RunFailure as e:
            rec["failures"].append(f"run aborted: {e}")
        finally:
            end_run(proc, api)
    if rec["failures"]:
        rec["log_tail"] = log_path.read_text(errors="replace")[-1500:]
    return rec


def summarise_functions(runs: list[dict]) -> dict:
    out: dict = {}
    for name in FUNCTION_EVENTS:
        mine = [r for r in runs if r["function"] == name]
        if not mine:
            continue
        ok = [r for r in mine if "cold_ns" in r]
        s = {"runs": len(mine), "correct": all(not r["failures"] for r in mine)}
        for key, src, div in (("init_ms", "init_ns", 1e6), ("cold_ms", "cold_ns", 1e6),
                              ("peak_rss_mb", "peak_rss_kb", 1024)):
            v = median([r.get(src) for r in ok])
            s[key] = None if v is None else round(v / div, 3)
        out[name] = s
    ref = out.get("authorizer")
    for s in out.values():
        for key in ("init_ms", "cold_ms"):
            ok = ref and ref.get(key) and s.get(key) is not None
            s[f"{key}_vs_authorizer"] = round(s[key] / ref[key], 3) if ok else None
    return out


def functions_md(fs: dict) -> str:
    lines = ["| function | init ms | ×authorizer | first response ms | ×authorizer | answer | "
             "peak RSS MB | correct |",
             "|---|---:|---:|---:|---:|---|---:|---|"]
    for name, s in fs.items():
        status = FUNCTION_EVENTS[name][1]
        answer = ("Allow policy" if name == "authorizer" else
                  "createSecret done" if name == "rotate-keys" else f"HTTP {status}")
        x = lambda v: "—" if v is None else f"{v:.2f}×"
        lines.append(f"| {name} | {fmt(s['init_ms'])} | {x(s['init_ms_vs_authorizer'])} | "
                     f"{fmt(s['cold_ms'])} | {x(s['cold_ms_vs_authorizer'])} | {answer} | "
                     f"{fmt(s['peak_rss_mb'])} | {'yes' if s['correct'] else '**NO**'} |")
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
    for peer in ("node", "python"):
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
    return {"path": str(p), "bytes": p.stat().st_size,
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}


def fmt(v, nd=1) -> str:
    return "—" if v is None else f"{v:,.{nd}f}"


def table_md(summary: dict) -> str:
    lines = ["| implementation | init ms | cold invocation ms | warm p50 µs | warm p99 µs | "
             "peak RSS MB | correct |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, s in summary.items():
        correct = "n/a (not checked)" if name == "floor" else ("yes" if s["correct"] else "**NO**")
        lines.append(f"| {name} | {fmt(s['init_ms'])} | {fmt(s['cold_ms'])} | "
                     f"{fmt(s['warm_p50_us'], 0)} | {fmt(s['warm_p99_us'], 0)} | "
                     f"{fmt(s['peak_rss_mb'])} | {correct} |")
    return "\n".join(lines)


RATIO_LABELS = {"cold_ms": "cold invocation", "warm_p50_us": "warm p50", "peak_rss_mb": "peak RSS"}


def ratios_md(r: dict) -> str:
    if all(v is None for v in r.values()):
        return "_No ratios: Portcullis was not measured (no `--portcullis` binary)._"
    lines = ["| ratio (lower is better for Portcullis) | vs Node | vs Python |", "|---|---:|---:|"]
    for metric, label in RATIO_LABELS.items():
        cells = []
        for peer in ("node", "python"):
            v = r.get(f"portcullis/{peer} {metric}")
            cells.append("—" if v is None else f"{v:.3f}× ({1 / v:.1f}× {'less' if metric == 'peak_rss_mb' else 'faster'})" if v < 1 else f"{v:.3f}×")
        lines.append(f"| Portcullis/peer {label} | {cells[0]} | {cells[1]} |")
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
    vals = [v for v in r.values() if v]
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
    bad = [n for n, x in s.items() if n != "floor" and not x["correct"]]
    parts = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run.sh`, harness `bench/harness.py`) on "
        f"{results['generated_at']}; raw figures in `bench/results/latest.json`.",
        "",
        "Portcullis's `authorizer` Lambda against the authorizer a user would otherwise write: "
        f"Node {v['node']} with aws-jwt-verify {v['aws-jwt-verify']}, Python {v['python_peer']} "
        f"with PyJWT {v['PyJWT']} (cryptography {v['cryptography_peer']}). All do the same check "
        "(Bearer JWT, EdDSA/Ed25519 pinned, `kid` from the key set, `iss`, `aud`, `exp`, "
        "`token_use` = `access`) and answer the same REST API TOKEN-authorizer IAM policy. "
        "Each runs as its own process under a local Lambda Runtime API; Portcullis loads its "
        "signing keys from Secrets Manager (moto on 127.0.0.1), the peers from a local JWKS file.",
        "",
        f"Machine: {m['cpu_model']}, {m['nproc']} cores, {m['mem_total']}, Linux {m['kernel']} "
        f"({m['arch']}). Load average at start/end: {results['loadavg_start']} / "
        f"{results['loadavg_end']}. {results['params']['runs']} cold starts per implementation "
        f"(interleaved), {results['params']['warm']} warm invocations each; medians over runs.",
        "",
    ]
    if bad:
        parts += [f"**CORRECTNESS FAILURE: {', '.join(bad)} — see `failures` in latest.json; "
                  "their timings mean nothing.**", ""]
    parts += [
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
        "## Ratios",
        "",
        ratios_md(results["ratios"]),
        "",
        "![Portcullis / peer ratios](benchmarks.svg)",
        "",
        "Correctness is checked before speed: every answer of every run must be exactly the "
        "expected Allow policy, a garbage token must get the `Unauthorized` error on every run, and "
        f"on the first run {len(results['negative_cases'])} bad tokens "
        f"({', '.join(results['negative_cases'])}) must all get it too.",
        "",
        "Timings on a shared 2-core machine are noisy; the bench reports, it never asserts.",
        "",
    ]
    fs = results.get("functions")
    if fs:
        runs = max(x["runs"] for x in fs.values())
        parts += [
            "## Every function's cold start",
            "",
            f"Each function's release binary, {runs} cold starts each (interleaved), the same "
            "Runtime API, moto and environment, medians. The event is the function's own file "
            "in `events/` (login with an unknown email, so it runs the dummy argon2id verify; "
            "refresh, logout and validate-key with credentials the bench never issued), "
            "checked for the exact status. *init* (spawn → first `GET next`) is what Lambda "
            "reports as Init Duration: configuration, clients and, except for whoami and "
            "rotate-keys, the key ring from Secrets Manager; ×authorizer compares with the "
            "authorizer measured in the same loop. The first response adds each function's own "
            "work: login two emulator round trips and the dummy argon2id verify "
            "(m=19 MiB, t=2); refresh and logout one re-read of the key ring, because the "
            "sample tokens name a `kid` the bench never issued (the kid-miss reload, at most "
            "one per 10 s); validate-key one GetItem; rotate-keys a whole `createSecret` step "
            "(a new key, several Secrets Manager calls).",
            "",
            functions_md(fs),
            "",
        ]
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--portcullis", help="path to Portcullis's authorizer bootstrap binary")
    ap.add_argument("--floor", help="path to a bare lambda_runtime echo binary (not checked)")
    ap.add_argument("--runs", type=int, default=10, help="cold starts per implementation")
    ap.add_argument("--warm", type=int, default=200, help="warm invocations per cold start")
    ap.add_argument("--functions", help="folder with every function's release binary "
                    "(target/release): measures each one's cold start against the authorizer's")
    ap.add_argument("--function-runs", type=int, default=5, help="cold starts per function")
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
            for name in FUNCTION_EVENTS:
                binary = Path(args.functions).resolve() / name
                if not binary.is_file():
                    if run_idx == 0:
                        print(f"bench: {binary} missing; skipping {name}", file=sys.stderr)
                    continue
                rec = function_run(name, binary, run_idx, good, moto, jwks_file, work)
                fn_runs.append(rec)
                cold = rec.get("cold_ns")
                print(f"  function run {run_idx + 1}/{args.function_runs} {name:<12} "
                      f"init {fmt((rec.get('init_ns') or 0) / 1e6)} ms  "
                      f"first response {fmt(cold / 1e6 if cold else None)} ms  "
                      f"{'ok' if not rec['failures'] else 'FAILED'}", flush=True)
                for f in rec["failures"][:3]:
                    print(f"    FAIL {f[:300]}", flush=True)
    finally:
        moto.stop()

    summary = {impl.name: summarise(impl.name, [r for r in all_runs if r["impl"] == impl.name])
               for impl in impls}
    results = {
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "params": {"runs": args.runs, "warm": args.warm, "order": [i.name for i in impls]},
        "machine": machine_info(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "binaries": {"portcullis": file_info(args.portcullis), "floor": file_info(args.floor)},
        "summary": summary,
        "ratios": ratios(summary),
        "expected_allow": EXPECTED_ALLOW,
        "negative_cases": [n for n, _ in bad],
        "failures": {r["impl"] + f"#{r['run']}": r["failures"] for r in all_runs if r["failures"]},
        "warnings": {r["impl"] + f"#{r['run']}": r["warnings"] for r in all_runs if r["warnings"]},
        "runs": all_runs,
        "functions": summarise_functions(fn_runs) if fn_runs else None,
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
    failed = {n for n, s in summary.items() if n != "floor" and not s["correct"]}
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

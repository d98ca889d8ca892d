#!/usr/bin/env python3
"""Account enumeration benchmark (issue #14): can a caller tell a known address from an
unknown one by the answer or the time of `POST /auth/register` and `POST /auth/password-reset`?

Run inside the local stack (it reads PORTCULLIS_TEST_WATCH_URL, PORTCULLIS_TEST_ENV_FILE and,
if set, PORTCULLIS_TEST_SECRETS_FILE):

    PATH="$PWD/.venv/bin:$PATH" scripts/with-stack.sh .venv/bin/python bench/enumeration.py

For each operation it sends TRIES requests for a known address and TRIES for an unknown one
through the `account` function URL of `cargo lambda watch` (plain HTTP, 127.0.0.1), one at a
time, the four kinds interleaved (the order rotates each round), after a few discarded warm-up
rounds. Known addresses are accounts made first with the CLI (target/debug/portcullis, the
stack's environment), one per try, so the per-address limit (3 per 15 min per operation) never
trips; each known account is used once for register and once for reset. Unknown addresses are
fresh unique addresses. Time is client-side: request sent -> whole body read.

Prints a Markdown table (median, p90, min, max per kind; the relative difference of the
medians, known vs unknown; whether every status, body and response header set was identical)
and the target (|difference of medians| < 10 %). A benchmark: it reports, it never asserts; it
exits non-zero only when it cannot run (no stack, an account it cannot create, a request that
does not answer).

Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Bench-enumeration-passphrase-14"
WARMUP = 3
TARGET = 0.10


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run through scripts/with-stack.sh (see the docstring)")
    return value


def stack_env() -> dict[str, str]:
    """The functions' environment (the env file with-stack.sh wrote), as tests/lib.rs reads it."""
    out = {}
    for line in Path(need("PORTCULLIS_TEST_ENV_FILE")).read_text().splitlines():
        if line.lstrip().startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def remember_secret(secret: str) -> None:
    """Let with-stack.sh's log scan look for the bench password too."""
    path = os.environ.get("PORTCULLIS_TEST_SECRETS_FILE")
    if path:
        with open(path, "a") as f:
            f.write(secret + "\n")


def unique_email(tag: str) -> str:
    return f"bench-{tag}-{uuid.uuid4().hex[:20]}@example.com"


def create_account(env: dict[str, str], email: str) -> None:
    cli = ROOT / "target" / "debug" / "portcullis"
    proc = subprocess.run(
        [str(cli), "user", "create", "--email", email, "--role", "user"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    if proc.returncode != 0:
        sys.exit(f"portcullis user create failed: {proc.stderr.strip()}")


def post(url: str, body: dict) -> tuple[float, tuple]:
    """(milliseconds, what an observer sees: status, body bytes, headers but Date)."""
    data = json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"content-type": "application/json"}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            status, headers = resp.status, resp.headers
    except urllib.error.HTTPError as e:
        raw = e.read()
        status, headers = e.code, e.headers
    ms = (time.perf_counter() - started) * 1000
    seen = tuple(sorted((k.lower(), v) for k, v in headers.items() if k.lower() != "date"))
    return ms, (status, raw, seen)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{model or platform.processor() or 'unknown CPU'}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()} ({platform.machine()}); load average {load}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=50, help="requests per kind (50)")
    args = parser.parse_args()
    tries = args.tries

    base = need("PORTCULLIS_TEST_WATCH_URL").rstrip("/") + "/lambda-url/account/"
    env = stack_env()
    floor_ms = env.get("ACCOUNT_RESPONSE_FLOOR_MS", "400 (default)")
    remember_secret(PASSWORD)

    # One known account per try (and per warm-up round), made up front, two at a time.
    known = [unique_email("known") for _ in range(tries + WARMUP)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda e: create_account(env, e), known))
    print(
        f"made {len(known)} known accounts in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )

    ops = {
        "register": lambda email: post(
            base + "auth/register", {"email": email, "password": PASSWORD}
        ),
        "reset-request": lambda email: post(base + "auth/password-reset", {"email": email}),
    }
    kinds = [(op, k) for op in ops for k in ("known", "unknown")]
    times: dict[tuple[str, str], list[float]] = {kind: [] for kind in kinds}
    answers: dict[str, set] = {op: set() for op in ops}
    unknown_used: dict[str, list[str]] = {op: [] for op in ops}

    started = time.perf_counter()
    for round_no in range(WARMUP + tries):
        order = kinds[round_no % 4 :] + kinds[: round_no % 4]
        for op, k in order:
            email = known[round_no] if k == "known" else unique_email("unknown")
            ms, seen = ops[op](email)
            if round_no < WARMUP:
                continue
            times[(op, k)].append(ms)
            if k == "unknown":
                unknown_used[op].append(email)
            answers[op].add(seen)
    print(
        f"{4 * (WARMUP + tries)} requests in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )

    # Proof that the paths differed where they may: what SES "sent" to each kind of address.
    sent = json.load(
        urllib.request.urlopen(need("PORTCULLIS_TEST_AWS_ENDPOINT") + "/_test/ses/messages")
    )["messages"]
    subjects: dict[str, list[str]] = {}
    for m in sent:
        for to in m["destinations"].get("ToAddresses", []):
            subjects.setdefault(to, []).append(m["subject"])
    measured_known = known[WARMUP:]
    notices = sum(
        any(s.startswith("Someone tried to register") for s in subjects.get(e, []))
        for e in measured_known
    )
    resets = sum(
        any(s.startswith("Reset your") for s in subjects.get(e, [])) for e in measured_known
    )
    verifications = sum(
        any(s.startswith("Confirm your email") for s in subjects.get(e, []))
        for e in unknown_used["register"]
    )
    reset_unknown_mail = sum(len(subjects.get(e, [])) for e in unknown_used["reset-request"])

    when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    print(f"Run {when} on {machine()}.")
    print(
        f"{tries} requests per kind ({WARMUP} warm-up rounds discarded), one at a time, the four "
        "kinds interleaved, through the `account` function URL of `cargo lambda watch` "
        f"(debug build, plain HTTP on 127.0.0.1, moto for DynamoDB and SES); "
        f"ACCOUNT_RESPONSE_FLOOR_MS={floor_ms}, PASSWORD_HASH_PROFILE="
        f"{env.get('PASSWORD_HASH_PROFILE', '?')}. Milliseconds, client-side (sent -> body read)."
    )
    print()
    print(
        "| operation | address | median | p90 | min | max | Δ median (known vs unknown) "
        "| status + body + headers identical | < 10 % |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    met_all = True
    for op in ops:
        k_med = statistics.median(times[(op, "known")])
        u_med = statistics.median(times[(op, "unknown")])
        diff = (k_med - u_med) / u_med
        identical = len(answers[op]) == 1
        (status, raw, _), *_ = answers[op]
        met = abs(diff) < TARGET
        met_all &= met and identical
        same = (
            f"yes ({status}, {len(raw)} bytes)"
            if identical
            else f"**NO**: {len(answers[op])} distinct answers"
        )
        for k in ("known", "unknown"):
            t = times[(op, k)]
            cells = [op, k] if k == "known" else ["", k]
            cells += [f"{x:.1f}" for x in (statistics.median(t), p90(t), min(t), max(t))]
            if k == "known":
                cells += [f"{diff * 100:+.2f} %", same, "met" if met else "**not met**"]
            else:
                cells += ["", "", ""]
            print("| " + " | ".join(cells) + " |")
    print()
    for op in ops:
        if len(answers[op]) > 1:
            print(f"{op}: distinct answers:")
            for status, raw, _ in answers[op]:
                print(f"  {status} {raw[:200]!r}")
    print(
        f"Mail SES accepted (the paths did differ): known addresses {notices}/{tries} "
        f"\"someone tried to register\" notices and {resets}/{tries} reset links; unknown "
        f"addresses {verifications}/{tries} verification links (register) and "
        f"{reset_unknown_mail} mails to the reset-request ones (none expected)."
    )
    print()
    print(f"Target |Δ median| < 10 % with identical answers: {'met' if met_all else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

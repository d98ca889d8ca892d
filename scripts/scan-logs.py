#!/usr/bin/env python3
"""No secrets in logs: fail if any secret the test suite used appears in a log file.

usage:
  scan-logs.py --secrets FILE [--endpoint URL --env-file FILE] LOG...
  scan-logs.py --self-test

The secrets are the lines of FILE (what the tests passed to `remember_secret`: passwords,
access and refresh tokens, API keys) plus, with --endpoint, the private members of every JWK
held in the emulator's Secrets Manager (every version of every secret, which must include the
signing secret named by SIGNING_KEYS_SECRET_ID in --env-file). Secrets shorter than 8
characters are ignored. Each LOG is searched for every secret; a hit is reported by kind,
file and line number -- never by value. Exit status: 0 clean, 1 a secret was found, 2 the
scan could not run.

Standard library only, plus boto3 for --endpoint.
"""

import argparse
import base64
import binascii
import json
import os
import sys
import tempfile

MIN_LENGTH = 8
# JWK members that are private key material (RFC 7518: EC/OKP `d`, oct `k`, RSA's CRT).
PRIVATE_MEMBERS = ("d", "k", "p", "q", "dp", "dq", "qi")
API_KEY_PREFIX = "ak_"
MAX_LINES_REPORTED = 5


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_kind(text):
    """"access token" / "refresh token" / "token" for a JWT, else None."""
    parts = text.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or "alg" not in header:
        return None
    use = claims.get("token_use") if isinstance(claims, dict) else None
    return f"{use} token" if use in ("access", "refresh") else "token"


def classify(secret):
    """The needles (kind, text) one remembered secret stands for."""
    kind = token_kind(secret)
    if kind:
        return [(kind, secret)]
    if secret.startswith(API_KEY_PREFIX):
        needles = [("API key", secret)]
        # ak_<22-char id>_<secret part>: the id is public, the part after it is not.
        rest = secret[len(API_KEY_PREFIX):]
        if len(rest) > 23 and rest[22] == "_":
            needles.append(("API key (secret part)", rest[23:]))
        return needles
    return [("password", secret)]


def remembered(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []  # no test remembered anything
    needles = []
    for line in dict.fromkeys(lines):  # unique, in order
        needles.extend(classify(line))
    return needles


def jwk_needles(value, where):
    """Private JWK members found anywhere in a parsed secret, in the forms a log might show."""
    out = []
    if isinstance(value, dict):
        if "kty" in value:
            for member in PRIVATE_MEMBERS:
                text = value.get(member)
                if isinstance(text, str) and text:
                    kind = f"signing key material (JWK `{member}`, {where})"
                    out.append((kind, text))
                    try:
                        raw = b64url_decode(text)
                    except (ValueError, binascii.Error):
                        continue
                    out.append((kind + " as base64", base64.b64encode(raw).decode()))
                    out.append((kind + " as hex", raw.hex()))
        for v in value.values():
            out.extend(jwk_needles(v, where))
    elif isinstance(value, list):
        for v in value:
            out.extend(jwk_needles(v, where))
    return out


def fail(message):
    print(f"scan-logs: {message}", file=sys.stderr)
    sys.exit(2)


def env_value(env_file, name):
    with open(env_file, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep and key.strip() == name:
                return value.strip()
    fail(f"{name} is not in {env_file}")


def emulator_needles(endpoint, env_file):
    """Private JWK members of every version of every secret in the emulator."""
    import boto3  # only here: --self-test needs nothing but the standard library

    client = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    signing_id = env_value(env_file, "SIGNING_KEYS_SECRET_ID")
    names = []
    for page in client.get_paginator("list_secrets").paginate():
        names.extend(s["Name"] for s in page["SecretList"])
    if signing_id not in names:
        fail(f"the signing secret {signing_id!r} is not in the emulator")
    needles = []
    for name in names:
        where = "the functions' signing secret" if name == signing_id else "a test's secret"
        versions = client.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)
        for version in versions.get("Versions", []):
            value = client.get_secret_value(SecretId=name, VersionId=version["VersionId"])
            try:
                parsed = json.loads(value.get("SecretString") or "null")
            except ValueError:
                continue
            needles.extend(jwk_needles(parsed, where))
    if not any(where_is_signing(k) for k, _ in needles):
        fail(f"no private key material found in {signing_id!r}")
    return needles


def where_is_signing(kind):
    return "the functions' signing secret" in kind


def scan(needles, logs, out):
    """Search every log for every needle; report hits by kind, file and line. Returns 0 or 1."""
    needles = [(k, n) for k, n in needles if len(n) >= MIN_LENGTH]
    needles = list(dict.fromkeys(needles))
    hits = {}  # (kind, file) -> [line numbers]
    total_lines = 0
    for path in logs:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        total_lines += text.count("\n")
        for kind, needle in needles:
            start = text.find(needle)
            while start != -1:
                line = text.count("\n", 0, start) + 1
                found = hits.setdefault((kind, path), [])
                if line not in found:
                    found.append(line)
                start = text.find(needle, start + 1)
    counts = {}
    for kind, _ in needles:
        if " as " not in kind:  # other encodings of the same secret
            counts[kind] = counts.get(kind, 0) + 1
    summary = "; ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"
    print(f"scan-logs: searched {len(logs)} logs ({total_lines} lines) for: {summary}", file=out)
    if not hits:
        print("scan-logs: no secret found in any log", file=out)
        return 0
    for (kind, path), lines in sorted(hits.items()):
        shown = ", ".join(map(str, sorted(lines)[:MAX_LINES_REPORTED]))
        more = f" (+{len(lines) - MAX_LINES_REPORTED} more)" if len(lines) > MAX_LINES_REPORTED else ""
        print(f"scan-logs: LEAK: {kind} in {path} line {shown}{more}", file=out)
    return 1


def self_test():
    """Plant secrets in a temporary log and check that the scan fails without printing them."""
    import io

    password = "Pl4nted-passw0rd!"
    claims = base64.urlsafe_b64encode(b'{"token_use":"refresh","sub":"u"}').decode().rstrip("=")
    token = f"eyJhbGciOiJIUzI1NiJ9.{claims}.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    key = "ak_" + "I" * 22 + "_" + "S" * 43
    jwk = {"kty": "oct", "alg": "HS256", "kid": "k1", "k": "c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3OA"}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        secrets = os.path.join(tmp, "secrets.txt")
        with open(secrets, "w") as f:
            f.write(f"{password}\n{token}\n{key}\nshort\n")
        needles = remembered(secrets) + jwk_needles({"keys": [jwk]}, "the functions' signing secret")

        def run(name, content):
            log = os.path.join(tmp, name)
            with open(log, "w") as f:
                f.write(content)
            out = io.StringIO()
            return scan(needles, [log], out), out.getvalue()

        cases = [
            ("clean", "INFO login ok user=usr_1\nINFO short is not a secret: short\n", 0, []),
            ("password", f"INFO start\nWARN login failed password={password}\n", 1, ["password", "line 2"]),
            ("token", f"DEBUG refresh body {{\"refreshToken\":\"{token}\"}}\n", 1, ["refresh token", "line 1"]),
            ("key part", "x\ny\nkey secret " + "S" * 43 + "\n", 1, ["API key (secret part)", "line 3"]),
            ("jwk", f"key={jwk['k']}\n", 1, ["JWK `k`"]),
            ("jwk hex", "raw=" + b64url_decode(jwk["k"]).hex() + "\n", 1, ["as hex"]),
        ]
        for name, content, want, mentions in cases:
            code, output = run(name.replace(" ", "-") + ".log", content)
            if code != want:
                failures.append(f"{name}: exit {code}, wanted {want}: {output}")
            for m in mentions:
                if m not in output:
                    failures.append(f"{name}: report does not mention {m!r}: {output}")
            for secret in (password, token, key, "S" * 43, jwk["k"]):
                if secret in output:
                    failures.append(f"{name}: the report prints a secret")
    for f in failures:
        print(f"scan-logs self-test: FAIL {f}", file=sys.stderr)
    if not failures:
        print("scan-logs self-test: ok (planted secrets are found and never printed)")
    return 1 if failures else 0


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--secrets", help="file of remembered secrets, one a line")
    parser.add_argument("--endpoint", help="the emulator, for the signing secrets")
    parser.add_argument("--env-file", help="the functions' environment (SIGNING_KEYS_SECRET_ID)")
    parser.add_argument("logs", nargs="*")
    args = parser.parse_args(argv)
    if args.self_test:
        return self_test()
    if not args.secrets or not args.logs or bool(args.endpoint) != bool(args.env_file):
        parser.error("--secrets and at least one LOG are required; --endpoint goes with --env-file")
    missing = [p for p in args.logs if not os.path.isfile(p)]
    if missing:
        fail(f"no such log: {', '.join(missing)}")
    needles = remembered(args.secrets)
    if args.endpoint:
        needles += emulator_needles(args.endpoint, args.env_file)
    return scan(needles, args.logs, sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

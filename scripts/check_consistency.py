#!/usr/bin/env python3
"""Prove that Portcullis' build glue has not drifted (stdlib only, Python >= 3.11).

Checks, each printed as `ok: ...` or `FAIL: ...`:
  1. functions/*/ (each with a Cargo.toml) == the function binaries in template.yaml
     (Metadata.BuildProperties.Binary); each folder builds a binary of its own name and is
     a workspace member.
  2. each function is in the Makefile's `FUNCTIONS :=` list and has a sample event
     events/<name>[.-_]*.
  3. the environment variables the library reads (`pub const ENV_VARS: &[&str]` in
     shared/src/config.rs) == those template.yaml sets (minus RUST_LOG, AWS_*, any of
     OPTIONAL_ENV_VARS and, unless listed in ENV_VARS, AUTHORIZER_RESPONSE; where set,
     AUTHORIZER_RESPONSE must match the API), and all are in scripts/local.env.
  4. the README's configuration table (the `| variable |` table under `## Configuration`)
     names every ENV_VARS and OPTIONAL_ENV_VARS variable in its first column.
  5. .ci/run runs `make test`.

Exit status 0 when consistent, 1 otherwise.

    scripts/check_consistency.py [--root DIR]   # default: the repo (parent of scripts/)
    scripts/check_consistency.py --self-test    # prove each check can pass and fail
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

# Template env vars that are not library configuration.
TEMPLATE_ONLY_VARS = {"RUST_LOG"}
AUTHORIZER_RESPONSE = "AUTHORIZER_RESPONSE"


class Report:
    def __init__(self, out=sys.stdout) -> None:
        self.failures = 0
        self.out = out

    def ok(self, msg: str) -> None:
        print(f"ok: {msg}", file=self.out)

    def fail(self, msg: str) -> None:
        self.failures += 1
        print(f"FAIL: {msg}", file=self.out)

    def check(self, cond: bool, ok_msg: str, fail_msg: str) -> bool:
        (self.ok if cond else self.fail)(ok_msg if cond else fail_msg)
        return cond


def read(root: Path, rel: str, rep: Report) -> str | None:
    path = root / rel
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        rep.fail(f"{rel} is missing")
    except OSError as err:
        rep.fail(f"{rel} cannot be read: {err}")
    return None


def fmt(names) -> str:
    return ", ".join(sorted(names)) or "(none)"


# --------------------------------------------------------------------------------------
# A tolerant, indentation-based reader for the block-style YAML of a CloudFormation/SAM
# template. It understands mappings, `- ` sequences, comments, block scalars and ignores
# tags (`!Ref`, `!Sub`, ...) and flow collections (kept as raw text). It is not a YAML
# parser; it is just enough to find keys by path.
# --------------------------------------------------------------------------------------
class Node:
    __slots__ = ("value", "children", "line")

    def __init__(self, value: str = "", line: int = 0) -> None:
        self.value = value
        self.children: dict[str, Node] = {}
        self.line = line

    def get(self, *path: str) -> Node | None:
        node: Node | None = self
        for key in path:
            if node is None:
                return None
            node = node.children.get(key)
        return node


_KEY_RE = re.compile(
    r"""^(?P<key>"[^"]*"|'[^']*'|[^\s\-?:,\[\]{}#&*!|>'"%@`][^:#]*?|-[^\s:][^:#]*?)"""
    r"""\s*:(?:\s+(?P<value>.*))?$"""
)
_BLOCK_SCALAR_RE = re.compile(r"^(?:!\S+\s+)?[|>][-+0-9]*$")


def _strip_comment(text: str) -> str:
    """Remove a trailing ` # comment`, respecting quotes."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    return s


def parse_yaml_tree(text: str) -> Node:
    root = Node()
    stack: list[tuple[float, Node]] = [(-1.0, root)]
    seq_counter = 0
    block_indent: int | None = None  # inside a block scalar deeper than this indent

    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if block_indent is not None:
            if indent > block_indent:
                continue
            block_indent = None
        body = _strip_comment(raw.strip())
        if not body or body in ("---", "..."):
            continue

        items: list[tuple[float, str]] = []
        # `- a: b` is a sequence entry whose content starts 2 columns further right.
        col = indent
        while body.startswith("- ") or body == "-":
            items.append((col + 0.5, "-"))
            rest = body[1:]
            col += 1 + (len(rest) - len(rest.lstrip(" ")))
            body = rest.strip()
        for eff, _ in items:
            while stack[-1][0] >= eff:
                stack.pop()
            seq_counter += 1
            node = Node(line=lineno)
            stack[-1][1].children[f"-{seq_counter}"] = node
            stack.append((eff, node))
        if not body:
            continue

        m = _KEY_RE.match(body)
        if m:
            key = _unquote(m.group("key"))
            value = (m.group("value") or "").strip()
            while stack[-1][0] >= col:
                stack.pop()
            node = Node(value=value, line=lineno)
            stack[-1][1].children[key] = node
            stack.append((col, node))
            if _BLOCK_SCALAR_RE.match(value):
                block_indent = col
        elif items:
            stack[-1][1].value = body  # a scalar sequence entry
        else:
            # A continuation line of a multi-line scalar or flow collection: ignore.
            continue
    return root


# --------------------------------------------------------------------------------------
# Readers of the individual files
# --------------------------------------------------------------------------------------
def template_functions(tree: Node) -> dict[str, tuple[str, str | None]]:
    """logical id -> (Binary, problem) for every AWS::Serverless::Function."""
    out: dict[str, tuple[str, str | None]] = {}
    resources = tree.get("Resources")
    if resources is None:
        return out
    for logical_id, res in resources.children.items():
        rtype = res.get("Type")
        if rtype is None or _unquote(rtype.value) != "AWS::Serverless::Function":
            continue
        binary = res.get("Metadata", "BuildProperties", "Binary")
        method = res.get("Metadata", "BuildMethod")
        problem = None
        if binary is None or not _unquote(binary.value):
            problem = "has no Metadata.BuildProperties.Binary"
        elif method is None or _unquote(method.value) != "rust-cargolambda":
            problem = "has no Metadata.BuildMethod: rust-cargolambda"
        out[logical_id] = (_unquote(binary.value) if binary else "", problem)
    return out


def template_env(tree: Node) -> dict[str, dict[str, str]]:
    """scope ('Globals' or a logical id) -> {VAR: raw value}."""
    scopes: dict[str, dict[str, str]] = {}
    glob = tree.get("Globals", "Function", "Environment", "Variables")
    if glob is not None:
        scopes["Globals"] = {k: v.value for k, v in glob.children.items()}
    resources = tree.get("Resources")
    if resources is not None:
        for logical_id, res in resources.children.items():
            env = res.get("Properties", "Environment", "Variables")
            if env is not None:
                scopes[logical_id] = {k: v.value for k, v in env.children.items()}
    return scopes


def function_dirs(root: Path) -> set[str]:
    base = root / "functions"
    if not base.is_dir():
        return set()
    return {p.parent.name for p in base.glob("*/Cargo.toml")}


def cargo_binary_names(cargo_toml: str) -> tuple[str | None, list[str]]:
    """(package name, [[bin]] names) from a Cargo.toml, by a small section-aware scan."""
    package, bins, section = None, [], None
    for raw in cargo_toml.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line
            continue
        m = re.match(r'name\s*=\s*"([^"]+)"', line)
        if m and section == "[package]":
            package = m.group(1)
        elif m and section == "[[bin]]":
            bins.append(m.group(1))
    return package, bins


def workspace_members(cargo_toml: str) -> list[str] | None:
    m = re.search(r"(?ms)^\s*members\s*=\s*\[(.*?)\]", cargo_toml)
    if not m:
        return None
    return re.findall(r'"([^"]+)"', re.sub(r"#[^\n]*", "", m.group(1)))


def makefile_functions(makefile: str) -> list[str] | None:
    # Join `\`-continued lines first.
    text = re.sub(r"\\\n", " ", makefile)
    m = re.search(r"(?m)^\s*(?:export\s+|override\s+)?FUNCTIONS\s*(?::{1,3}=|\?=|=)(.*)$", text)
    if not m:
        return None
    return m.group(1).split("#", 1)[0].split()


def rust_env_vars(config_rs: str, const: str = "ENV_VARS") -> list[str] | None:
    m = re.search(
        rf"pub\s+const\s+{const}\s*:\s*&\s*(?:'static\s+)?\[\s*&\s*(?:'static\s+)?str\s*\]\s*=\s*&\s*\[(.*?)\]\s*;",
        config_rs,
        re.S,
    )
    if not m:
        return None
    body = re.sub(r"//[^\n]*|/\*.*?\*/", "", m.group(1), flags=re.S)
    return re.findall(r'"([A-Z][A-Z0-9_]{2,})"', body)


def env_file_keys(text: str) -> set[str]:
    keys = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if m:
            keys.add(m.group(1))
    return keys


# --------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------
def check_functions(root: Path, tree: Node | None, rep: Report) -> set[str]:
    dirs = function_dirs(root)
    if not dirs:
        rep.fail("no functions/*/Cargo.toml found")
    if tree is not None:
        fns = template_functions(tree)
        if not fns:
            rep.fail("template.yaml declares no AWS::Serverless::Function")
        for logical_id, (binary, problem) in sorted(fns.items()):
            if problem:
                rep.fail(f"template.yaml: {logical_id} {problem}")
        binaries = [b for b, _ in fns.values() if b]
        dupes = {b for b in binaries if binaries.count(b) > 1}
        if dupes:
            rep.fail(f"template.yaml: binaries used by more than one function: {fmt(dupes)}")
        in_template = set(binaries)
        only_dirs, only_tpl = dirs - in_template, in_template - dirs
        if only_dirs:
            rep.fail(f"functions/ without a template.yaml function: {fmt(only_dirs)}")
        if only_tpl:
            rep.fail(f"template.yaml binaries without functions/<name>/Cargo.toml: {fmt(only_tpl)}")
        if dirs and not only_dirs and not only_tpl:
            rep.ok(f"functions/ == template.yaml binaries ({fmt(dirs)})")

    # Each folder builds a binary of its own name (what cargo lambda and SAM look for).
    for name in sorted(dirs):
        package, bins = cargo_binary_names((root / "functions" / name / "Cargo.toml").read_text())
        built = bins or ([package] if package else [])
        rep.check(
            name in built,
            f"functions/{name} builds binary {name}",
            f"functions/{name}/Cargo.toml builds {fmt(built)}, not a binary named {name}",
        )

    ws = read(root, "Cargo.toml", rep)
    if ws is not None:
        members = workspace_members(ws)
        if members is None:
            rep.fail("Cargo.toml has no [workspace] members list")
        else:
            missing = {
                n for n in dirs
                if f"functions/{n}" not in members and "functions/*" not in members
            }
            rep.check(
                not missing,
                "every function is a workspace member",
                f"Cargo.toml workspace members lack: {fmt(f'functions/{n}' for n in missing)}",
            )
    return dirs


def check_makefile_and_events(root: Path, names: set[str], rep: Report) -> None:
    mk = read(root, "Makefile", rep)
    if mk is not None:
        listed = makefile_functions(mk)
        if listed is None:
            rep.fail("Makefile has no `FUNCTIONS :=` line")
        else:
            missing, extra = names - set(listed), set(listed) - names
            if missing:
                rep.fail(f"Makefile FUNCTIONS lacks: {fmt(missing)}")
            if extra:
                rep.fail(f"Makefile FUNCTIONS lists unknown functions: {fmt(extra)}")
            if not missing and not extra:
                rep.ok(f"Makefile FUNCTIONS == functions/ ({fmt(names)})")

    events = root / "events"
    if not events.is_dir():
        rep.fail("events/ is missing")
        return
    files = [p.name for p in events.rglob("*") if p.is_file()]
    no_event = {
        n for n in names
        if not any(f.startswith(n) and len(f) > len(n) and f[len(n)] in ".-_" for f in files)
    }
    rep.check(
        not no_event,
        "every function has a sample event under events/",
        f"no events/<name>.* or events/<name>-*.json for: {fmt(no_event)}",
    )


def check_env(root: Path, tree: Node | None, rep: Report) -> None:
    cfg = read(root, "shared/src/config.rs", rep)
    rust = rust_env_vars(cfg) if cfg is not None else None
    # Optional knobs (OPTIONAL_ENV_VARS, if the library has it) may be set, need not be.
    optional = set(rust_env_vars(cfg, "OPTIONAL_ENV_VARS") or []) if cfg is not None else set()
    if cfg is not None and rust is None:
        rep.fail("shared/src/config.rs has no `pub const ENV_VARS: &[&str] = &[...];`")
    elif rust is not None and not rust:
        rep.fail("shared/src/config.rs ENV_VARS is empty")

    if tree is not None:
        scopes = template_env(tree)
        tpl_vars = {v for vars_ in scopes.values() for v in vars_}
        if not tpl_vars:
            rep.fail("template.yaml sets no Environment Variables")
        # AUTHORIZER_RESPONSE, where set, must be a value the authorizer understands and
        # match the API's authorizer response mode.
        for scope, vars_ in sorted(scopes.items()):
            if AUTHORIZER_RESPONSE in vars_:
                value = _unquote(vars_[AUTHORIZER_RESPONSE])
                simple = re.search(r"(?m)^\s*EnableSimpleResponses:\s*true\b", _template_text(root) or "")
                want = "simple" if simple else "iam"
                rep.check(
                    value == want,
                    f"{scope} AUTHORIZER_RESPONSE={value} matches the API's authorizer",
                    f"{scope} AUTHORIZER_RESPONSE={value!r}, but the API expects {want!r} "
                    f"(EnableSimpleResponses {'true' if simple else 'not set'})",
                )
        if rust:
            rust_set = set(rust)
            missing = rust_set - tpl_vars
            exempt = TEMPLATE_ONLY_VARS | optional | ({AUTHORIZER_RESPONSE} - rust_set)
            unknown = {v for v in tpl_vars - rust_set - exempt if not v.startswith("AWS_")}
            if missing:
                rep.fail(f"ENV_VARS not set in template.yaml: {fmt(missing)}")
            if unknown:
                rep.fail(f"template.yaml sets variables not in ENV_VARS (nor OPTIONAL_ENV_VARS): {fmt(unknown)}")
            if not missing and not unknown:
                rep.ok(f"template.yaml environment == ENV_VARS ({len(rust_set)} variables)")

    local = read(root, "scripts/local.env", rep)
    if local is not None and rust:
        missing = set(rust) - env_file_keys(local)
        rep.check(
            not missing,
            "scripts/local.env sets every ENV_VARS variable",
            f"scripts/local.env lacks: {fmt(missing)}",
        )


def readme_config_vars(readme: str) -> set[str] | None:
    """Backticked names in the first column of the tables under `## Configuration`."""
    m = re.search(r"(?ms)^##\s+Configuration\s*$(.*?)(?=^##\s|\Z)", readme)
    if not m:
        return None
    names: set[str] = set()
    for line in m.group(1).splitlines():
        cells = line.strip().split("|")
        if len(cells) >= 3 and not cells[0].strip():
            names.update(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", cells[1]))
    return names


def check_readme(root: Path, rep: Report) -> None:
    cfg = read(root, "shared/src/config.rs", rep)
    readme = read(root, "README.md", rep)
    if cfg is None or readme is None:
        return
    wanted = set(rust_env_vars(cfg) or []) | set(rust_env_vars(cfg, "OPTIONAL_ENV_VARS") or [])
    documented = readme_config_vars(readme)
    if documented is None:
        rep.fail("README.md has no `## Configuration` section")
        return
    missing = wanted - documented
    rep.check(
        not missing,
        f"README.md configuration table names every ENV_VARS and OPTIONAL_ENV_VARS variable ({len(wanted)})",
        f"README.md configuration table lacks: {fmt(missing)}",
    )


def check_ci(root: Path, rep: Report) -> None:
    ci = read(root, ".ci/run", rep)
    if ci is None:
        return
    lines = [l for l in ci.splitlines() if not l.lstrip().startswith("#")]
    rep.check(
        any(re.search(r"(?<![\w-])make\s+test\b", l) for l in lines),
        ".ci/run runs `make test`",
        ".ci/run does not run `make test`",
    )


def _template_text(root: Path) -> str | None:
    try:
        return (root / "template.yaml").read_text(encoding="utf-8")
    except OSError:
        return None


def run(root: Path, out=sys.stdout) -> int:
    rep = Report(out)
    text = read(root, "template.yaml", rep)
    tree = parse_yaml_tree(text) if text is not None else None
    print("# 1. functions/ vs template.yaml", file=out)
    names = check_functions(root, tree, rep)
    print("# 2. Makefile and events/", file=out)
    check_makefile_and_events(root, names, rep)
    print("# 3. environment variables", file=out)
    check_env(root, tree, rep)
    print("# 4. README configuration table", file=out)
    check_readme(root, rep)
    print("# 5. CI", file=out)
    check_ci(root, rep)
    if rep.failures:
        print(f"{rep.failures} check(s) failed in {root}", file=out)
        return 1
    print(f"all consistent in {root}", file=out)
    return 0


# --------------------------------------------------------------------------------------
# Self-test: a fixture that passes, and one mutation per check that must fail it.
# --------------------------------------------------------------------------------------
_FIXTURE_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Description: >-
  A fixture. Resources: is mentioned here
  Binary: not-a-function
Globals:
  Function:
    Runtime: provided.al2023
    Architectures: [!Ref Architecture]
    Environment:
      Variables:
        USERS_TABLE: !Ref UsersTable # a comment
        "JWT_ISSUER": portcullis
        RUST_LOG: info
        PASSWORD_POLICY: strict
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      CorsConfiguration: !If
        - IsWildcard
        - AllowOrigins: ["*"]
          MaxAge: 600
      Auth:
        Authorizers:
          A:
            EnableSimpleResponses: true
  LoginFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: login
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Resource: !Sub "${UsersTable.Arn}/index/*"
  AuthorizerFunction:
    Type: "AWS::Serverless::Function"
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: "authorizer"
    Properties:
      Environment:
        Variables:
          AUTHORIZER_RESPONSE: simple
          AWS_LAMBDA_EXEC_WRAPPER: /opt/x
  UsersTable:
    Type: AWS::DynamoDB::Table
"""

_FIXTURE_CONFIG = """\
/// Every variable the library reads.
pub const ENV_VARS: &[&str] = &[
    "USERS_TABLE", // the users
    "JWT_ISSUER",
];
pub const OPTIONAL_ENV_VARS: &[&str] = &["PASSWORD_POLICY"];
const OTHER: &str = "NOT_IN_THE_LIST";
"""


_FIXTURE_README = """\
# Fixture

## Configuration

| variable | default | meaning |
|---|---|---|
| `USERS_TABLE`, `JWT_ISSUER` | required | names; `NOT_A_FIRST_COLUMN` does not count |
| `PASSWORD_POLICY` | `min=8` | rules |

## Next section

| `LATER_TABLE` | is not configuration |
"""


def _build_fixture(root: Path) -> None:
    (root / "functions").mkdir(parents=True)
    for name in ("login", "authorizer"):
        d = root / "functions" / name
        (d / "src").mkdir(parents=True)
        (d / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "0.1.0"\n')
    (root / "functions" / "README.md").write_text("not a function\n")
    (root / "Cargo.toml").write_text(
        '[workspace]\nmembers = [\n  "shared",\n  "functions/login",\n  "functions/authorizer",\n]\n'
    )
    (root / "template.yaml").write_text(_FIXTURE_TEMPLATE)
    (root / "Makefile").write_text("FUNCTIONS := login \\\n\tauthorizer\n\ntest:\n\tcargo test\n")
    (root / "events").mkdir()
    (root / "events" / "login.json").write_text("{}\n")
    (root / "events" / "authorizer-token.json").write_text("{}\n")
    (root / "shared" / "src").mkdir(parents=True)
    (root / "shared" / "src" / "config.rs").write_text(_FIXTURE_CONFIG)
    (root / "scripts").mkdir()
    (root / "scripts" / "local.env").write_text("# local\nUSERS_TABLE=users\nexport JWT_ISSUER=x\n")
    (root / "README.md").write_text(_FIXTURE_README)
    (root / ".ci").mkdir()
    (root / ".ci" / "run").write_text("#!/bin/sh\nset -eu\nmake test\n")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"fixture edit: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# (description, mutation, text expected in a FAIL line)
_MUTATIONS = [
    ("1: a folder without a template function",
     lambda r: (r / "functions/whoami").mkdir() or (r / "functions/whoami/Cargo.toml").write_text('[package]\nname = "whoami"\n'),
     "functions/ without a template.yaml function: whoami"),
    ("1: a template function without a folder",
     lambda r: _edit(r / "template.yaml", "Binary: login", "Binary: logout"),
     "template.yaml binaries without functions/<name>/Cargo.toml: logout"),
    ("1: a function without Binary",
     lambda r: _edit(r / "template.yaml", '        Binary: "authorizer"\n', ""),
     "AuthorizerFunction has no Metadata.BuildProperties.Binary"),
    ("1: a folder whose crate builds another name",
     lambda r: _edit(r / "functions/login/Cargo.toml", 'name = "login"', 'name = "login-fn"'),
     "not a binary named login"),
    ("1: template.yaml missing",
     lambda r: (r / "template.yaml").unlink(),
     "template.yaml is missing"),
    ("2: Makefile FUNCTIONS lacks a function",
     lambda r: _edit(r / "Makefile", "\tauthorizer\n", "\n"),
     "Makefile FUNCTIONS lacks: authorizer"),
    ("2: Makefile missing",
     lambda r: (r / "Makefile").unlink(),
     "Makefile is missing"),
    ("2: no sample event",
     lambda r: (r / "events/authorizer-token.json").rename(r / "events/authz.json"),
     "no events/<name>.* or events/<name>-*.json for: authorizer"),
    ("3: ENV_VARS has a variable the template does not set",
     lambda r: _edit(r / "shared/src/config.rs", '"JWT_ISSUER",', '"JWT_ISSUER", "JWT_AUDIENCE",'),
     "ENV_VARS not set in template.yaml: JWT_AUDIENCE"),
    ("3: the template sets a variable not in ENV_VARS",
     lambda r: _edit(r / "template.yaml", "RUST_LOG: info", "RUST_LOG: info\n        LOCKOUT_SECONDS: 1"),
     "template.yaml sets variables not in ENV_VARS (nor OPTIONAL_ENV_VARS): LOCKOUT_SECONDS"),
    ("3: AUTHORIZER_RESPONSE does not match the API",
     lambda r: _edit(r / "template.yaml", "AUTHORIZER_RESPONSE: simple", "AUTHORIZER_RESPONSE: iam"),
     "AUTHORIZER_RESPONSE='iam', but the API expects 'simple'"),
    ("3: local.env lacks a variable",
     lambda r: _edit(r / "scripts/local.env", "export JWT_ISSUER=x\n", "# JWT_ISSUER=x\n"),
     "scripts/local.env lacks: JWT_ISSUER"),
    ("3: config.rs has no ENV_VARS",
     lambda r: _edit(r / "shared/src/config.rs", "pub const ENV_VARS", "pub const VARS"),
     "has no `pub const ENV_VARS"),
    ("3: config.rs missing",
     lambda r: (r / "shared/src/config.rs").unlink(),
     "shared/src/config.rs is missing"),
    ("4: README lacks an ENV_VARS variable",
     lambda r: _edit(r / "README.md", "`USERS_TABLE`, `JWT_ISSUER`", "`USERS_TABLE`"),
     "README.md configuration table lacks: JWT_ISSUER"),
    ("4: README lacks an OPTIONAL_ENV_VARS variable",
     lambda r: _edit(r / "README.md", "| `PASSWORD_POLICY` |", "| PASSWORD_POLICY |"),
     "README.md configuration table lacks: PASSWORD_POLICY"),
    ("4: a variable named only outside the first column or section",
     lambda r: _edit(r / "shared/src/config.rs", '"JWT_ISSUER",', '"JWT_ISSUER", "NOT_A_FIRST_COLUMN", "LATER_TABLE",'),
     "README.md configuration table lacks: LATER_TABLE, NOT_A_FIRST_COLUMN"),
    ("4: README without a Configuration section",
     lambda r: _edit(r / "README.md", "## Configuration", "## Settings"),
     "README.md has no `## Configuration` section"),
    ("5: .ci/run does not run make test",
     lambda r: _edit(r / ".ci/run", "make test\n", "# make test\ncargo test\n"),
     ".ci/run does not run `make test`"),
    ("5: .ci/run missing",
     lambda r: (r / ".ci/run").unlink(),
     ".ci/run is missing"),
]


def self_test() -> int:
    import io

    failures = 0
    with tempfile.TemporaryDirectory(prefix="portcullis-consistency-") as tmp:
        base = Path(tmp) / "pass"
        _build_fixture(base)
        buf = io.StringIO()
        rc = run(base, buf)
        if rc != 0:
            failures += 1
            print(f"SELF-TEST FAIL: passing fixture failed:\n{buf.getvalue()}")
        else:
            print("self-test ok: the passing fixture passes")
        for i, (desc, mutate, expect) in enumerate(_MUTATIONS):
            root = Path(tmp) / f"fail{i}"
            shutil.copytree(base, root)
            mutate(root)
            buf = io.StringIO()
            rc = run(root, buf)
            fails = [l for l in buf.getvalue().splitlines() if l.startswith("FAIL: ")]
            if rc == 1 and any(expect in l for l in fails):
                print(f"self-test ok: [{desc}] -> {next(l for l in fails if expect in l)}")
            else:
                failures += 1
                print(f"SELF-TEST FAIL: [{desc}] rc={rc}, expected a FAIL containing {expect!r}:\n{buf.getvalue()}")
    print("self-test passed" if not failures else f"self-test: {failures} failure(s)")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="repository root (default: the parent of this script's folder)")
    ap.add_argument("--self-test", action="store_true",
                    help="check the checker against throwaway fixtures under the temp dir")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.root.is_dir():
        print(f"FAIL: --root {args.root} is not a directory")
        return 1
    return run(args.root.resolve())


if __name__ == "__main__":
    sys.exit(main())

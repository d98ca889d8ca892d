#!/usr/bin/env bash
# Release profile: opt-level 3 vs "s" vs "z", size and speed (docs/microbenchmarks.md).
#
#   bench/opt-levels.sh [SRC]        SRC: the workspace to build (default: this repo)
#   LEVELS="3 s z z+hot z+argon2,blake2" bench/opt-levels.sh
#
# A level "L+a,b=2" is opt-level L with crate a at opt-level 3 and b at 2, through
# `--config profile.{release,bench}.package.<crate>.opt-level=N`; "L+hot" names $HOT (argon2 and
# blake2 for the password hash, aws-lc-sys for the signature and HMAC primitives). With fat LTO
# the binary crate's level is the one that counts for Rust code (LLVM defers unrolling and
# vectorisation to the link-time pass): the criterion bench's binary crate is portcullis-tests.
# Package overrides already in SRC's Cargo.toml ([profile.release.package.*]) apply to every
# level; the figures in docs/microbenchmarks.md come from a snapshot with none.
#
# For each level: the release binaries of $BINS (zipped like `make build` does) and the criterion
# benchmarks matching $FILTER (token verification, the authorizer's decision, argon2id; none of
# them needs the emulator). Builds go to a target dir of their own ($OUT/target), so the repo's
# target/ is not touched; the profile is changed only through cargo's environment overrides
# (CARGO_PROFILE_{RELEASE,BENCH}_OPT_LEVEL), never in Cargo.toml. Everything runs under
# `nice -n 10`. The benchmark executables are built first and then run interleaved
# (3, s, z, 3, s, z, ...; $ROUNDS rounds) so that the levels share the machine's conditions;
# the table takes each benchmark's median over rounds of criterion's point estimate.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "${1:-$(dirname "$here")}" && pwd)"
out="${OUT:-/tmp/portcullis-opt}"
levels="${LEVELS:-3 s z}"
bins="${BINS:-authorizer login whoami oauth}"
hot="${HOT:-argon2 blake2 aws-lc-sys}"
filter="${FILTER:-verify|decision|argon2}"
rounds="${ROUNDS:-2}"
py="${PYTHON:-python3}"
export CARGO_TARGET_DIR="$out/target"
mkdir -p "$out"

for level in $levels; do
  base="${level%%+*}"
  export CARGO_PROFILE_RELEASE_OPT_LEVEL="$base" CARGO_PROFILE_BENCH_OPT_LEVEL="$base"
  config=()
  if [[ "$level" == *+* ]]; then
    crates="${level#*+}"
    [[ "$crates" == hot ]] && crates="$hot"
    for c in ${crates//,/ }; do
      n=3
      [[ "$c" == *=* ]] && n="${c#*=}" && c="${c%%=*}"
      [[ "$n" =~ ^[0-9]$ ]] || n="\"$n\""
      config+=(--config "profile.release.package.$c.opt-level=$n"
               --config "profile.bench.package.$c.opt-level=$n")
    done
  fi
  dir="$out/opt-$level"
  mkdir -p "$dir"
  echo "opt-levels: building opt-level=$level ($bins, the bench) into $CARGO_TARGET_DIR" >&2
  (cd "$src" && nice -n 10 cargo "${config[@]}" build --release --quiet $(printf -- '-p %s ' $bins))
  for b in $bins; do cp "$CARGO_TARGET_DIR/release/$b" "$dir/$b"; done
  exe=$(cd "$src" && nice -n 10 cargo "${config[@]}" bench -p portcullis-tests --bench portcullis --no-run \
        --message-format=json 2>/dev/null | "$py" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and \
       "bench" in m["target"]["kind"]:
        print(m["executable"])')
  cp "$exe" "$dir/bench"
done
unset CARGO_PROFILE_RELEASE_OPT_LEVEL CARGO_PROFILE_BENCH_OPT_LEVEL

for round in $(seq 1 "$rounds"); do
  for level in $levels; do
    dir="$out/opt-$level"
    echo "opt-levels: round $round/$rounds, opt-level=$level: criterion '$filter'" >&2
    (cd "$src/tests" && env -u PORTCULLIS_TEST_AWS_ENDPOINT CRITERION_HOME="$dir/criterion" \
       nice -n 10 "$dir/bench" --bench "$filter" --warm-up-time 1 --measurement-time 3 \
       >"$dir/bench-round$round.txt" 2>&1)
  done
done

"$py" - "$out" "$levels" "$bins" <<'EOF'
import json, re, statistics, sys, tempfile, zipfile
from pathlib import Path

out, levels, bins = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()
UNIT = {"ps": 1e-6, "ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
TIME = re.compile(r"^(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", re.M)


def zipped(path: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        z = Path(tmp) / "bootstrap.zip"
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(path, "bootstrap")
        return z.stat().st_size


res = {"sizes": {}, "bench_us": {}}
for level in levels:
    d = out / f"opt-{level}"
    res["sizes"][level] = {b: {"bytes": (d / b).stat().st_size, "zipped": zipped(d / b)}
                           for b in bins}
    per: dict[str, list[float]] = {}
    for f in sorted(d.glob("bench-round*.txt")):
        text = re.sub(r"\x1b\[[0-9;]*m", "", f.read_text(errors="replace"))
        text = re.sub(r"\n\s+time:", " time:", text)  # long names put the figures on a new line
        for name, val, unit in TIME.findall(text):
            per.setdefault(name, []).append(float(val) * UNIT[unit])
    res["bench_us"][level] = {n: statistics.median(v) for n, v in per.items()}
(out / "opt-levels.json").write_text(json.dumps(res, indent=1) + "\n")

mb = lambda n: f"{n / 1e6:.2f}"
print("| binary | " + " | ".join(f"opt-level={l} bootstrap / zipped MB" for l in levels) + " |")
print("|---|" + "---:|" * len(levels))
for b in bins:
    cells = [f"{mb(res['sizes'][l][b]['bytes'])} / {mb(res['sizes'][l][b]['zipped'])}"
             for l in levels]
    print(f"| {b} | " + " | ".join(cells) + " |")
print()
names = sorted({n for l in levels for n in res["bench_us"][l]})
print("| benchmark (µs, median of rounds) | " + " | ".join(f"opt-level={l}" for l in levels)
      + "".join(f" | {l}/{levels[0]}" for l in levels[1:]) + " |")
print("|---|" + "---:|" * (2 * len(levels) - 1))
for n in names:
    v = [res["bench_us"][l].get(n) for l in levels]
    fmt = lambda x: "—" if x is None else f"{x:,.2f}"
    ratio = lambda x: "—" if x is None or not v[0] else f"{x / v[0]:.2f}×"
    print(f"| {n} | " + " | ".join(fmt(x) for x in v) + " | "
          + " | ".join(ratio(x) for x in v[1:]) + " |")
EOF

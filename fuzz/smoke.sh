#!/usr/bin/env bash
# Fuzz smoke run for CI: builds every cargo-fuzz target and runs each for
# FUZZ_SECONDS (default 30) from its checked-in seeds. Installs cargo-fuzz if
# it is missing. Exits non-zero on a build failure or any finding (crash,
# panic, timeout, leak, out of memory); the finding's input is left in
# fuzz/artifacts/<target>/ and the fuzzer's output is printed.
#
# Runs on stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-30}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets=$(cargo fuzz list)
if [ -z "$targets" ]; then
  echo "fuzz smoke: no targets found" >&2
  exit 1
fi
cargo fuzz build

# Fresh corpora each run: new inputs go to a scratch directory, never into
# the checked-in seeds.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

status=0
for t in $targets; do
  mkdir -p "$scratch/$t"
  corpora=("$scratch/$t")
  [ -d "fuzz/seeds/$t" ] && corpora+=("fuzz/seeds/$t")
  flags=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  [ -f "fuzz/dict/$t.dict" ] && flags+=(-dict="fuzz/dict/$t.dict")
  echo "fuzz smoke: $t for ${secs}s"
  if cargo fuzz run "$t" "${corpora[@]}" -- "${flags[@]}" >"$scratch/$t.log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units)' "$scratch/$t.log" || true
  else
    echo "fuzz smoke: $t FAILED" >&2
    tail -n 60 "$scratch/$t.log" >&2
    status=1
  fi
done
exit "$status"

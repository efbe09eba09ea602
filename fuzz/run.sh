#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds (default 60) with libFuzzer under AddressSanitizer,
# from seed corpora written from the repository's fixtures, and prints one line per target:
# executions, corpus size, coverage and findings. Exits non-zero when a target found anything
# (the input is kept in fuzz/artifacts/<target>/; reproduce: cargo +nightly fuzz run <target> <file>).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# FUZZ_BUILD sets the build (default "-O": optimised, AddressSanitizer). CI uses
# "--dev -s none": an unoptimised build with debug assertions and overflow checks, quicker to
# compile, for a smoke run.
#
# Needs a nightly toolchain and cargo-fuzz; says so and exits 3 when either is missing.
set -uo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(authorization request_target config_yaml jwks_json claims_rules header_rewrite issuer_inputs)
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain (rustup toolchain install nightly): not run"
  exit 3
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is not installed (cargo install --locked cargo-fuzz): not run"
  exit 3
fi

read -r -a build <<<"${FUZZ_BUILD:--O}"
cargo +nightly fuzz build "${build[@]}" >/dev/null || exit 1

mkdir -p logs
failed=0
printf '%-16s %12s %10s %8s %8s  %s\n' target executions exec/s corpus cov result
for target in "${targets[@]}"; do
  log="logs/$target.log"
  cargo +nightly fuzz run "${build[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1
  status=$?
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  rate=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  corpus=$(find "corpus/$target" -type f | wc -l)
  if [[ $status -eq 0 ]]; then
    result="ok"
  else
    result="FOUND (exit $status): see fuzz/$log and fuzz/artifacts/$target/"
    failed=1
    grep -E 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer' "$log" | head -3 | sed 's/^/    /'
  fi
  printf '%-16s %12s %10s %8s %8s  %s\n' "$target" "${runs:-?}" "${rate:-?}" "$corpus" "${cov:-?}" "$result"
done
exit $failed

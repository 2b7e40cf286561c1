#!/usr/bin/env bash
# Fuzzes every parser of hostile input for a bounded time per target (libFuzzer via cargo-fuzz).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 s each, every target
#
# Targets (fuzz/fuzz_targets/): jws, form, jwks, discovery, policy, cel. Seeds are regenerated
# first (fuzz/examples/seeds.rs) from real tokens and documents, into fuzz/corpus/<target>/,
# which libFuzzer then grows. A crash leaves its input in fuzz/artifacts/<target>/ and fails the
# script; keep that input as a unit test beside the parser that crashed once fixed.
#
# cargo-fuzz wants a nightly compiler for -Zsanitizer; with only stable installed,
# RUSTC_BOOTSTRAP=1 unlocks the flags. `-s none` skips AddressSanitizer: the crate forbids
# unsafe code, so ASan would only slow things down; panics, overflows (debug assertions are
# on) and OOM/timeouts are what we look for.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(jws form jwks discovery policy cel dpop forwarded)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cargo run --quiet --example seeds
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none

summary=()
status=0
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${secs}s"
  log=$(mktemp)
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb bounds memory blow-ups.
  if ! cargo fuzz run -s none "$target" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    status=1
    tail -n 60 "$log"
    echo "!! $target crashed; input in fuzz/artifacts/$target/"
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  corpus=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  summary+=("$(printf '%-10s execs %-10s exec/s %-7s cov %-6s ft %-6s corpus %s' \
    "$target" "$execs" "$rate" "$cov" "$ft" "$corpus")")
  rm -f "$log"
done

echo "== fuzz summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit $status

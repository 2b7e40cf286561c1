#!/usr/bin/env bash
# Load benchmark of the token endpoint: one command, loopback only, bounded duration.
#
#   scripts/bench-load.sh
#
# What it does (see docs/performance.md):
#  1. installs wrk from Debian when missing (apt-get), builds the release binary and two
#     helper examples (mint, crypto_reference);
#  2. pre-mints POOL distinct subject tokens from the local demo issuer (RS256, a jwksFile:
#     nothing is fetched from the network), as complete Entra-style token request bodies;
#  3. for each placement and concurrency, starts a fresh gateway on 127.0.0.1 with the bundled
#     policies, sends one warm-up exchange, drives POST /contoso/oauth2/v2.0/token with wrk
#     for DURATION seconds (each token sent once), and prints exchanges/s, p50/p99/p99.9
#     latency, errors, server CPU and peak RSS:
#       A: server pinned to core 0 (one worker), wrk pinned to core 1;
#       B: server workers on every core, wrk unpinned;
#  4. measures the crypto-bound reference (bare aws-lc-rs RS256 verify + ES256 sign, keys
#     parsed once) in the same run and prints each result's ratio to it.
#
# Knobs (environment): DURATION (s per run, default 10), CONCURRENCY (default "32 128"),
# POOL (tokens minted, default 250000), PLACEMENTS (default "A B"), SIGNING (issued-token
# algorithm, default ES256), PORT (default 18080), BENCH_DIR (default <target>/bench-load).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-"32 128"}
POOL=${POOL:-250000}
PLACEMENTS=${PLACEMENTS:-"A B"}
SIGNING=${SIGNING:-ES256}
PORT=${PORT:-18080}
TARGET=${CARGO_TARGET_DIR:-target}
BENCH_DIR=${BENCH_DIR:-$TARGET/bench-load}
TENANT=contoso
CORES=$(nproc)
CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
if [ "$CORES" -lt 2 ]; then
  log "placement A needs two cores; this machine has $CORES"; PLACEMENTS=${PLACEMENTS//A/}
fi

log "building release binary and helpers"
cargo build --release --quiet --bin trustbridge --example mint --example crypto_reference
BIN=$TARGET/release/trustbridge
MINT=$TARGET/release/examples/mint
REFERENCE=$TARGET/release/examples/crypto_reference

mkdir -p "$BENCH_DIR"
BODIES=$BENCH_DIR/bodies.txt
WARMUP=$BENCH_DIR/warmup.txt
# Tokens live 6 h; re-mint when the pool is older than 5 h or too small.
if [ ! -s "$BODIES" ] || [ "$(wc -l <"$BODIES")" -lt "$POOL" ] \
   || [ -n "$(find "$BODIES" -mmin +300)" ]; then
  log "minting $POOL distinct subject tokens (RS256: about 1 ms each, every core signing)"
  "$MINT" "$BENCH_DIR/data" "$POOL" "$BODIES" 21600
  "$MINT" "$BENCH_DIR/data" 1 "$WARMUP" 21600
fi

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

# start_server <placement>
start_server() {
  local pin=() workers=0
  if [ "$1" = A ]; then pin=(taskset -c 0); workers=1; fi
  rm -rf "$BENCH_DIR/keys"
  "${pin[@]}" "$BIN" serve --listen "127.0.0.1:$PORT" --policies policies \
    --data-dir "$BENCH_DIR/data" --keys "$BENCH_DIR/keys" --signing-algorithm "$SIGNING" \
    --workers "$workers" --log-format json --admin-listen off >"$BENCH_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # One exchange with a token outside the pool: loads the issuer keys, checks the setup.
  local status
  status=$(curl -s -o "$BENCH_DIR/warmup.json" -w '%{http_code}' \
    "http://127.0.0.1:$PORT/$TENANT/oauth2/v2.0/token" --data @"$WARMUP")
  if [ "$status" != 200 ]; then
    log "warm-up exchange failed with HTTP $status: $(cat "$BENCH_DIR/warmup.json")"
    exit 1
  fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

log "measuring the crypto-bound reference (RS256 verify + ES256 sign, aws-lc-rs)"
REF_ONE=$(taskset -c 0 "$REFERENCE" 3 1 | sed 's/.*=//')
REF_ALL=$("$REFERENCE" 3 "$CORES" | sed 's/.*=//')

printf '\n== trustbridge load benchmark: %s ==\n' "$(date -u +%FT%TZ)"
printf 'machine: %s cores, %s; load before: %s\n' "$CORES" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'issued tokens: %s; subject tokens: RS256 (demo issuer, jwksFile); %s s per run; pool %s tokens\n' \
  "$SIGNING" "$DURATION" "$POOL"
printf 'crypto-bound reference: %s exchanges/s on one core, %s on %s cores\n\n' \
  "$REF_ONE" "$REF_ALL" "$CORES"
printf '%-9s %5s %12s %9s %9s %9s %7s %8s %9s %8s %6s\n' placement conns "exchanges/s" \
  p50_ms p99_ms p99.9_ms errors cpu_% rss_MiB vs_ref repeat

for placement in $PLACEMENTS; do
  for conns in $CONCURRENCY; do
    start_server "$placement"
    if [ "$placement" = A ]; then
      wrk_cmd=(taskset -c 1 wrk -t1); ref=$REF_ONE
    else
      wrk_cmd=(wrk -t"$CORES"); ref=$REF_ALL
    fi
    threads=${wrk_cmd[-1]#-t}
    before=$(cpu_ticks "$SERVER_PID")
    out=$("${wrk_cmd[@]}" -c"$conns" -d"${DURATION}s" --timeout 5s \
      -s scripts/bench-load.lua "http://127.0.0.1:$PORT" -- "$BODIES" "$threads" "$TENANT")
    after=$(cpu_ticks "$SERVER_PID")
    rss=$(peak_rss_kib "$SERVER_PID")
    stop_server
    line=$(grep '^RESULT' <<<"$out")
    val() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" ${line#RESULT}"; }
    requests=$(val requests); duration=$(val duration_us)
    errors=$(( $(val err_connect) + $(val err_read) + $(val err_write) + $(val err_status) + $(val err_timeout) ))
    awk -v p="$placement" -v c="$conns" -v n="$requests" -v d="$duration" \
        -v p50="$(val p50_us)" -v p99="$(val p99_us)" -v p999="$(val p999_us)" -v e="$errors" \
        -v ticks="$((after - before))" -v hz="$CLK_TCK" -v rss="$rss" -v ref="$ref" \
        -v rep="$(val repeated)" 'BEGIN {
      secs = d / 1e6; rate = n / secs;
      printf "%-9s %5d %12.0f %9.2f %9.2f %9.2f %7d %8.0f %9.1f %8.2f %6d\n",
        p, c, rate, p50 / 1000, p99 / 1000, p999 / 1000, e, 100 * ticks / hz / secs,
        rss / 1024, rate / ref, rep }'
    if [ "$errors" -gt 0 ]; then
      log "  errors: $(sed 's/^RESULT //' <<<"$line")"
    fi
  done
done
printf '\nvs_ref: exchanges/s over the crypto-bound reference of the cores the server may use\n'
printf '(A: one core; B: all cores, shared with wrk). load after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"

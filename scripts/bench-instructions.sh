#!/usr/bin/env bash
# Instructions per exchange, counted by callgrind: the load-independent companion of
# scripts/bench-load.sh.
#
#   scripts/bench-instructions.sh
#
# On a shared 2-core machine a load run's rates and even its CPU per exchange move with what
# the neighbours do; valgrind's callgrind counts the instructions a process executes, which do
# not (the same binary, inputs and environment give the same count). For each server kind,
# trustbridge (bundled policies), trustbridge with the request controls of issue 15 (an
# allowedNetworks list, a CEL condition on request.ip and request.time, a trusted proxy's
# X-Forwarded-For) and the bare server of the load benchmark (HTTP + the crypto only), and on
# request (KINDS) trustbridge without the bundled CEL claim mapping (`no-mapping`, the policies
# of `scripts/bench-policies.py no-mapping`, as `ABLATE=1 scripts/bench-load.sh` runs them), it:
#  1. starts the release binary under `valgrind --tool=callgrind --instr-atstart=no` (start-up
#     is not counted), one worker;
#  2. sends WARMUP exchanges, turns instrumentation on (`callgrind_control -i on`), sends N
#     exchanges (pre-minted, distinct tokens, CONNS keep-alive connections; each must answer
#     200), dumps the counters (`callgrind_control -d`) and stops the server;
#  3. prints instructions per exchange (every thread of the process: workers, the audit writer,
#     the runtime; user space and the syscalls' user side, not the kernel's work), and the
#     ratios trustbridge/bare and controls/trustbridge.
# With PROFILE=1 it builds with symbols (target/profiling) and prints, per kind, the functions
# with the most inclusive instructions per exchange, for docs/performance.md.
#
# Knobs: N (default 2000), WARMUP (default 200), CONNS (default 4), PORT (default 18090),
# KINDS (default "trustbridge controls bare"; also no-mapping), PROFILE (default 0), TOP
# (default 40), TB_BIN (another trustbridge binary to measure, e.g. a build of an earlier
# commit).
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-2000}
WARMUP=${WARMUP:-200}
CONNS=${CONNS:-4}
PORT=${PORT:-18090}
KINDS=${KINDS:-"trustbridge controls bare"}
PROFILE=${PROFILE:-0}
TOP=${TOP:-40}
TENANT=contoso
CONTROLS_CLIENT=198.51.100.7

log() { printf '%s\n' "$*" >&2; }

command -v valgrind >/dev/null || {
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq valgrind >/dev/null
}

if [ "$PROFILE" = 1 ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}/profiling
  export CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
fi
TARGET=${CARGO_TARGET_DIR:-target}
DIR=$TARGET/bench-instructions
log "building release binary and helpers"
cargo build --release --quiet --bin trustbridge --example mint --example bare_server
BIN=${TB_BIN:-$TARGET/release/trustbridge}
BARE=$TARGET/release/examples/bare_server

mkdir -p "$DIR"
BODIES=$DIR/bodies.txt
if [ ! -s "$BODIES" ] || [ "$(wc -l <"$BODIES")" -lt $((N + WARMUP)) ] \
   || [ -n "$(find "$BODIES" -mmin +300)" ]; then
  log "minting $((N + WARMUP)) subject tokens"
  "$TARGET/release/examples/mint" "$DIR/data" $((N + WARMUP)) "$BODIES" 21600
fi
JWKS=$DIR/data/demo-issuer/jwks.json

# The controls policies: the bundled ones with deploy-bot's credential bound to the request,
# exactly as scripts/bench-load.sh's controls run.
CONTROLS_POLICIES=$DIR/controls-policies
python3 scripts/bench-policies.py controls policies "$CONTROLS_POLICIES"
ABLATE_POLICIES=$DIR/ablation-policies
python3 scripts/bench-policies.py no-mapping policies "$ABLATE_POLICIES"

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

# drive <from-line> <count> <forwarded>: sends lines [from, from+count) of the pool over CONNS
# keep-alive connections; fails unless every answer is 200.
drive() {
  python3 - "$BODIES" "$1" "$2" "$CONNS" "$PORT" "$TENANT" "$3" <<'EOF'
import http.client, sys, threading
bodies, start, count, conns, port, tenant, forwarded = sys.argv[1:8]
start, count, conns = int(start), int(count), int(conns)
with open(bodies) as f:
    lines = [line.rstrip("\n") for line in f][start:start + count]
headers = {"Content-Type": "application/x-www-form-urlencoded"}
if forwarded:
    headers["X-Forwarded-For"] = forwarded
failures = []
def run(share):
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
    for body in share:
        c.request("POST", f"/{tenant}/oauth2/v2.0/token", body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            failures.append((r.status, data[:300]))
threads = [threading.Thread(target=run, args=(lines[i::conns],)) for i in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
if failures:
    sys.exit(f"{len(failures)} of {count} requests failed, first: {failures[0]}")
EOF
}

# measure <kind>: prints "<kind> <instructions per exchange>" and keeps the dump.
measure() {
  local kind=$1 out="$DIR/callgrind.$1" forwarded=""
  rm -f "$out"*
  local vg=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out")
  case $kind in
    bare)
      "${vg[@]}" "$BARE" "127.0.0.1:$PORT" "$JWKS" 1 >"$DIR/$kind.log" 2>&1 & ;;
    trustbridge | controls | no-mapping)
      local policies=policies extra=()
      if [ "$kind" = no-mapping ]; then policies=$ABLATE_POLICIES; fi
      if [ "$kind" = controls ]; then
        policies=$CONTROLS_POLICIES; extra=(--trusted-proxies 127.0.0.1/32)
        forwarded=$CONTROLS_CLIENT
      fi
      rm -rf "$DIR/keys"
      "${vg[@]}" "$BIN" serve --listen "127.0.0.1:$PORT" --policies "$policies" \
        --data-dir "$DIR/data" --keys "$DIR/keys" --workers 1 --log-format json \
        --admin-listen off "${extra[@]}" >"$DIR/$kind.log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
    curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/$TENANT/oauth2/v2.0/token" \
      2>/dev/null && break
    sleep 0.2
  done
  drive 0 "$WARMUP" "$forwarded"
  callgrind_control -i on "$SERVER_PID" >/dev/null
  drive "$WARMUP" "$N" "$forwarded"
  callgrind_control -d "$SERVER_PID" >/dev/null
  stop_server
  # `callgrind_control -d` wrote the counted load to "$out.1" (the file at exit holds only the
  # shutdown).
  local dump=$out.1 total
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  printf '%s %s %s\n' "$kind" "$(( total / N ))" "$dump"
}

declare -A PER
declare -A DUMP
for kind in $KINDS; do
  log "measuring $kind under callgrind ($WARMUP warm-up + $N counted exchanges)"
  read -r _ per dump < <(measure "$kind")
  PER[$kind]=$per
  DUMP[$kind]=$dump
done

printf '\n== instructions per exchange (callgrind, one worker, %s exchanges over %s connections) ==\n' \
  "$N" "$CONNS"
printf '%-12s %14s\n' server instr/x
for kind in $KINDS; do printf '%-12s %14s\n' "$kind" "${PER[$kind]}"; done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
if [ -n "${PER[trustbridge]:-}" ] && [ -n "${PER[bare]:-}" ]; then
  printf 'bare/trustbridge (the share of the bare server'"'"'s rate trustbridge would reach if CPU-bound): %s\n' \
    "$(ratio "${PER[bare]}" "${PER[trustbridge]}")"
fi
if [ -n "${PER[trustbridge]:-}" ] && [ -n "${PER[controls]:-}" ]; then
  printf 'controls/trustbridge (issue 15: the request controls'"'"' cost): %s\n' \
    "$(ratio "${PER[controls]}" "${PER[trustbridge]}")"
fi

if [ -n "${PER[trustbridge]:-}" ] && [ -n "${PER[no-mapping]:-}" ]; then
  printf 'no-mapping/trustbridge (what the bundled CEL claim mapping costs): %s\n' \
    "$(ratio "${PER[no-mapping]}" "${PER[trustbridge]}")"
fi

if [ "$PROFILE" = 1 ]; then
  for kind in $KINDS; do
    printf '\n== %s: top %s functions by inclusive instructions per exchange ==\n' "$kind" "$TOP"
    callgrind_annotate --inclusive=yes --threshold=100 "${DUMP[$kind]}" 2>/dev/null \
      | awk -v n="$N" -v top="$TOP" '
        /^-+$/ { sep++; next }
        sep >= 3 && $1 ~ /^[0-9,]+$/ {
          ir = $1; gsub(",", "", ir);
          $1 = ""; if ($2 ~ /^\(/) $2 = "";
          sub(/^ +/, "");
          printf "%12.0f  %s\n", ir / n, substr($0, 1, 150);
          if (++shown >= top) exit
        }'
  done
fi

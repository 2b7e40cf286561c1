#!/usr/bin/env bash
# Load benchmark of the token endpoint: one command, loopback only, bounded duration.
#
#   scripts/bench-load.sh
#
# What it does (see docs/performance.md):
#  1. installs wrk from Debian when missing (apt-get) and oha (the open-loop generator) with
#     `cargo install oha --locked --features native-tls` into <target>/tools (Debian bookworm
#     has no oha package; libssl-dev and pkg-config come from apt when missing),
#     builds the release binary and three helper examples (mint, crypto_reference, bare_server);
#  2. pre-mints POOL distinct subject tokens from the local demo issuer (RS256, a jwksFile:
#     nothing is fetched from the network), as complete Entra-style token request bodies;
#  3. for each placement and concurrency, runs two servers one after the other with the same
#     wrk harness and pool: trustbridge (a fresh gateway with the bundled policies) and the
#     bare server (examples/bare_server.rs: one actix-web route doing only the RS256 verify and
#     the ES256 sign, keys parsed once). Each gets one warm-up exchange, then wrk drives
#     POST /contoso/oauth2/v2.0/token for DURATION seconds (each token sent once):
#       A: server pinned to core 0 (one worker), wrk pinned to core 1;
#       B: server workers on every core, wrk unpinned;
#     and prints, per run, exchanges/s, p50/p99/p99.9 latency, errors, server CPU (total and
#     per exchange), context switches per exchange and peak RSS, then a table of trustbridge
#     against the bare server;
#  4. measures the crypto-bound reference (bare aws-lc-rs RS256 verify + ES256 sign, no HTTP)
#     in the same run and prints each result's ratio to it (vs_ref);
#  5. open loop: per placement, trustbridge again at a fixed offered rate of half its peak
#     (oha -q with --latency-correction, so a slow answer cannot hold back the next request),
#     then the bare server at the same rate as the same-run reference, printing p50/p99/p99.9
#     at that rate. oha sends a random line of the pool per request
#     (-Z), so a token may be sent twice: the bundled policies have no oneTimeUse and no rate
#     limit, so a repeat costs the same as a fresh token and is accepted.
#
# Targets (issue 13) are printed next to the figures with pass/fail words; a missed target never
# fails the script: these are measurements on shared machines, not tests.
#
# Knobs (environment): DURATION (s per run, default 10), CONCURRENCY (default "32 128"),
# POOL (tokens minted, default 250000), PLACEMENTS (default "A B"), SIGNING (issued-token
# algorithm, default ES256), PORT (default 18080), BENCH_DIR (default <target>/bench-load),
# OPEN_LOOP (default 1; 0 skips step 5), OPEN_CONNS (oha connections, default 32), CONTROLS
# (default 1; 0 skips the request-controls run of issue 15), REPEAT (rounds of every server per
# placement and concurrency, run in turn, default 1: with more, the comparison tables take the
# median of the rounds' rates, p99s and CPU per exchange, which a noisy shared machine needs),
# ABLATE (default 0; 1 adds, in every round, trustbridge with features of the measured exchange
# turned off one at a time through real settings: the audit trail written to /dev/null instead
# of a file (`--audit-log /dev/null`), the issued-token self-check at load only (`--verify-issued
# load`), the bundled policies without deploy-bot's CEL claim mapping
# (`scripts/bench-policies.py no-mapping`), and all three at once; it prints what each costs per
# exchange and what share of the gap to the bare server it accounts for).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-"32 128"}
POOL=${POOL:-250000}
PLACEMENTS=${PLACEMENTS:-"A B"}
SIGNING=${SIGNING:-ES256}
PORT=${PORT:-18080}
OPEN_LOOP=${OPEN_LOOP:-1}
OPEN_CONNS=${OPEN_CONNS:-32}
CONTROLS=${CONTROLS:-1}
REPEAT=${REPEAT:-1}
ABLATE=${ABLATE:-0}
TARGET=${CARGO_TARGET_DIR:-target}
BENCH_DIR=${BENCH_DIR:-$TARGET/bench-load}
TOOLS=$TARGET/tools
OHA_VERSION=1.16.0
TENANT=contoso
CORES=$(nproc)
CLK_TCK=$(getconf CLK_TCK)
# Targets of issue 13, printed with the figures.
TARGET_RATIO=0.90
TARGET_P99_MS=2
TARGET_RSS_MIB=32
# Issue 15: the request controls may cost at most this much more server CPU per exchange.
TARGET_CONTROLS=5

log() { printf '%s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
OHA=$(command -v oha || true)
if [ "$OPEN_LOOP" = 1 ] && [ -z "$OHA" ]; then
  OHA=$TOOLS/bin/oha
  if [ ! -x "$OHA" ]; then
    # No Debian package in bookworm: build it from crates.io, pinned and --locked. oha 1.16
    # does not compile without a TLS backend; native-tls (Debian's OpenSSL) builds much faster
    # than its default rustls + aws-lc-sys. The loopback benchmark never uses TLS.
    log "installing oha $OHA_VERSION (cargo install, a few minutes once) into $TOOLS"
    if ! dpkg -s libssl-dev pkg-config >/dev/null 2>&1; then
      SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
      $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libssl-dev pkg-config >/dev/null
    fi
    cargo install --quiet oha --version "$OHA_VERSION" --locked --no-default-features \
      --features native-tls --root "$TOOLS" >&2 || true
  fi
  if [ ! -x "$OHA" ]; then
    log "oha could not be installed: skipping the open-loop measurement"; OPEN_LOOP=0
  fi
fi
if [ "$CORES" -lt 2 ]; then
  log "placement A needs two cores; this machine has $CORES"; PLACEMENTS=${PLACEMENTS//A/}
fi

log "building release binary and helpers"
cargo build --release --quiet --bin trustbridge --example mint --example crypto_reference \
  --example bare_server
BIN=$TARGET/release/trustbridge
MINT=$TARGET/release/examples/mint
REFERENCE=$TARGET/release/examples/crypto_reference
BARE=$TARGET/release/examples/bare_server

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
JWKS=$BENCH_DIR/data/demo-issuer/jwks.json

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

# The controls run (issue 15): the bundled policies with deploy-bot's credential also bound to
# the request: an allowedNetworks list and a CEL condition on request.ip and request.time; the
# server believes X-Forwarded-For from 127.0.0.1, and wrk sends one naming the client.
CONTROLS_POLICIES=$BENCH_DIR/controls-policies
CONTROLS_CLIENT=198.51.100.7
# The ablation runs' policies: the bundled ones without deploy-bot's claim mapping.
ABLATE_POLICIES=$BENCH_DIR/ablation-policies
make_ablation_policies() {
  python3 scripts/bench-policies.py no-mapping policies "$ABLATE_POLICIES"
  "$BIN" policy check "$ABLATE_POLICIES" >/dev/null
}
make_controls_policies() {
  python3 scripts/bench-policies.py controls policies "$CONTROLS_POLICIES"
  "$BIN" policy check "$CONTROLS_POLICIES" >/dev/null
}

# start_server <trustbridge|bare|controls|no-audit-file|verify-load|no-mapping|minimal>
# <placement>: the same pinning and worker count for every kind.
start_server() {
  local pin=() workers=0 policies=policies extra=() warm_headers=()
  if [ "$2" = A ]; then pin=(taskset -c 0); workers=1; fi
  if [ "$1" = controls ]; then
    policies=$CONTROLS_POLICIES
    extra=(--trusted-proxies 127.0.0.1/32)
    warm_headers=(-H "X-Forwarded-For: $CONTROLS_CLIENT")
  fi
  case $1 in
    no-audit-file) extra=(--audit-log /dev/null) ;;
    verify-load) extra=(--verify-issued load) ;;
    no-mapping) policies=$ABLATE_POLICIES ;;
    minimal) policies=$ABLATE_POLICIES; extra=(--audit-log /dev/null --verify-issued load) ;;
  esac
  if [ "$1" = bare ]; then
    "${pin[@]}" "$BARE" "127.0.0.1:$PORT" "$JWKS" "$workers" >"$BENCH_DIR/bare.log" 2>&1 &
  else
    rm -rf "$BENCH_DIR/keys"
    "${pin[@]}" "$BIN" serve --listen "127.0.0.1:$PORT" --policies "$policies" \
      --data-dir "$BENCH_DIR/data" --keys "$BENCH_DIR/keys" --signing-algorithm "$SIGNING" \
      --workers "$workers" --log-format json --admin-listen off "${extra[@]}" \
      >"$BENCH_DIR/server.log" 2>&1 &
  fi
  SERVER_PID=$!
  # One exchange with a token outside the pool, retried until the server listens and is ready
  # (000: nothing listening yet; 503: not ready): loads the issuer keys, checks the setup.
  local status=000
  for _ in $(seq 1 100); do
    status=$(curl -s -o "$BENCH_DIR/warmup.json" -w '%{http_code}' "${warm_headers[@]}" \
      "http://127.0.0.1:$PORT/$TENANT/oauth2/v2.0/token" --data @"$WARMUP" || true)
    case $status in 000 | 503) sleep 0.1 ;; *) break ;; esac
  done
  if [ "$status" != 200 ]; then
    log "$1: warm-up exchange failed with HTTP $status: $(cat "$BENCH_DIR/warmup.json")"
    exit 1
  fi
}

# medians "<rate p99 cpu rss>;...": the median rate, p99 and CPU per exchange of the rounds
# (the upper one of an even count) and their highest RSS.
medians() {
  tr ';' '\n' <<<"$1" | awk 'NF == 4 { n++; r[n] = $1; p[n] = $2; c[n] = $3; if ($4 > m) m = $4 }
    function med(a,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
        t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return a[int(n / 2) + 1] }
    END { printf "%.0f %.2f %.1f %.1f\n", med(r), med(p), med(c), m }'
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Context switches (voluntary + involuntary) of every thread of the process: a thread woken per
# request costs its core two of them, which the CPU column shows only as a higher figure.
ctx_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ {n += $2} END {print n + 0}'
}
peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# run_wrk <server> <placement> <conns> <reference rate>: one closed-loop run. Prints its row
# of the per-run table and sets R_RATE, R_P99, R_CPU_US and R_RSS for the comparison.
run_wrk() {
  local server=$1 placement=$2 conns=$3 ref=$4 wrk_cmd
  start_server "$server" "$placement"
  if [ "$placement" = A ]; then wrk_cmd=(taskset -c 1 wrk -t1); else wrk_cmd=(wrk -t"$CORES"); fi
  local threads=${wrk_cmd[-1]#-t} before after rss out line forwarded=""
  if [ "$server" = controls ]; then forwarded=$CONTROLS_CLIENT; fi
  before=$(cpu_ticks "$SERVER_PID")
  local switches_before switches_after
  switches_before=$(ctx_switches "$SERVER_PID")
  out=$("${wrk_cmd[@]}" -c"$conns" -d"${DURATION}s" --timeout 5s \
    -s scripts/bench-load.lua "http://127.0.0.1:$PORT" -- "$BODIES" "$threads" "$TENANT" \
    "$forwarded")
  after=$(cpu_ticks "$SERVER_PID")
  switches_after=$(ctx_switches "$SERVER_PID")
  rss=$(peak_rss_kib "$SERVER_PID")
  stop_server
  line=$(grep '^RESULT' <<<"$out")
  val() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" ${line#RESULT}"; }
  local errors
  errors=$(( $(val err_connect) + $(val err_read) + $(val err_write) + $(val err_status) + $(val err_timeout) ))
  local row
  row=$(awk -v p="$placement" -v s="$server" -v c="$conns" -v n="$(val requests)" \
      -v d="$(val duration_us)" -v p50="$(val p50_us)" -v p99="$(val p99_us)" \
      -v p999="$(val p999_us)" -v e="$errors" -v ticks="$((after - before))" -v hz="$CLK_TCK" \
      -v rss="$rss" -v ref="$ref" -v rep="$(val repeated)" \
      -v sw="$((switches_after - switches_before))" 'BEGIN {
    secs = d / 1e6; rate = n / secs; cpu = ticks / hz; us = 0; swx = 0;
    if (n > 0) { us = 1e6 * cpu / n; swx = sw / n }
    printf "%-9s %5d %-11s %12.0f %9.2f %9.2f %9.2f %7d %6.0f %8.1f %8.1f %7.2f %6d %6.2f|%.0f %.2f %.1f %.1f\n",
      p, c, s, rate, p50 / 1000, p99 / 1000, p999 / 1000, e, 100 * cpu / secs,
      us, rss / 1024, rate / ref, rep, swx, rate, p99 / 1000, us, rss / 1024 }')
  printf '%s\n' "${row%%|*}"
  read -r R_RATE R_P99 R_CPU_US R_RSS <<<"${row#*|}"
  if [ "$errors" -gt 0 ]; then
    log "  $server errors: $(sed 's/^RESULT //' <<<"$line")"
  fi
}

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
printf '%-9s %5s %-11s %12s %9s %9s %9s %7s %6s %8s %8s %7s %6s %6s\n' placement conns server \
  "exchanges/s" p50_ms p99_ms p99.9_ms errors cpu_% cpu_us/x rss_MiB vs_ref repeat ctxsw/x

if [ "$CONTROLS" = 1 ]; then make_controls_policies; fi
ABLATIONS=()
if [ "$ABLATE" = 1 ]; then make_ablation_policies; ABLATIONS=(no-audit-file verify-load no-mapping minimal); fi
ABLATION_ROWS=()
COMPARE=()
CONTROLS_ROWS=()
declare -A PEAK
for placement in $PLACEMENTS; do
  if [ "$placement" = A ]; then ref=$REF_ONE; else ref=$REF_ALL; fi
  PEAK[$placement]=0
  for conns in $CONCURRENCY; do
    # REPEAT rounds of the servers in turn; each table below takes the median of its rounds
    # (rate, p99, CPU per exchange) and the highest peak RSS.
    declare -A RUNS=()
    for _ in $(seq 1 "$REPEAT"); do
      for server in trustbridge controls "${ABLATIONS[@]}" bare; do
        if [ "$server" = controls ] && [ "$CONTROLS" != 1 ]; then continue; fi
        run_wrk "$server" "$placement" "$conns" "$ref"
        RUNS[$server]+="$R_RATE $R_P99 $R_CPU_US $R_RSS;"
      done
    done
    read -r tb_rate tb_p99 tb_cpu tb_rss <<<"$(medians "${RUNS[trustbridge]}")"
    if [ "$tb_rate" -gt "${PEAK[$placement]}" ]; then PEAK[$placement]=$tb_rate; fi
    if [ "$CONTROLS" = 1 ]; then
      read -r R_RATE R_P99 R_CPU_US R_RSS <<<"$(medians "${RUNS[controls]}")"
      CONTROLS_ROWS+=("$(awk -v p="$placement" -v c="$conns" -v tr="$tb_rate" -v cr="$R_RATE" \
          -v tp="$tb_p99" -v cp="$R_P99" -v tc="$tb_cpu" -v cc="$R_CPU_US" -v want="$TARGET_CONTROLS" 'BEGIN {
        slower = 0; if (tc > 0) slower = 100 * (cc - tc) / tc;
        ok = "FAIL"; if (slower <= want) ok = "pass";
        printf "%-9s %5d %10d %10d %7.2f %7.2f %8.1f %8.1f %+8.1f%% %-5s\n",
          p, c, tr, cr, tp, cp, tc, cc, slower, ok }')")
    fi
    read -r R_RATE R_P99 R_CPU_US R_RSS <<<"$(medians "${RUNS[bare]}")"
    for variant in "${ABLATIONS[@]}"; do
      read -r a_rate _ a_cpu _ <<<"$(medians "${RUNS[$variant]}")"
      ABLATION_ROWS+=("$(awk -v p="$placement" -v c="$conns" -v v="$variant" -v ar="$a_rate" \
          -v ac="$a_cpu" -v tr="$tb_rate" -v tc="$tb_cpu" -v br="$R_RATE" -v bc="$R_CPU_US" 'BEGIN {
        share = 0; if (tc > bc) share = 100 * (tc - ac) / (tc - bc);
        ratio = 0; if (br > 0) ratio = ar / br;
        printf "%-9s %5d %-14s %10d %8.1f %+8.1f %7.0f%% %9.2f\n", p, c, v, ar, ac, ac - tc, share, ratio }')")
    done
    COMPARE+=("$(awk -v p="$placement" -v c="$conns" -v tr="$tb_rate" -v br="$R_RATE" \
        -v tp="$tb_p99" -v bp="$R_P99" -v tc="$tb_cpu" -v bc="$R_CPU_US" -v tm="$tb_rss" \
        -v bm="$R_RSS" -v ref="$ref" -v want="$TARGET_RATIO" -v rss_max="$TARGET_RSS_MIB" 'BEGIN {
      ratio = 0; if (br > 0) ratio = tr / br;
      ok_ratio = "FAIL"; if (ratio >= want) ok_ratio = "pass";
      ok_rss = "FAIL"; if (tm <= rss_max) ok_rss = "pass";
      printf "%-9s %5d %10d %10d %7.2f %-5s %7.2f %8.2f %7.1f %9.1f %7.1f %-5s %8.1f %7.2f\n",
        p, c, tr, br, ratio, ok_ratio, tp, bp, tc, bc, tm, ok_rss, bm, tr / ref }')")
  done
done

printf '\n== trustbridge against the bare server, same run (target tb/bare >= %s, RSS <= %s MiB) ==\n' \
  "$TARGET_RATIO" "$TARGET_RSS_MIB"
printf '%-9s %5s %10s %10s %7s %-5s %7s %8s %7s %9s %7s %-5s %8s %7s\n' placement conns tb/s \
  bare/s tb/bare "" tb_p99 bare_p99 tb_us/x bare_us/x tb_MiB "" bare_MiB tb/ref
printf '%s\n' "${COMPARE[@]}"

if [ "$CONTROLS" = 1 ]; then
  printf '\n== request controls (issue 15): allowedNetworks + a request CEL condition + trusted proxies, same run (target: at most %s%% more CPU per exchange) ==\n' \
    "$TARGET_CONTROLS"
  printf '%-9s %5s %10s %10s %7s %7s %8s %8s %9s %-5s\n' placement conns tb/s ctl/s tb_p99 \
    ctl_p99 tb_us/x ctl_us/x cpu_diff ""
  printf '%s\n' "${CONTROLS_ROWS[@]}"
fi

if [ "$ABLATE" = 1 ]; then
  printf '\n== ablation: trustbridge with one feature of the exchange off (real settings), same run ==\n'
  printf '%-9s %5s %-14s %10s %8s %8s %8s %9s\n' placement conns variant "rate/s" "us/x" "d_us/x" \
    "of_gap" "vs_bare"
  printf '%s\n' "${ABLATION_ROWS[@]}"
  printf 'd_us/x: CPU per exchange against trustbridge as configured; of_gap: the share of the CPU\n'
  printf 'gap between trustbridge and the bare server that the feature accounts for.\n'
fi

if [ "$OPEN_LOOP" = 1 ]; then
  printf '\n== open loop: trustbridge at half its peak, then the bare server at the same rate, oha -q --latency-correction, %s connections (target: trustbridge p99 <= %s ms) ==\n' \
    "$OPEN_CONNS" "$TARGET_P99_MS"
  printf '%-9s %-11s %9s %9s %9s %9s %9s %7s %-5s\n' placement server offered/s achieved p50_ms \
    p99_ms p99.9_ms errors ""
  for placement in $PLACEMENTS; do
    qps=$(( PEAK[$placement] / 2 ))
    [ "$qps" -gt 0 ] || continue
    # The bare server at the same offered rate is the same-run reference: what this machine's
    # scheduling and loopback add to any server's tail at that rate.
    for server in trustbridge bare; do
      start_server "$server" "$placement"
      oha_cmd=("$OHA")
      if [ "$placement" = A ]; then oha_cmd=(taskset -c 1 "$OHA"); fi
      "${oha_cmd[@]}" --no-tui --output-format json -o "$BENCH_DIR/oha-$placement-$server.json" \
        -z "${DURATION}s" -q "$qps" --latency-correction -c "$OPEN_CONNS" -m POST \
        -T application/x-www-form-urlencoded -Z "$BODIES" \
        "http://127.0.0.1:$PORT/$TENANT/oauth2/v2.0/token" >/dev/null
      stop_server
      python3 - "$BENCH_DIR/oha-$placement-$server.json" "$placement" "$server" "$qps" \
        "$TARGET_P99_MS" <<'EOF'
import json, sys
path, placement, server = sys.argv[1], sys.argv[2], sys.argv[3]
qps, want = int(sys.argv[4]), float(sys.argv[5])
r = json.load(open(path))
lat = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
errors = sum(r.get("errorDistribution", {}).values()) + sum(
    n for code, n in codes.items() if code != "200")
ms = lambda key: 1000 * (lat.get(key) or 0)
p99 = ms("p99")
verdict = ("pass" if p99 <= want else "FAIL") if server == "trustbridge" else "ref"
print(f"{placement:<9} {server:<11} {qps:9d} {r['summary']['requestsPerSec']:9.0f} "
      f"{ms('p50'):9.2f} {p99:9.2f} {ms('p99.9'):9.2f} {errors:7d} {verdict}")
EOF
    done
  done
fi

printf '\ncpu_us/x: server CPU (user + system) per exchange. ctxsw/x: context switches of all the\n'
printf 'server'"'"'s threads per exchange. vs_ref, tb/ref: exchanges/s over the\n'
printf 'crypto-bound reference of the cores the server may use (A: one core; B: all cores, shared\n'
printf 'with the load generator). The bare server is the same route with only the crypto: tb/bare\n'
printf 'is the share of it trustbridge reaches. load after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# Exchange throughput of one replica against two (same machine, same load generator):
#   deploy/bench/replicas.sh [path/to/trustbridge] [seconds]
# Needs wrk and a Redis on 127.0.0.1:6379. Each replica runs one worker thread; both share a
# key directory, the demo issuer and Redis (with an identity rate limit high enough never to
# trip, so every exchange also does a Redis INCR). Load: 16 connections in total, split
# evenly over the replicas, replaying one Grant A request (not one-time-use).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/trustbridge}
SECS=${2:-10}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() { # port
  TRUSTBRIDGE_LOG=warn "$BIN" serve --listen "127.0.0.1:$1" --public-url http://127.0.0.1:18080 \
    --policies policies --data-dir "$work/data" --keys "$work/keys" --workers 1 \
    --redis-url redis://127.0.0.1:6379 --redis-key-prefix "bench:$$:" \
    --rate-limit-identity 100000000/m --admin-listen off >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.1; done
  echo "replica on $1 did not start" >&2; exit 1
}

"$BIN" demo token --data-dir "$work/data" >/dev/null
start 18081
start 18082
TOKEN=$("$BIN" demo token --data-dir "$work/data" --lifetime 1h \
  --subject repo:contoso/infra:ref:refs/heads/main --claim repository=contoso/infra)
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "grant_type=client_credentials&client_id=deploy-bot&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&scope=api%3A%2F%2Fpayments%2F.default&client_assertion=$TOKEN"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.2f\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(99) / 1000))
end
LUA
url=/contoso/oauth2/v2.0/token
curl -sf -X POST "http://127.0.0.1:18081$url" -H 'content-type: application/x-www-form-urlencoded' \
  --data "grant_type=client_credentials&client_id=deploy-bot&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&scope=api%3A%2F%2Fpayments%2F.default&client_assertion=$TOKEN" >/dev/null \
  || { echo "warm-up exchange failed" >&2; exit 1; }
curl -sf -X POST "http://127.0.0.1:18082$url" -H 'content-type: application/x-www-form-urlencoded' \
  --data "grant_type=client_credentials&client_id=deploy-bot&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&scope=api%3A%2F%2Fpayments%2F.default&client_assertion=$TOKEN" >/dev/null

run() { # port connections -> "requests errors p99ms"
  wrk -t1 -c"$2" -d"${SECS}s" -s "$work/post.lua" "http://127.0.0.1:$1$url" | awk '/^RESULT/ {print $2, $3, $4}'
}

read -r one_req one_err one_p99 < <(run 18081 16)
run 18081 8 > "$work/a" & wa=$!
run 18082 8 > "$work/b" & wb=$!
wait $wa $wb
read -r a_req a_err a_p99 < "$work/a"
read -r b_req b_err b_p99 < "$work/b"
two_req=$((a_req + b_req)); two_err=$((a_err + b_err))
echo "one replica : $(awk -v r="$one_req" -v s="$SECS" 'BEGIN{printf "%.0f", r/s}') exchanges/s, p99 ${one_p99} ms, errors $one_err"
echo "two replicas: $(awk -v r="$two_req" -v s="$SECS" 'BEGIN{printf "%.0f", r/s}') exchanges/s, p99 ${a_p99}/${b_p99} ms, errors $two_err"

-- wrk script of scripts/bench-load.sh: POST each pre-minted token request body once.
--
-- Arguments (after `--`): <bodies file> <wrk threads> <tenant> [X-Forwarded-For value].
-- Thread k of n sends lines k, k+n, k+2n, ... of the file, so no line is sent twice in a run
-- unless the pool runs out; then it wraps around and counts the repeats, which done() reports.
-- With a fourth argument every request carries it as X-Forwarded-For (the controls run).

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads, tenant, forwarded = args[1], tonumber(args[2]), args[3], args[4]
  local path = "/" .. tenant .. "/oauth2/v2.0/token"
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  if forwarded and forwarded ~= "" then
    headers["X-Forwarded-For"] = forwarded
  end
  requests = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      requests[#requests + 1] = wrk.format("POST", path, headers, line)
    end
    i = i + 1
  end
  cursor = 0
  repeats = 0
end

function request()
  cursor = cursor + 1
  if cursor > #requests then
    cursor = 1
  end
  if sent_all then
    repeats = repeats + 1
  end
  if cursor == #requests then
    sent_all = true
  end
  return requests[cursor]
end

function done(summary, latency, requests)
  local repeated = 0
  for _, thread in ipairs(threads) do
    repeated = repeated + (thread:get("repeats") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d repeated=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect, e.read, e.write, e.status, e.timeout, repeated))
end

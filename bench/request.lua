-- wrk script of bench/run: one request shape, from the environment, and a summary line.
--
--   BENCH_METHOD  GET or POST (default GET)
--   BENCH_BASIC   base64 of "client_id:secret": sends Authorization: Basic (optional)
--   BENCH_BODY    form body: sends Content-Type: application/x-www-form-urlencoded (optional)
--
-- Any response outside 200-299 counts as an error. The last line wrk prints is
--   BENCH requests=N non2xx=N socket_errors=N duration_us=N rps=F p50_us=N p99_us=N

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local basic = os.getenv("BENCH_BASIC")
if basic and basic ~= "" then
  wrk.headers["Authorization"] = "Basic " .. basic
end
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = body
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local non2xx_total = 0
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH requests=%d non2xx=%d socket_errors=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d\n",
    summary.requests, non2xx_total, socket_errors, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99)))
end

-- Print wrk's summary as one JSON line, so the harness need not parse wrk's text.
-- Optional, from the environment: BENCH_POST_BODY sends a form POST instead of a GET,
-- BENCH_COOKIE adds a Cookie header, and BENCH_EXPECT_STATUS (with BENCH_EXPECT_LOCATION)
-- counts every other response as "unexpected" (wrk itself only counts statuses >= 400).
local post_body = os.getenv("BENCH_POST_BODY")
local cookie = os.getenv("BENCH_COOKIE")
local expect_status = tonumber(os.getenv("BENCH_EXPECT_STATUS") or "")
local expect_location = os.getenv("BENCH_EXPECT_LOCATION")

if post_body then
  wrk.method = "POST"
  wrk.body = post_body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
if cookie then
  wrk.headers["Cookie"] = cookie
end

unexpected = 0
if expect_status then
  response = function(status, headers, body)
    local location = headers["location"] or headers["Location"]
    if status ~= expect_status or (expect_location and location ~= expect_location) then
      unexpected = unexpected + 1
    end
  end
end

local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end

done = function(summary, latency, requests)
  local e = summary.errors
  local unexpected_total = 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + (thread:get("unexpected") or 0)
  end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %.1f, "p90_us": %.1f, ' ..
    '"p99_us": %.1f, "max_us": %.1f, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "unexpected": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    unexpected_total))
end

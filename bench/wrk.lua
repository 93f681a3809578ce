-- wrk script for the bench runner. Environment:
--   BENCH_RANGE_SIZE, BENCH_FILE_SIZE: when set, every request asks for a random range of that many
--     bytes within the file (Range: bytes=a-b), so no two requests read the same place.
-- At the end it prints one line `WRKJSON {...}` that the runner parses.
local rangeSize = tonumber(os.getenv("BENCH_RANGE_SIZE") or "0")
local fileSize = tonumber(os.getenv("BENCH_FILE_SIZE") or "0")

if rangeSize > 0 then
  math.randomseed(os.time())
  request = function()
    local first = math.random(0, fileSize - rangeSize)
    return wrk.format(nil, nil, { ["Range"] = "bytes=" .. first .. "-" .. (first + rangeSize - 1) })
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

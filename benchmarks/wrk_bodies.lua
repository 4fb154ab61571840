-- wrk script for the prefill benchmark: POSTs the JSON bodies of a file (one per line) round-robin,
-- each wrk thread starting at its own offset; prints the figures as one JSON line at the end.
--   BODIES=bodies.jsonl AUTH="Bearer ..." wrk -t1 -c32 -d15s -s benchmarks/wrk_bodies.lua URL
-- Without BODIES it GETs the URL. Status codes other than 2xx/3xx are counted, not hidden.

local bodies, i = {}, 0
local auth = os.getenv("AUTH")

function setup(thread)
  thread:set("offset", math.random(0, 100000))
end

function init(args)
  local path = os.getenv("BODIES")
  if path then
    for line in io.lines(path) do
      if #line > 0 then bodies[#bodies + 1] = line end
    end
  end
  i = offset or 0
  wrk.headers["Content-Type"] = "application/json"
  if auth then wrk.headers["Authorization"] = auth end
end

function request()
  if #bodies == 0 then
    return wrk.format("GET")
  end
  i = i + 1
  return wrk.format("POST", nil, nil, bodies[(i % #bodies) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"max_ms": %.3f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end

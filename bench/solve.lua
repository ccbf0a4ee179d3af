-- wrk script: POST a scrambled PNG to /v1/solve. Set PUZZLE to the body's path and CONTENT_TYPE
-- to its media type (default image/png; application/json for a piece list).
local path = os.getenv("PUZZLE") or "/tmp/puzzle-2x2.png"
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "image/png"

done = function(summary, latency, requests)
  io.write(string.format("non-2xx/3xx responses: %d\n", summary.errors.status))
  io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n", summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
  io.write(string.format("p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, requests/s %.1f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6)))
end

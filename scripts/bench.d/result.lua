-- The RESULT line every wrk script of scripts/bench prints (scripts/bench
-- greps it). Loaded with dofile by events.lua and slack.lua (wrk runs from
-- the repository's root).
function done(summary, latency, requests)
  local s = summary
  io.write(string.format(
    "RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f socket_errors=%d non2xx=%d\n",
    s.requests, s.duration / 1e6, s.requests / (s.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout, s.errors.status))
end

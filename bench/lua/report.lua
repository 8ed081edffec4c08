-- Shared by every bench script: done() prints one line the runner parses (bench/report.py).
-- Latencies are microseconds; wrk's own --latency table has no p95, so the percentiles come from here.

function bench_report(summary, latency, extra)
  local fields = {
    string.format('"requests": %d', summary.requests),
    string.format('"duration_us": %d', summary.duration),
    string.format('"bytes": %d', summary.bytes),
    string.format('"max_us": %d', latency.max),
    string.format('"mean_us": %.1f', latency.mean),
  }
  for _, p in ipairs({ 50, 75, 90, 95, 99 }) do
    fields[#fields + 1] = string.format('"p%d_us": %d', p, latency:percentile(p))
  end
  for name, count in pairs(summary.errors) do
    fields[#fields + 1] = string.format('"errors_%s": %d', name, count)
  end
  for name, value in pairs(extra or {}) do
    fields[#fields + 1] = string.format('"%s": %d', name, value)
  end
  io.write("BENCH_JSON {" .. table.concat(fields, ", ") .. "}\n")
end

function done(summary, latency, requests)
  bench_report(summary, latency, {})
end

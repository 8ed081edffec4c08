-- Shared by the checkout scripts: the threads wrk starts, the shopper session tokens, the checkout request, and
-- done() summing each thread's counters into the line bench/lua/report.lua prints.
dofile("bench/lua/report.lua")

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_id", #threads)
end

-- The non-empty lines of the token file.
function read_tokens(path)
  local tokens = {}
  for line in io.lines(path) do
    if #line > 0 then
      tokens[#tokens + 1] = line
    end
  end
  return tokens
end

-- POST /api/checkout of one unit of `product`, with a fresh Idempotency-Key (run id, thread id, request number).
-- Threads interleave over the token list, so no two requests in flight share a session.
function checkout_request(tokens, thread_count, run_id, sent, product)
  local token = tokens[((sent * thread_count + thread_id) % #tokens) + 1]
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Session-Token"] = token,
    ["Idempotency-Key"] = string.format("%s-%d-%d", run_id, thread_id, sent),
  }
  return wrk.format("POST", "/api/checkout", headers, string.format('{"product_id": %d, "quantity": 1}', product))
end

-- Report the sum over the threads of each counter named in `totals` (all starting at 0).
function report_thread_totals(summary, latency, totals)
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  bench_report(summary, latency, totals)
end

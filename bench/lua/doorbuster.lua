-- The doorbuster race: each thread POSTs BUDGET checkouts of one product (quantity 1, a session token round robin,
-- a fresh Idempotency-Key each), then stops. Requests wrk asks for past the budget, before the thread has stopped,
-- are GET /health (answered 200, which no checkout answers, so they are not counted as checkouts). A thread that
-- has its answers prints THREAD_DONE; wrk itself would wait out its whole -d.
-- Usage: wrk ... -s bench/lua/doorbuster.lua URL -- TOKEN_FILE PRODUCT_ID BUDGET RUN_ID THREADS
dofile("bench/lua/sessions.lua")

local tokens = {}
local product = 0
local budget = 0
local run_id = "run"
local thread_count = 1
local sent = 0
status_201, status_409, status_503_retry, status_503_bare, status_5xx_other, status_other, answered = 0, 0, 0, 0, 0, 0, 0

function init(args)
  tokens = read_tokens(args[1])
  product = tonumber(args[2])
  budget = tonumber(args[3])
  run_id = args[4]
  thread_count = tonumber(args[5])
end

function request()
  if sent >= budget then
    return wrk.format("GET", "/health")
  end
  sent = sent + 1
  return checkout_request(tokens, thread_count, run_id, sent, product)
end

function response(status, headers, body)
  if status == 200 then
    return
  end
  answered = answered + 1
  if status == 201 then
    status_201 = status_201 + 1
  elseif status == 409 then
    status_409 = status_409 + 1
  elseif status == 503 then
    if headers["Retry-After"] then
      status_503_retry = status_503_retry + 1
    else
      status_503_bare = status_503_bare + 1
    end
  elseif status >= 500 then
    status_5xx_other = status_5xx_other + 1
  else
    status_other = status_other + 1
  end
  if answered == budget then
    -- The runner reads these lines as they come and stops wrk once every thread has printed one.
    io.write("THREAD_DONE\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local totals = {
    status_201 = 0, status_409 = 0, status_503_retry = 0, status_503_bare = 0, status_5xx_other = 0,
    status_other = 0, answered = 0,
  }
  report_thread_totals(summary, latency, totals)
end

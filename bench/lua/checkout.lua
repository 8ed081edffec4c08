-- Checkout over real shopper sessions: each request POSTs one line (quantity 1) for a product drawn at random
-- from the given ids, with a session token taken round robin and a fresh Idempotency-Key, as a careful client sends.
-- Usage: wrk ... -s bench/lua/checkout.lua URL -- TOKEN_FILE PRODUCT_IDS(comma-separated) RUN_ID THREADS
dofile("bench/lua/sessions.lua")

local tokens = {}
local products = {}
local run_id = "run"
local thread_count = 1
local sent = 0
status_2xx, status_4xx, status_5xx, status_other, status_409 = 0, 0, 0, 0, 0

function init(args)
  tokens = read_tokens(args[1])
  for id in string.gmatch(args[2], "%d+") do
    products[#products + 1] = tonumber(id)
  end
  run_id = args[3]
  thread_count = tonumber(args[4])
  math.randomseed(thread_id)
end

function request()
  sent = sent + 1
  return checkout_request(tokens, thread_count, run_id, sent, products[math.random(#products)])
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    status_2xx = status_2xx + 1
  elseif status >= 500 then
    status_5xx = status_5xx + 1
  elseif status >= 400 then
    status_4xx = status_4xx + 1
    if status == 409 then
      status_409 = status_409 + 1
    end
  else
    status_other = status_other + 1
  end
end

function done(summary, latency, requests)
  local totals = { status_2xx = 0, status_4xx = 0, status_5xx = 0, status_other = 0, status_409 = 0 }
  report_thread_totals(summary, latency, totals)
end

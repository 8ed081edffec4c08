-- Cold product list: every request carries a query parameter no other request had, so its cache key
-- can never hit and each request takes the whole miss path (Redis GET, rebuild lock, SQL, serialize, SET).
-- Usage: wrk ... -s bench/lua/cold.lua URL -- RUN_ID
dofile("bench/lua/report.lua")

local next_thread = 1

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

local sent = 0
local run_id = "run"
local separator = "?"

function init(args)
  run_id = args[1] or run_id
  if string.find(wrk.path, "?", 1, true) then
    separator = "&"
  end
end

function request()
  sent = sent + 1
  local path = string.format("%s%sbench_nonce=%s-%d-%d", wrk.path, separator, run_id, thread_id, sent)
  return wrk.format(nil, path)
end

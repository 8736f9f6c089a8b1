-- wrk script: POST /api/v1/events with unique ids.
-- Args (after --): MODE RUNID TOKEN
--   MODE new  : every event opens a new conversation (new thread).
--   MODE mix  : 20% new threads, 80% follow-ups (inbound/outbound) on this
--               wrk thread's recent conversations.
--   MODE dup  : the same event id every time (idempotent path, no writes).
--   MODE healthz : GET /healthz (the HTTP stack's ceiling, same Lua overhead).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "new"
  runid = args[2] or "run"
  token = args[3] or "bench-token"
  headers = { ["Content-Type"] = "application/json",
              ["Authorization"] = "Bearer " .. token }
  open = 0   -- conversations this wrk thread opened so far
end

local function event(id, thread, direction, from, subject)
  return string.format(
    '{"id":"%s","channel":"tickets","thread":"%s","direction":"%s","from":"%s","subject":"%s","body":"Customers cannot pay since 10:02."}',
    id, thread, direction, from, subject)
end

function request()
  counter = counter + 1
  local body
  if mode == "healthz" then
    return wrk.format("GET", "/healthz")
  elseif mode == "dup" then
    body = event(runid .. "-dup", runid .. "-dup-thread", "inbound", "jane@acme.com", "Checkout is down")
  elseif mode == "new" or open == 0 or counter % 5 == 1 then
    open = open + 1
    local th = string.format("%s-%d-%d", runid, tid, open)
    body = event(th .. "-e" .. counter, th, "inbound", "jane@acme.com", "Checkout is down")
  else
    -- a follow-up on one of the last 50 conversations of this wrk thread
    local n = open - (counter % math.min(open, 50))
    local th = string.format("%s-%d-%d", runid, tid, n)
    local dir = (counter % 2 == 0) and "outbound" or "inbound"
    local from = (dir == "outbound") and "support@example.com" or "jane@acme.com"
    body = event(th .. "-e" .. counter, th, dir, from, "Re: Checkout is down")
  end
  return wrk.format("POST", "/api/v1/events", headers, body)
end

dofile("scripts/bench.d/result.lua")

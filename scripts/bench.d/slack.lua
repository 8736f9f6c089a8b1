-- wrk script: POST /webhooks/slack with bodies signed beforehand
-- (scripts/bench.d/slack_bodies.py): wrk's Lua has no HMAC, and every body
-- must be a new event_id, so each line of the file is one request,
-- "SIGNATURE<TAB>BODY", all at one timestamp.
-- Args (after --): FILE TIMESTAMP
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file, stamp = args[1], args[2]
  local nthreads = tonumber(args[3] or "2")
  lines = {}
  local i = 0
  for line in io.lines(file) do
    -- Each wrk thread takes every nthreads-th line: no body is sent twice.
    if i % nthreads == tid then
      local tab = line:find("\t", 1, true)
      table.insert(lines, { line:sub(1, tab - 1), line:sub(tab + 1) })
    end
    i = i + 1
  end
  headers = { ["Content-Type"] = "application/json", ["X-Slack-Request-Timestamp"] = stamp }
  n = 0
end

function request()
  n = n + 1
  local l = lines[((n - 1) % #lines) + 1]
  headers["X-Slack-Signature"] = l[1]
  return wrk.format("POST", "/webhooks/slack", headers, l[2])
end

dofile("scripts/bench.d/result.lua")

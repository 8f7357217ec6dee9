-- bench/calls.lua — wrk's side of bench/calls.sh: the same JSON-RPC tools/call that the agent
-- makes (bench/calls.yaml), rotating over MCP sessions, with a fresh request id per call.
-- Everything comes from the environment so that no token sits in a file or an argument:
--   BENCH_TOKEN     bearer token
--   BENCH_SESSIONS  comma-separated Mcp-Session-Ids, used in turn (one per connection, as
--                   the agent holds one per user; empty for a sessionless protocol version)
--   BENCH_PROTOCOL  MCP-Protocol-Version header
--   BENCH_BODY      the tools/call request as JSON, with "id":0 to be replaced per call
-- done() prints one machine-readable line: "BENCH requests=N duration_us=D errors=E".

local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
local sessions = {}
for sid in (os.getenv("BENCH_SESSIONS") or ""):gmatch("[^,]+") do
    sessions[#sessions + 1] = sid
end
local protocol = os.getenv("BENCH_PROTOCOL") or error("BENCH_PROTOCOL is not set")
local body = os.getenv("BENCH_BODY") or error("BENCH_BODY is not set")

local head, tail = body:match('^(.-"id":)0(.*)$')
if not head then
    error('BENCH_BODY must contain "id":0')
end

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = protocol

-- Ids must differ: calls of one session are matched to their answers by id.
local counter = 0
local thread_prefix = 0

function setup(thread)
    thread_prefix = thread_prefix + 1
    thread:set("prefix", thread_prefix * 1000000000)
end

function request()
    counter = counter + 1
    if #sessions > 0 then
        wrk.headers["Mcp-Session-Id"] = sessions[counter % #sessions + 1]
    end
    return wrk.format(nil, nil, nil, head .. tostring((prefix or 0) + counter) .. tail)
end

function done(summary, latency, requests)
    local e = summary.errors
    local errors = e.connect + e.read + e.write + e.status + e.timeout
    io.write(string.format("BENCH requests=%d duration_us=%d errors=%d status_errors=%d\n",
        summary.requests, summary.duration, errors, e.status))
end

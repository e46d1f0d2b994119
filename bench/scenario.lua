-- One wrk script for every HTTP scenario of bench/suite.py, driven by environment variables:
--   METHOD, BODY, CONTENT_TYPE, AUTHORIZATION   the request (a GET when METHOD is unset)
--   EXPECT        a substring every response body must contain (else it counts as wrong)
--   CHAIN_FILE    refresh-token chains: one token per line; each in-flight request uses its own
--                 token and the successor from the response replaces it (rotation under load)
--   CHAIN_BODY    the form body with %s where the refresh token goes
-- done() prints one line "RESULT {json}" with the counts and latency percentiles (µs).

local method = os.getenv("METHOD") or "GET"
local body = os.getenv("BODY")
local expect = os.getenv("EXPECT")
local chain_file = os.getenv("CHAIN_FILE")
local chain_body = os.getenv("CHAIN_BODY")
local headers = {}
if os.getenv("CONTENT_TYPE") then headers["Content-Type"] = os.getenv("CONTENT_TYPE") end
if os.getenv("AUTHORIZATION") then headers["Authorization"] = os.getenv("AUTHORIZATION") end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  wrong = 0
  broken = 0
  tokens = {}
  if chain_file then
    -- Threads take disjoint tokens: line i goes to thread ((i - 1) % nthreads) + 1.
    local n = tonumber(os.getenv("THREADS") or "1")
    local i = 0
    for line in io.lines(chain_file) do
      i = i + 1
      if ((i - 1) % n) + 1 == id and line ~= "" then table.insert(tokens, line) end
    end
  end
  if not chain_file then
    req = wrk.format(method, nil, headers, body)
  end
end

function request()
  if not chain_file then return req end
  -- wrk calls request() once in the first thread before any connection exists, only to check
  -- that it yields a valid request (script_verify_request); that call must not use up a token.
  if id == 1 and not verified then
    verified = true
    return wrk.format("POST", nil, headers, string.format(chain_body, "wrk-verification-call"))
  end
  local t = table.remove(tokens, 1)
  if t == nil then
    broken = broken + 1
    t = "chain-broken-no-token-left-xxxxxxxxxxxxxxx"
  end
  return wrk.format("POST", nil, headers, string.format(chain_body, t))
end

local function check(status, resp)
  if chain_file then
    local nxt = resp and string.match(resp, '"refresh_token":"([^"]+)"')
    if status == 200 and nxt then
      table.insert(tokens, nxt)
    else
      wrong = wrong + 1
    end
  elseif expect and (resp == nil or not string.find(resp, expect, 1, true)) then
    wrong = wrong + 1
  end
end

if chain_file or expect then
  function response(status, hdrs, resp)
    check(status, resp)
  end
end

function done(summary, latency, requests)
  local w, b = 0, 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wrong") or 0)
    b = b + (t:get("broken") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, ' ..
    '"status_errors": %d, "socket_errors": %d, "wrong": %d, "broken_chains": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.status, e.connect + e.read + e.write + e.timeout, w, b))
end

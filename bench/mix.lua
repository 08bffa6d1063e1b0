-- wrk script of the load benchmark (bench/run.sh): sends the hits of a mix
-- file (default bench/hits.txt, or the first argument after --) in turn,
-- round robin, and prints one machine-readable RESULT line at the end.
--
--   wrk -t1 -c64 -d10s --latency -s bench/mix.lua http://127.0.0.1:8080 -- bench/hits.txt

local reqs = {}
local idx = 0

local function unescape(s)
  s = s:gsub("\\r", "\r")
  s = s:gsub("\\n", "\n")
  return s
end

function init(args)
  local path = args[1] or "bench/hits.txt"
  local f = assert(io.open(path, "r"))
  local block = nil
  local function flush()
    if block then
      table.insert(reqs, wrk.format(block.method, block.path, block.headers, block.body))
      block = nil
    end
  end
  for line in f:lines() do
    line = line:gsub("\r$", "")
    if line:match("^#") then
      -- comment
    elseif line == "" then
      flush()
    elseif block == nil then
      local m, p = line:match("^(%u+) (.+)$")
      assert(m, "bad request line: " .. line)
      block = { method = m, path = p, headers = {} }
    elseif line:match("^body ") then
      block.body = unescape(line:sub(6))
    else
      local k, v = line:match("^([^:]+):%s*(.*)$")
      assert(k, "bad header line: " .. line)
      block.headers[k] = v
    end
  end
  flush()
  f:close()
  assert(#reqs > 0, "no requests in " .. path)
end

function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end

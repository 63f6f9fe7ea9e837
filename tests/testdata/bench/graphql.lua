-- wrk script of BenchmarkServerProcess (tests/performance_server_process_test.go): POSTs GraphQL requests
-- read from a file and reports the run in one parseable line.
--
--   wrk -t2 -c8 -d10s --latency -s graphql.lua http://127.0.0.1:8080/graphql -- REQUESTS
--
-- REQUESTS has one request a line: the Authorization header value ("-" for none), a tab, and
-- the JSON body. Every thread formats them all once in init and sends them in turn, starting
-- at its own offset, so concurrent requests speak for different users.
--
-- done() prints, on a line of its own:
--   BENCH_RESULT requests=N duration_us=N non2xx=N graphql_errors=N socket_errors=N timeouts=N p50_us=N p99_us=N
-- graphql_errors counts 2xx responses whose body has "errors" or "code" (a userErrors entry).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  reqs = {}
  for line in io.lines(args[1]) do
    local auth, body = line:match("^([^\t]*)\t(.*)$")
    if body then
      local headers = { ["Content-Type"] = "application/json" }
      if auth ~= "-" then
        headers["Authorization"] = auth
      end
      reqs[#reqs + 1] = wrk.format("POST", nil, headers, body)
    end
  end
  if #reqs == 0 then
    error("no requests in " .. args[1])
  end
  -- A stride that is prime to most file lengths spreads the threads' starting points.
  next_req = ((id or 0) * 37) % #reqs
  non2xx = 0
  graphql_errors = 0
end

function request()
  next_req = next_req % #reqs + 1
  return reqs[next_req]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif body:find('"errors"', 1, true) or body:find('"code"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end

function done(summary, latency, requests)
  local bad, wrong = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    wrong = wrong + t:get("graphql_errors")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d non2xx=%d graphql_errors=%d socket_errors=%d timeouts=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, bad, wrong, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

-- wrk script: POST /auth/v1/token with a session, counting non-200 answers.
wrk.method = "POST"
wrk.body = '{"repo":"acme/api"}'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SESSION")
wrk.headers["Content-Type"] = "application/json"
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("non-200: %d\n", summary.errors.status))
end

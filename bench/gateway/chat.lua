-- wrk script: POST a small chat completion with the token in $TOKEN (empty: no header).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local tok = os.getenv("TOKEN")
if tok and #tok > 0 then wrk.headers["Authorization"] = "Bearer " .. tok end
wrk.body = '{"model":"gpt-4o","messages":[{"role":"system","content":"You are a careful coding assistant."},' ..
  '{"role":"user","content":"Rewrite this function to stream its input: static int parse(const char *p) { return p ? 1 : 0; }"}]}'

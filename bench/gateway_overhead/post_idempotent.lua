-- wrk script: as post.lua, plus a fresh Idempotency-Key on every request (the idempotency store's write path).
local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = file:read("*a")
file:close()
local key = os.getenv("BENCH_AUTH")
local prefix = string.format("bench-%d-%d-", os.time(), math.random(1, 1000000000))
local counter = 0

request = function()
  counter = counter + 1
  local headers = { ["Content-Type"] = "application/json", ["Idempotency-Key"] = prefix .. counter }
  if key ~= nil and key ~= "" then
    headers["Authorization"] = "Bearer " .. key
  end
  return wrk.format("POST", nil, headers, body)
end

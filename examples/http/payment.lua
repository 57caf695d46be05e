-- wrk script: POSTs a payment with a payment_id of its own per request,
-- e.g.  wrk -t2 -c16 -d10s --latency -s payment.lua http://127.0.0.1:8080/api/payment
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tag", threads)
end

local counter = 0
function request()
  counter = counter + 1
  local body = string.format(
    '{"payment_id":"wrk-%d-%d","amount_cents":%d,"currency":"EUR"}',
    tag, counter, 100 + counter % 5000)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

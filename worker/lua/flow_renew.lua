-- Flow control: renew the holds of the runs in progress (worker.execution.flow.gate.FlowGate).
--
-- KEYS[i]          a lock or slots key, one per hold
-- ARGV[1]          lease (ms)
-- ARGV[2i], [2i+1] per hold i: its kind ('l' lock / 's' slot) and the run's token
-- Returns the (1-based) positions of the holds that were lost (expired or taken) before this renewal.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease, lost = tonumber(ARGV[1]), {}
for i = 1, #KEYS do
  local kind, token = ARGV[2 * i], ARGV[2 * i + 1]
  if kind == 'l' then
    if redis.call('GET', KEYS[i]) == token then
      redis.call('PEXPIRE', KEYS[i], lease)
    else
      lost[#lost + 1] = i
    end
  elseif not redis.call('ZSCORE', KEYS[i], token) then
    lost[#lost + 1] = i
  else
    redis.call('ZADD', KEYS[i], 'XX', now + lease, token)
  end
end
return lost

-- Flow control: a run ends (worker.execution.flow.gate.FlowGate.release).
--
-- KEYS[1]  the key lock ('' if unkeyed)     KEYS[2]  the newest completed occurred_at for that key
-- KEYS[3]  the concurrency slots ('' if none)
-- ARGV[1]  token     ARGV[2]  occurred_at (ms; '' = none)     ARGV[3]  completed ('0'/'1')
-- ARGV[4]  the newest marker's ttl (s)
-- Returns 1.
if KEYS[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[3] == '1' and ARGV[2] ~= '' then
    local newest = tonumber(redis.call('GET', KEYS[2]) or '-1')
    if tonumber(ARGV[2]) > newest then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4]) end
  end
end
if KEYS[3] ~= '' then redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1

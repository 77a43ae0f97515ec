-- Flow control: may this handler run start now? (worker.execution.flow.gate.FlowGate.enter)
-- Time is Redis's (TIME), so the workers' clocks need not agree.
--
-- KEYS[1]  the key lock (a lease holding the run's token)
-- KEYS[2]  the newest completed occurred_at (unix ms) for that key
-- KEYS[3]  the handler's concurrency slots (sorted set of run tokens by lease expiry)
-- KEYS[4]  the rate limiter (hash tat/tail)     KEYS[5]  its bookings (sorted set of tokens by booked start)
-- KEYS[6]  the deferrals counters (hash '<handler>|<reason>' -> count)
-- ARGV[1]  token (this run's)     ARGV[2]  lease (ms)     ARGV[3]  keyed ('0'/'1')
-- ARGV[4]  occurred_at (ms; '' = no stale check)     ARGV[5]  concurrency (0 = none)
-- ARGV[6]  rate interval (ms; 0 = none)     ARGV[7]  handler name
-- ARGV[8]  booking token (the same for every retry of one task)
-- Returns {verdict, wait ms}: ok | stale | key busy | concurrency limit | rate limited.
-- Order: the cheap, revocable checks first; the rate last, because a start it admits cannot be taken back.
-- The rate limiter is GCRA with no burst: a start is admitted only `interval` after the previous one (tat);
-- a run turned away books the next free start (tail) and keeps its booking until it starts.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, lease = ARGV[1], tonumber(ARGV[2])
local function defer(reason, wait)
  redis.call('HINCRBY', KEYS[6], ARGV[7] .. '|' .. reason, 1)
  return {reason, tostring(wait)}
end
if ARGV[3] == '1' then
  local holder = redis.call('GET', KEYS[1])
  if holder and holder ~= token then return defer('key busy', redis.call('PTTL', KEYS[1])) end
  if ARGV[4] ~= '' then
    local newest = tonumber(redis.call('GET', KEYS[2]) or '-1')
    if tonumber(ARGV[4]) < newest then
      redis.call('HINCRBY', KEYS[6], ARGV[7] .. '|stale', 1)
      return {'stale', '0'}
    end
  end
end
local limit = tonumber(ARGV[5])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if not redis.call('ZSCORE', KEYS[3], token) and redis.call('ZCARD', KEYS[3]) >= limit then
    return defer('concurrency limit', 0)
  end
end
local interval = tonumber(ARGV[6])
if interval > 0 then
  local tat = tonumber(redis.call('HGET', KEYS[4], 'tat') or '0')
  local tail = tonumber(redis.call('HGET', KEYS[4], 'tail') or '0')
  local booked = redis.call('ZSCORE', KEYS[5], ARGV[8])
  if now < tat or ((not booked) and tail > now) then
    if booked then return defer('rate limited', math.ceil(math.max(tat, tonumber(booked)) - now)) end
    local slot = math.max(tat, tail + interval, now)
    redis.call('HSET', KEYS[4], 'tail', slot)
    redis.call('ZADD', KEYS[5], slot, ARGV[8])
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - 3600000)
    local keep = math.ceil(slot - now) + 3600000
    redis.call('PEXPIRE', KEYS[4], keep)
    redis.call('PEXPIRE', KEYS[5], keep)
    return defer('rate limited', math.ceil(slot - now))
  end
  if booked then redis.call('ZREM', KEYS[5], ARGV[8]) end
  redis.call('HSET', KEYS[4], 'tat', now + interval)
  redis.call('PEXPIRE', KEYS[4], math.ceil(math.max(tail - now, 0) + interval) + 3600000)
end
if ARGV[3] == '1' then redis.call('SET', KEYS[1], token, 'PX', lease) end
if limit > 0 then
  redis.call('ZADD', KEYS[3], now + lease, token)
  redis.call('PEXPIRE', KEYS[3], lease * 2)
end
return {'ok', '0'}

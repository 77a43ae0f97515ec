"""The Redis side of flow control: three Lua scripts, so that deciding, holding and letting go are each atomic
and one round trip. Time is Redis's (``TIME``), so the workers' clocks need not agree.

Keys (``<h>`` the handler name, ``<k>`` the key value):

* ``ims-worker:flow:lock:<h>:<k>``: the key lock, a lease (``SET NX PX``) holding the run's token;
* ``ims-worker:flow:newest:<h>:<k>``: ``occurred_at`` (unix ms) of the newest event completed for that key;
* ``ims-worker:flow:slots:<h>``: the concurrency slots, a sorted set of run tokens scored by lease expiry;
* ``ims-worker:flow:rate:<h>`` (hash ``tat``/``tail``) and ``...:rate:<h>:booked`` (sorted set of run
  tokens by booked start): the rate limiter;
* ``ims-worker:flow:deferrals``: hash ``<handler>|<reason>`` -> deferrals counted, fleet-wide.

The rate limiter is GCRA with no burst: a start is admitted only ``interval`` after the previous one
(``tat``), so no window of the rate's period ever holds more than its count. A run turned away books the
next free start (``tail``) and is told to come back exactly then; coming back, it keeps its booking until it
starts, so the waiting runs are spread out instead of all retrying at once.
"""

from __future__ import annotations

PREFIX = "ims-worker:flow"
DEFERRALS_KEY = f"{PREFIX}:deferrals"


def lock_key(handler: str, key: str) -> str:
    return f"{PREFIX}:lock:{handler}:{key}"


def newest_key(handler: str, key: str) -> str:
    return f"{PREFIX}:newest:{handler}:{key}"


def slots_key(handler: str) -> str:
    return f"{PREFIX}:slots:{handler}"


def rate_key(handler: str) -> str:
    return f"{PREFIX}:rate:{handler}"


def booked_key(handler: str) -> str:
    return f"{PREFIX}:rate:{handler}:booked"


# KEYS: lock, newest, slots, rate, booked, deferrals.
# ARGV: token (this run's), lease ms, keyed (0/1), occurred_at ms ('' = no stale check),
#       concurrency (0 = none), rate interval ms (0 = none), handler name,
#       booking token (the same for every retry of one task).
# Returns {verdict, wait ms}: ok | stale | key busy | concurrency limit | rate limited.
# Order: the cheap, revocable checks first; the rate last, because a start it admits cannot be taken back.
ACQUIRE = """
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
"""

# KEYS: lock, newest, slots. ARGV: token, occurred_at ms ('' = none), completed (0/1), newest ttl seconds.
RELEASE = """
if KEYS[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[3] == '1' and ARGV[2] ~= '' then
    local newest = tonumber(redis.call('GET', KEYS[2]) or '-1')
    if tonumber(ARGV[2]) > newest then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4]) end
  end
end
if KEYS[3] ~= '' then redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1
"""

# KEYS: lock or slots key per hold. ARGV: lease ms, then per hold: kind ('l' lock / 's' slot), token.
# Returns the (1-based) positions of the holds that were lost (expired or taken) before this renewal.
RENEW = """
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
"""

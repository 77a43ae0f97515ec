"""The journal's Lua fragment, prepended to the pipeline's own scripts (publish, ledger, dead letters).

Every script that journals passes, as its LAST argument, the journal's settings line built by
``JournalConfig.tail`` ("" when the journal is off: then ``J`` is nil and every function here is a no-op).
Keys are built inside the script (one Redis server or Sentinel set, not Cluster, as the outbox sweep).

Storage (prefix ``ims-worker:j:``):
  ``e:<event id>``  list of JSON entries, oldest first; capped (the first entry, "received", is kept)
  ``p:<event id>``  the event as JSON, for ``replay`` (written at the first attempt, when payloads are kept)
  ``idx``           sorted set: event id -> first seen (unix ms); bounded by time and by size
  ``failed``        sorted set: event id -> when a handler failed or it was dead-lettered
  ``v:<value>``     sorted set per business key value: "<Name>|<event id>" -> indexed at (first attempt)
At receipt (the consumer's and the shim's hot path) only ``idx`` and ``e:`` are written: three commands.
``ims-worker:stats`` is a hash of counters the worker's metrics endpoint exports.
"""

from __future__ import annotations

JOURNAL_LUA = """
local J = nil
do
  local c = ARGV[#ARGV]
  if c ~= '' then
    local ttl, ecap, icap, kcap, pttl, now = string.match(c, '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)$')
    J = {ttl = tonumber(ttl), ecap = tonumber(ecap), icap = tonumber(icap), kcap = tonumber(kcap),
         pttl = tonumber(pttl), now = tonumber(now)}
  end
end
local JP = 'ims-worker:j:'

local function jent(kind, fields)
  fields.t = J.now
  fields.e = kind
  return cjson.encode(fields)
end

local function jadd(id, ...)
  local k = JP .. 'e:' .. id
  local n = redis.call('RPUSH', k, ...)
  if n > J.ecap then
    local first = redis.call('LINDEX', k, 0)
    redis.call('LTRIM', k, n - J.ecap + 1, -1)
    redis.call('LPUSH', k, first)
  end
  redis.call('EXPIRE', k, J.ttl)
end

local function jfailed(id)
  redis.call('ZADD', JP .. 'failed', J.now, id)
end

-- "field<TAB>amount" lines: counters for the metrics endpoint (kept whether the journal is on or not)
local function jstats(blob)
  if blob == nil or blob == '' then return end
  for field, amount in string.gmatch(blob, '([^\\t\\n]+)\\t([^\\n]+)') do
    redis.call('HINCRBYFLOAT', 'ims-worker:stats', field, amount)
  end
end

-- At receipt (publish script), kept to a minimum: index the id, append "received" + "enqueued"/"duplicate".
-- blob: "<event id>\\n<received entry>"
local function jpublish(blob, fresh)
  if not J then return end
  local cut = string.find(blob, '\\n', 1, true)
  local id, received = string.sub(blob, 1, cut - 1), string.sub(blob, cut + 1)
  local step
  if fresh then
    redis.call('ZADD', JP .. 'idx', 'NX', J.now, id)
    step = '{"t":' .. J.now .. ',"e":"enqueued"}'
  else
    local first = redis.call('ZSCORE', JP .. 'idx', id)
    if not first then redis.call('ZADD', JP .. 'idx', J.now, id) end
    step = '{"t":' .. J.now .. ',"e":"duplicate","first":' .. (first or 'null') .. '}'
  end
  jadd(id, received, step)
end

-- At a task's first attempt (ledger begin script): the business-key index and the payload kept for replay.
-- keys: "<Name>=<value>" lines; payload: the event as JSON ("" to keep none).
local function jindex(id, keys, payload)
  if not J then return end
  for name, value in string.gmatch(keys, '([^=\\n]+)=([^\\n]+)') do
    local vk = JP .. 'v:' .. value
    redis.call('ZADD', vk, 'NX', J.now, name .. '|' .. id)
    redis.call('ZREMRANGEBYRANK', vk, 0, -J.kcap - 1)
    redis.call('EXPIRE', vk, J.ttl)
  end
  if payload ~= '' and J.pttl > 0 then redis.call('SET', JP .. 'p:' .. id, payload, 'EX', J.pttl) end
end

-- Drop up to ``limit`` events older than the retention, or else beyond the size cap, oldest first.
local function jtrim(limit)
  if not J then return end
  local idx = JP .. 'idx'
  local cutoff = J.now - J.ttl * 1000
  local gone = redis.call('ZRANGEBYSCORE', idx, '-inf', '(' .. cutoff, 'LIMIT', 0, limit)
  if #gone == 0 then
    local over = redis.call('ZCARD', idx) - J.icap
    if over > 0 then gone = redis.call('ZRANGE', idx, 0, math.min(over, limit) - 1) end
  end
  if #gone > 0 then
    for _, id in ipairs(gone) do redis.call('DEL', JP .. 'e:' .. id, JP .. 'p:' .. id) end
    redis.call('ZREM', idx, unpack(gone))
    redis.call('ZREM', JP .. 'failed', unpack(gone))
  end
  redis.call('ZREMRANGEBYSCORE', JP .. 'failed', '-inf', '(' .. cutoff)
end
"""

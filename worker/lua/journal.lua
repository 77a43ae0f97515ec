-- The journal fragment: included (worker.lua) at the top of every script that journals or counts.
--
-- The including script's first KEYS and first ARGV are the journal's (worker.keyspace.JOURNAL_KEYS and
-- worker.journal.config.JournalConfig.line):
--   KEYS[1]  the metrics counters hash (ims-worker:stats), written whether the journal is on or not
--   KEYS[2]  the journal index: sorted set, event id -> first seen (unix ms); bounded by time and by size
--   KEYS[3]  the failed set: sorted set, event id -> when a handler failed or it was dead-lettered
--   ARGV[1]  '' (the journal is off: J is nil and every j* function but jstats is a no-op), or
--            'ttl|entries cap|index cap|per-key cap|payload ttl|now ms|<entries>|<payload>|<value>|<keys of>'
-- The four prefixes name the per-event keys: prefix .. event id (entries: list of JSON entries, oldest
-- first, the first one kept when capped; payload: the event as JSON for replay; keys of: hash, value key ->
-- the member it holds for the event, so the trim can take the event out of each) and prefix .. value key
-- suffix (a sorted set per business key value: '<Name>|<event id>' -> indexed at). One Redis server.
--
-- Only an event in the index gets per-event keys: one trimmed from it (the count cap, or the retention) before
-- a lagging worker got to it is not written again, so the cap bounds every key here, not just the index.
local J = nil
if ARGV[1] ~= '' then
  local ttl, ecap, icap, kcap, pttl, now, ep, pp, vp, kp = string.match(ARGV[1],
    '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
  J = {ttl = tonumber(ttl), ecap = tonumber(ecap), icap = tonumber(icap), kcap = tonumber(kcap),
       pttl = tonumber(pttl), now = tonumber(now), entries = ep, payload = pp, value = vp, keysof = kp}
end

local function jent(kind, fields)
  fields.t = J.now
  fields.e = kind
  return cjson.encode(fields)
end

local function jindexed(id)
  return redis.call('ZSCORE', KEYS[2], id) ~= false
end

local function jadd(id, ...)
  if not jindexed(id) then return end  -- trimmed (or never received): nothing of it is kept
  local k = J.entries .. id
  local n = redis.call('RPUSH', k, ...)
  if n > J.ecap then
    local first = redis.call('LINDEX', k, 0)
    redis.call('LTRIM', k, n - J.ecap + 1, -1)
    redis.call('LPUSH', k, first)
  end
  redis.call('EXPIRE', k, J.ttl)
end

local function jfailed(id)
  if not jindexed(id) then return end
  redis.call('ZADD', KEYS[3], J.now, id)
end

-- "field<TAB>amount" lines: counters for the metrics endpoint (kept whether the journal is on or not)
local function jstats(blob)
  if blob == nil or blob == '' then return end
  for field, amount in string.gmatch(blob, '([^\t\n]+)\t([^\n]+)') do
    redis.call('HINCRBYFLOAT', KEYS[1], field, amount)
  end
end

-- At receipt (publish script), kept to a minimum: index the id, append "received" + "enqueued"/"duplicate".
-- blob: "<event id>\n<received entry>"
local function jpublish(blob, fresh)
  if not J then return end
  local cut = string.find(blob, '\n', 1, true)
  local id, received = string.sub(blob, 1, cut - 1), string.sub(blob, cut + 1)
  local step
  if fresh then
    redis.call('ZADD', KEYS[2], 'NX', J.now, id)
    step = '{"t":' .. J.now .. ',"e":"enqueued"}'
  else
    local first = redis.call('ZSCORE', KEYS[2], id)
    if not first then redis.call('ZADD', KEYS[2], J.now, id) end
    step = '{"t":' .. J.now .. ',"e":"duplicate","first":' .. (first or 'null') .. '}'
  end
  jadd(id, received, step)
end

-- At a task's first attempt (ledger begin script): the business-key index and the payload kept for replay.
-- keys: JSON list of [name, value key suffix] (worker.journal.config.index_blob); payload: the event as JSON
-- ("" to keep none). keys '' (a later attempt): nothing to index.
local function jindex(id, keys, payload)
  if not J or keys == '' or not jindexed(id) then return end
  local ko = J.keysof .. id
  for _, pair in ipairs(cjson.decode(keys)) do
    local vk, member = J.value .. pair[2], pair[1] .. '|' .. id
    redis.call('ZADD', vk, 'NX', J.now, member)
    redis.call('ZREMRANGEBYRANK', vk, 0, -J.kcap - 1)
    redis.call('EXPIRE', vk, J.ttl)
    redis.call('HSET', ko, vk, member)
  end
  if redis.call('EXISTS', ko) == 1 then redis.call('EXPIRE', ko, J.ttl) end
  if payload ~= '' and J.pttl > 0 then redis.call('SET', J.payload .. id, payload, 'EX', J.pttl) end
end

-- Drop up to ``limit`` events older than the retention, or else beyond the size cap, oldest first.
local function jtrim(limit)
  if not J then return end
  local cutoff = J.now - J.ttl * 1000
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff, 'LIMIT', 0, limit)
  if #gone == 0 then
    local over = redis.call('ZCARD', KEYS[2]) - J.icap
    if over > 0 then gone = redis.call('ZRANGE', KEYS[2], 0, math.min(over, limit) - 1) end
  end
  if #gone > 0 then
    for _, id in ipairs(gone) do
      local ko = J.keysof .. id
      local held = redis.call('HGETALL', ko)
      for i = 1, #held, 2 do redis.call('ZREM', held[i], held[i + 1]) end
      redis.call('DEL', J.entries .. id, J.payload .. id, ko)
    end
    redis.call('ZREM', KEYS[2], unpack(gone))
    redis.call('ZREM', KEYS[3], unpack(gone))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. cutoff)
end

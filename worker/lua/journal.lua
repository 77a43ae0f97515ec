-- The journal fragment: included (worker.lua) at the top of every script that journals or counts.
--
-- The including script's first KEYS and first ARGV are the journal's (worker.keyspace.JOURNAL_KEYS and
-- worker.journal.config.JournalConfig.line):
--   KEYS[1]  the metrics counters hash (ims-worker:stats), written whether the journal is on or not
--   KEYS[2]  the journal index: sorted set, event id -> first seen (unix ms); bounded by time and by size
--   KEYS[3]  the failed set: sorted set, event id -> when a handler failed or it was dead-lettered
--   ARGV[1]  '' (the journal is off: J is nil and every j* function but jstats is a no-op), or
--            'ttl|entries cap|index cap|per-key cap|payload ttl|now ms|<entries prefix>|<payload prefix>|<value prefix>'
-- The three prefixes name the per-event keys: prefix .. event id (entries: list of JSON entries, oldest
-- first, the first one kept when capped; payload: the event as JSON for replay) and prefix .. value (a sorted
-- set per business key value: '<Name>|<event id>' -> indexed at). One Redis server, not Cluster.
local J = nil
if ARGV[1] ~= '' then
  local ttl, ecap, icap, kcap, pttl, now, ep, pp, vp = string.match(ARGV[1],
    '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([^|]+)|([^|]+)|([^|]+)$')
  J = {ttl = tonumber(ttl), ecap = tonumber(ecap), icap = tonumber(icap), kcap = tonumber(kcap),
       pttl = tonumber(pttl), now = tonumber(now), entries = ep, payload = pp, value = vp}
end

local function jent(kind, fields)
  fields.t = J.now
  fields.e = kind
  return cjson.encode(fields)
end

local function jadd(id, ...)
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
-- keys: "<Name>=<value>" lines; payload: the event as JSON ("" to keep none).
local function jindex(id, keys, payload)
  if not J then return end
  for name, value in string.gmatch(keys, '([^=\n]+)=([^\n]+)') do
    local vk = J.value .. value
    redis.call('ZADD', vk, 'NX', J.now, name .. '|' .. id)
    redis.call('ZREMRANGEBYRANK', vk, 0, -J.kcap - 1)
    redis.call('EXPIRE', vk, J.ttl)
  end
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
    for _, id in ipairs(gone) do redis.call('DEL', J.entries .. id, J.payload .. id) end
    redis.call('ZREM', KEYS[2], unpack(gone))
    redis.call('ZREM', KEYS[3], unpack(gone))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. cutoff)
end

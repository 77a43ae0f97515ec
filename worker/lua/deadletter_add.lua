-- Add a dead letter (worker.delivery.deadletter.DeadLetterStore.add): with a once key, SET NX it and XADD in
-- one step, so that a crash between them can neither lose the entry nor leave a stale marker; the journal
-- entry, the metrics counter and the source's usage in the same step. A source at its bound (entries or
-- bytes) gets no entry: the caller keeps the event where it was (MNS, a task retry, a 503 to the sender).
--
-- KEYS[1..3]  the journal's (journal.lua)
-- KEYS[4]     the dead-letter stream
-- KEYS[5]     the usage hash: '<source>|n' and '<source>|bytes'
-- KEYS[6]     the once key (optional: absent, the entry is always added)
-- ARGV[1]     the journal line (journal.lua)
-- ARGV[2]     once key ttl (s)
-- ARGV[3]     event id ('' if none)     ARGV[4]  reason     ARGV[5]  metrics counters (jstats)
-- ARGV[6]     source     ARGV[7]  the entry's size (bytes)     ARGV[8]  entries cap     ARGV[9]  bytes cap
-- ARGV[10..]  the entry's fields: name, value, name, value...
-- Returns the stream entry id, false if the once key was already set, or -1 if the source is at its bound.
--! include journal
if KEYS[6] ~= nil and redis.call('EXISTS', KEYS[6]) == 1 then return false end  -- kept before: a retry
local n = tonumber(redis.call('HGET', KEYS[5], ARGV[6] .. '|n') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[5], ARGV[6] .. '|bytes') or '0')
if n >= tonumber(ARGV[8]) or bytes + tonumber(ARGV[7]) > tonumber(ARGV[9]) then
  return -1
end
if KEYS[6] == nil or redis.call('SET', KEYS[6], '1', 'NX', 'EX', ARGV[2]) then  -- NX: always true here
  local id = redis.call('XADD', KEYS[4], '*', unpack(ARGV, 10, #ARGV))
  redis.call('HINCRBY', KEYS[5], ARGV[6] .. '|n', 1)
  redis.call('HINCRBY', KEYS[5], ARGV[6] .. '|bytes', ARGV[7])
  if J and ARGV[3] ~= '' then
    jadd(ARGV[3], jent('dead-lettered', {reason = ARGV[4], dl = id}))
    jfailed(ARGV[3])
  end
  jstats(ARGV[5])
  return id
end
return false

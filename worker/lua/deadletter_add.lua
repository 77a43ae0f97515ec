-- Add a dead letter (worker.delivery.deadletter.DeadLetterStore.add): with a once key, SET NX it and XADD in
-- one step, so that a crash between them can neither lose the entry nor leave a stale marker; the journal
-- entry and the metrics counter in the same step.
--
-- KEYS[1..3]  the journal's (journal.lua)
-- KEYS[4]     the dead-letter stream
-- KEYS[5]     the once key (optional: absent, the entry is always added)
-- ARGV[1]     the journal line (journal.lua)
-- ARGV[2]     once key ttl (s)
-- ARGV[3]     event id ('' if none)     ARGV[4]  reason     ARGV[5]  metrics counters (jstats)
-- ARGV[6..]   the entry's fields: name, value, name, value...
-- Returns the stream entry id, or false if the once key was already set.
--! include journal
if KEYS[5] == nil or redis.call('SET', KEYS[5], '1', 'NX', 'EX', ARGV[2]) then
  local id = redis.call('XADD', KEYS[4], '*', unpack(ARGV, 6, #ARGV))
  if J and ARGV[3] ~= '' then
    jadd(ARGV[3], jent('dead-lettered', {reason = ARGV[4], dl = id}))
    jfailed(ARGV[3])
  end
  jstats(ARGV[5])
  return id
end
return false

-- A task ends (worker.execution.ledger.HandlerLedger.finish): release its claims, count a failed attempt,
-- and when the event is handled (nothing left to do for it) drop its outbox copy; journal the failures and
-- add the metrics counters.
--
-- KEYS[1..3]  the journal's (journal.lua)
-- KEYS[4]     this task's failures counter
-- KEYS[5]     the outbox hash      KEYS[6]  the outbox deadlines
-- KEYS[7..]   this task's claims, one per handler
-- ARGV[1]     the journal line (journal.lua)
-- ARGV[2]     task id     ARGV[3]  counter ttl (s)
-- ARGV[4]     count a failed attempt ('0'/'1')     ARGV[5]  handled: drop the outbox copy ('0'/'1')
-- ARGV[6]     event id    ARGV[7]  metrics counters (jstats)
-- ARGV[8..]   the failed handlers' journal entries (JSON), if any
-- Returns the task's failed attempts so far.
--! include journal
local task = ARGV[2]
if J then
  if #ARGV >= 8 then
    jadd(ARGV[6], unpack(ARGV, 8, #ARGV))
    jfailed(ARGV[6])
  end
  if ARGV[5] == '1' then jadd(ARGV[6], jent('handled', {})) end
end
jstats(ARGV[7])
for i = 7, #KEYS do
  if redis.call('GET', KEYS[i]) == task then redis.call('DEL', KEYS[i]) end
end
local failures = tonumber(redis.call('GET', KEYS[4]) or '0')
if ARGV[4] == '1' then
  failures = redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
if ARGV[5] == '1' then
  redis.call('HDEL', KEYS[5], task)
  redis.call('ZREM', KEYS[6], task)
end
return failures

-- A handler succeeded (worker.execution.ledger.HandlerLedger.mark_done): set its done marker, drop this
-- task's claim on it, journal it.
--
-- KEYS[1..3]  the journal's (journal.lua)
-- KEYS[4]     the handler's done marker for the event     KEYS[5]  its claim
-- ARGV[1]     the journal line (journal.lua)
-- ARGV[2]     task id     ARGV[3]  done marker ttl (s)
-- ARGV[4]     event id    ARGV[5]  handler name     ARGV[6]  how long it ran (ms)
-- Returns 1.
--! include journal
redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[3])
if redis.call('GET', KEYS[5]) == ARGV[2] then redis.call('DEL', KEYS[5]) end
if J then jadd(ARGV[4], jent('succeeded', {h = ARGV[5], ms = tonumber(ARGV[6])})) end
return 1

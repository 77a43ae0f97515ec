-- Journal entries written outside the pipeline's hot path: retries, replays (worker.journal.writer).
--
-- KEYS[1..3]  the journal's (journal.lua)
-- ARGV[1]     the journal line (journal.lua)
-- ARGV[2]     event id     ARGV[3]  metrics counters (jstats)     ARGV[4]  mark the event failed ('0'/'1')
-- ARGV[5..]   the entries (JSON)
-- Returns 1.
--! include journal
if J and #ARGV >= 5 then
  jadd(ARGV[2], unpack(ARGV, 5, #ARGV))
  if ARGV[4] == '1' then jfailed(ARGV[2]) end
end
jstats(ARGV[3])
return 1

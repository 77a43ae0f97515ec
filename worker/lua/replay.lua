-- Enqueue one replay (worker.execution.replay.Replayer): the replay record, the task message and the
-- "replayed" journal entry in one step. Replays bypass the dedupe marker and the outbox.
--
-- KEYS[1..3]  the journal's (journal.lua)
-- KEYS[4]     the queue     KEYS[5]  the replay record of the new task id
-- ARGV[1]     the journal line (journal.lua)
-- ARGV[2]     the task message (self-contained)     ARGV[3]  the handler names to run, one per line
--             (a first line "!reapply": `replay --reapply`, read by worker.execution.inboxrun)
-- ARGV[4]     the record's ttl (s)     ARGV[5]  event id     ARGV[6]  the "replayed" entry (JSON)
-- Returns 1.
--! include journal
redis.call('SET', KEYS[5], ARGV[3], 'EX', ARGV[4])
redis.call('LPUSH', KEYS[4], ARGV[2])
if J then jadd(ARGV[5], ARGV[6]) end
return 1

-- The journal's receipt entries for a publish that does not run publish.lua: with an amqp:// broker the
-- dedupe markers are set in Redis and the task is sent by kombu (worker.delivery.publish, two steps). Each
-- event gets what publish.lua's jpublish writes (indexed, "received" + "enqueued" or "duplicate"), then the
-- trim, so the worker's later entries (which are kept only for indexed events) have an event to join.
--
-- KEYS[1..3]  the journal's (journal.lua)
-- ARGV[1]     the journal line (journal.lua)
-- ARGV[2..]   per event: fresh ('1': enqueued now, '0': a duplicate), then its blob (journal.config.received_blob)
-- Returns the number of events journaled.
--! include journal
local n = 0
if J then
  for i = 2, #ARGV - 1, 2 do
    jpublish(ARGV[i + 1], ARGV[i] == '1')
    n = n + 1
  end
  jtrim(2 * n + 18)
end
return n

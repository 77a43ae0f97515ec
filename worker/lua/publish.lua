-- Publish a batch: per event, set its dedupe marker NX and, only where it was newly set, LPUSH its task
-- message (by reference: envelope.lua) and keep the event in the message's outbox record, in one atomic step.
-- (worker.delivery.publish)
--
-- KEYS[1..3]  the journal's (journal.lua)
-- KEYS[4]     the outbox hash: task id -> '<queue>\n<event JSON>'
-- KEYS[5]     the outbox deadlines: sorted set, task id -> deadline (unix ms)
-- then per event i (from 1): KEYS[4 + 2i] its dedupe marker, KEYS[5 + 2i] its queue
-- ARGV[1]     the journal line (journal.lua)
-- ARGV[2]     bypass: '1' re-arms the marker and enqueues regardless (a redrive of an event enqueued once)
-- ARGV[3]     the outbox deadline of every message of the batch (unix ms)
-- then per event i (from 1): ARGV[4i] task id, ARGV[4i + 1] marker ttl (s), ARGV[4i + 2] the event's JSON,
--             ARGV[4i + 3] its journal blob ('<event id>\n<received entry>'; '' with the journal off)
-- A marker's value is 1, one of Redis's shared integers: no allocation of its own.
-- Returns one 1 (enqueued) or 0 (duplicate) per event; an error if an event's JSON is not an event's.
--! include journal
--! include envelope
local out = {}
local bypass = ARGV[2] == '1'
local outbox, due = KEYS[4], KEYS[5]
local n = (#KEYS - 5) / 2
for i = 1, n do
  local marker, queue = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local task_id, ttl, event = ARGV[4 * i], ARGV[4 * i + 1], ARGV[4 * i + 2]
  local message = envelope(queue, event, task_id)
  if not message then return redis.error_reply('event ' .. i .. ' is not an event JSON') end
  local fresh
  if bypass then
    redis.call('SET', marker, 1, 'EX', ttl)
    fresh = true
  else
    fresh = redis.call('SET', marker, 1, 'NX', 'EX', ttl)
  end
  if fresh then
    redis.call('LPUSH', queue, message)
    redis.call('HSET', outbox, task_id, queue .. '\n' .. event)
    redis.call('ZADD', due, ARGV[3], task_id)
    out[i] = 1
  else
    out[i] = 0
  end
  jpublish(ARGV[4 * i + 3], fresh)
end
jtrim(2 * n + 18)  -- a few more than this batch added
return out

-- A task starts (worker.execution.ledger.HandlerLedger.begin): count a redelivery, push the task's outbox
-- deadline out (so the sweeper does not copy it while it runs), skip the handlers already done, claim the
-- rest or report them busy. A replay's task (its replay record exists) runs only the handlers the record
-- names, even if done before, once per replay task id.
--
-- KEYS[1..3]  the journal's (journal.lua)
-- KEYS[4]     this task's redeliveries counter
-- KEYS[5]     the outbox deadlines (sorted set; only an existing entry is moved)
-- KEYS[6]     this task's replay record (handler names, one per line), usually absent
-- then per handler i of n: KEYS[6 + i] its done marker, KEYS[6 + n + i] its claim
-- ARGV[1]     the journal line (journal.lua)
-- ARGV[2]     task id             ARGV[3]  claim ttl (s)        ARGV[4]  redelivered ('0'/'1')
-- ARGV[5]     counter ttl (s)     ARGV[6]  outbox deadline (unix ms)
-- ARGV[7]     event id            ARGV[8]  attempt number
-- ARGV[9]     business keys ('<Name>=<value>' lines) and ARGV[10] the event's JSON (first attempt with the
--             journal on, else '')
-- then ARGV[10 + i]: handler i's name
-- Returns {redeliveries counted (0 when not redelivered), then per handler 0 done | 1 run | 2 busy}.
--! include journal
local n = (#KEYS - 6) / 2
local task = ARGV[2]
local out = {0}
local replay = redis.call('GET', KEYS[6])
local skip = 'already done'
if replay then replay, skip = '\n' .. replay .. '\n', 'not replayed' end
redis.call('ZADD', KEYS[5], 'XX', ARGV[6], task)
if ARGV[4] == '1' then
  out[1] = redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[5])
end
local entries = {}
if J then
  local again, replayed = out[1] > 0 and out[1] or nil, replay and 1 or nil
  entries[1] = jent('attempt', {n = tonumber(ARGV[8]), task = task, redelivered = again, replay = replayed})
end
for i = 1, n do
  local done_key, claim_key, name = KEYS[6 + i], KEYS[6 + n + i], ARGV[10 + i]
  local done = redis.call('EXISTS', done_key) == 1
  if replay then
    local forced = string.find(replay, '\n' .. name .. '\n', 1, true)
    done = (not forced) or redis.call('GET', done_key) == task
  end
  if done then
    out[i + 1] = 0
    if J then entries[#entries + 1] = jent('skipped', {h = name, why = skip}) end
  else
    local holder = redis.call('GET', claim_key)
    if (not holder) or holder == task then
      redis.call('SET', claim_key, task, 'EX', ARGV[3])
      out[i + 1] = 1
    else
      out[i + 1] = 2
    end
  end
end
if J then
  jadd(ARGV[7], unpack(entries))
  jindex(ARGV[7], ARGV[9], ARGV[10])
end
return out

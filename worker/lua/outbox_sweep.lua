-- One bounded step of the outbox sweep (worker.delivery.outbox.Outbox.sweep_once): look at the overdue
-- copies from deadline ARGV[3] on, skipping the first ARGV[4] at exactly that deadline (the ones an earlier
-- call left in place), and re-enqueue at the tail those whose message is nowhere: not held by kombu, not in
-- the window at its queue's tail nor younger than the oldest message there, and still so after the grace.
-- Every call reads at most ARGV[2] copies and ARGV[5] messages per queue. No deadline is moved: it is the
-- copy's place in the enqueue order, which the tail comparison relies on.
--
-- KEYS[1]  the outbox hash: task id -> '<queue>\n<event JSON>' (or a whole message, as kept before 2026-11-26)
-- KEYS[2]  the outbox deadlines: sorted set, task id -> deadline (unix ms)
-- KEYS[3]  kombu's unacked hash (delivery tag -> message), as the broker channel names it
-- ARGV[1]  now (unix ms)     ARGV[2]  limit     ARGV[3]  from (a deadline, or '-inf')     ARGV[4]  skip
-- ARGV[5]  window (messages read from a queue's tail)     ARGV[6]  clock margin (ms)
-- ARGV[7]  the held-key prefix (+ task id: the delivery tag kombu holds the task under)
-- ARGV[8]  grace (ms)     ARGV[9]  the suspect-key prefix (+ task id: when a sweep first found it nowhere)
-- Returns {re-enqueued, looked at, last deadline looked at, copies left at that deadline}.
-- Queue names come from the outbox records: the queues are not declared in KEYS (one Redis server).
--! include envelope
local now, window_size = tonumber(ARGV[1]), tonumber(ARGV[5])
local rows = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[3], now, 'WITHSCORES', 'LIMIT', tonumber(ARGV[4]),
  tonumber(ARGV[2]))
local function field(message, prefix)
  local at = string.find(message, prefix, 1, true)
  if not at then return nil end
  return string.match(message, '^([^"]+)"', at + #prefix)
end
local windows = {}
local function tail(queue)
  local w = windows[queue]
  if w then return w end
  local ids, oldest = {}, nil
  for _, message in ipairs(redis.call('LRANGE', queue, -window_size, -1)) do
    local id = field(message, '"id": "')
    if id then
      ids[id] = true
      local score = redis.call('ZSCORE', KEYS[2], id)
      if score and (not oldest or tonumber(score) < oldest) then oldest = tonumber(score) end
    end
  end
  w = {ids = ids, oldest = oldest, complete = redis.call('LLEN', queue) <= window_size}
  windows[queue] = w
  return w
end
local pushed, last, kept = 0, nil, tonumber(ARGV[4])
if ARGV[3] ~= '-inf' then last = tonumber(ARGV[3]) end
for i = 1, #rows, 2 do
  local id, score = rows[i], tonumber(rows[i + 1])
  if score ~= last then last, kept = score, 0 end
  local entry = redis.call('HGET', KEYS[1], id)
  if not entry then
    redis.call('ZREM', KEYS[2], id)
  else
    kept = kept + 1
    local current = redis.call('GET', ARGV[7] .. id)
    if not (current and redis.call('HEXISTS', KEYS[3], current) == 1) then
      local cut = string.find(entry, '\n', 1, true)
      local queue = string.sub(entry, 1, cut - 1)
      local w = tail(queue)
      local younger = (not w.oldest) or score + tonumber(ARGV[6]) >= w.oldest
      if not (w.ids[id] or ((not w.complete) and younger)) then
        local message, tag = string.sub(entry, cut + 1), id
        if string.sub(message, 1, 8) == '{"body":' then
          tag = field(message, '"delivery_tag": "')  -- a whole message, as releases before 2026-11-26 kept
        else
          message = envelope(queue, message, id)
        end
        if message and not (tag and redis.call('HEXISTS', KEYS[3], tag) == 1) then
          -- Lost only if still so after the grace: a delivery taken since its holder's last beat is unknown.
          local suspect = ARGV[9] .. id
          redis.call('SET', suspect, now, 'NX', 'PX', 4 * tonumber(ARGV[8]) + 1000)
          if now - tonumber(redis.call('GET', suspect)) >= tonumber(ARGV[8]) then
            redis.call('RPUSH', queue, message)
            redis.call('DEL', suspect)
            pushed = pushed + 1
          end
        end
      end
    end
  end
end
return {pushed, #rows / 2, last and tostring(last) or ARGV[3], kept}

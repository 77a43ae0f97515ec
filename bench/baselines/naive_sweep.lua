-- The sweep before the windowed one (worker/delivery/outbox.py at 3723a07): LPOS over the whole queue for every
-- copy (bench/outbox_bench.py's baseline).
-- KEYS[1]: the outbox hash; KEYS[2]: its deadlines; KEYS[3]: kombu's unacked hash.
-- ARGV[1]: now (ms); ARGV[2]: the new deadline; ARGV[3]: the limit. Returns the copies pushed.
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local pushed = 0
for _, id in ipairs(ids) do
  local entry = redis.call('HGET', KEYS[1], id)
  if entry then
    local cut = string.find(entry, '\n', 1, true)
    local queue, message = string.sub(entry, 1, cut - 1), string.sub(entry, cut + 1)
    local tag = string.match(message, '"delivery_tag": "([^"]+)"')
    local queued = redis.call('LPOS', queue, message)
    local held = tag and redis.call('HEXISTS', KEYS[3], tag) == 1
    if not queued and not held then
      redis.call('LPUSH', queue, message)
      pushed = pushed + 1
    end
    redis.call('ZADD', KEYS[2], ARGV[2], id)
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return pushed

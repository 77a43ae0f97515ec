-- The publish script of the releases that kept a whole copy of each message (bench/redis_bytes.py's baseline).
-- KEYS: dedupe/queue pairs, then the outbox and its deadlines.
-- ARGV[1]: the deadline; then per event: task id, ttl, message.
for i = 1, (#KEYS - 2) / 2 do
  local a = 3 * i - 1
  if redis.call('SET', KEYS[2 * i - 1], ARGV[a], 'NX', 'EX', ARGV[a + 1]) then
    redis.call('LPUSH', KEYS[2 * i], ARGV[a + 2])
    redis.call('HSET', KEYS[#KEYS - 1], ARGV[a], KEYS[2 * i] .. '\n' .. ARGV[a + 2])
    redis.call('ZADD', KEYS[#KEYS], ARGV[1], ARGV[a])
  end
end

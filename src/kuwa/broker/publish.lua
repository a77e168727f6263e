-- Append one chunk message to a job's transcript (while under the cap) and publish it.
-- KEYS[1] transcript list; ARGV[1] channel, ARGV[2] message, ARGV[3] ttl seconds, ARGV[4] cap
if redis.call('LLEN', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return redis.call('PUBLISH', ARGV[1], ARGV[2])

-- Admit a request under a user's limits, atomically.
-- KEYS[1] the user's running jobs (sorted set, score = claim expiry), KEYS[2] this minute's
-- request counter
-- ARGV[1] now, ARGV[2] most running jobs (0: no limit), ARGV[3] most requests per minute
-- (0: no limit), ARGV[4] job id, ARGV[5] claim seconds
-- Returns "OK", or an error: "JOBS" or "RPM".
local now = tonumber(ARGV[1])
if tonumber(ARGV[3]) > 0 then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('EXPIRE', KEYS[2], 61) end
  if n > tonumber(ARGV[3]) then
    return redis.error_reply('RPM too many requests this minute')
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return redis.error_reply('JOBS too many running jobs')
  end
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[5])))
end
return 'OK'

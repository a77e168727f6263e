-- Publish one round of chunk messages for many jobs in one call.
-- KEYS[i]   transcript list of job i
-- ARGV[1]   transcript TTL (seconds); then, per job i, three values:
--           channel, message, flag (0 = publish only: transcript full;
--           1 = append; 2 = append and refresh the TTL, for a job's first and last chunk)
local ttl = ARGV[1]
for i = 1, #KEYS do
  local base = 2 + (i - 1) * 3
  local flag = ARGV[base + 2]
  if flag ~= '0' then
    redis.call('RPUSH', KEYS[i], ARGV[base + 1])
    if flag == '2' then
      redis.call('EXPIRE', KEYS[i], ttl)
    end
  end
  redis.call('PUBLISH', ARGV[base], ARGV[base + 1])
end
return #KEYS

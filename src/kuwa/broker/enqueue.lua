-- Add a job to an access code's queue, atomically checking it can be served.
-- KEYS[1] queue stream, KEYS[2] live-executor sorted set (score = heartbeat expiry)
-- ARGV[1] now (unix seconds), ARGV[2] most waiting jobs, ARGV[3] job id, ARGV[4] job payload
-- Returns the stream entry id, or an error status: "NOEXEC" or "FULL".
local live = redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf')
if live == 0 then
  return redis.error_reply('NOEXEC no live executor')
end
local waiting = redis.call('XLEN', KEYS[1])
local pending = redis.pcall('XPENDING', KEYS[1], 'executors')
if type(pending) == 'table' then
  waiting = waiting - pending[1]
end
if waiting >= tonumber(ARGV[2]) then
  return redis.error_reply('FULL queue full')
end
return redis.call('XADD', KEYS[1], '*', 'id', ARGV[3], 'job', ARGV[4])

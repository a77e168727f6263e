-- Add a job to an access code's queue, atomically checking it can be served.
-- KEYS[1] queue stream, KEYS[2] live-executor sorted set (score = heartbeat expiry),
-- KEYS[3] ring of users with a backlog, KEYS[4] backlogged-job counter,
-- KEYS[5] this user's backlog list, KEYS[6] the standby flag of a scaled-to-zero model
-- (all keys share the queue's hash tag)
-- ARGV[1] now (unix seconds), ARGV[2] most waiting jobs, ARGV[3] job id, ARGV[4] job payload,
-- ARGV[5] fair window (jobs that may wait in the stream itself), ARGV[6] user
-- Returns the stream entry id, "BACKLOG" (the job waits its turn among users), or an error
-- status: "NOEXEC" or "FULL".
--
-- Fairness: while fewer than the window wait in the stream and nobody has a backlog, a job
-- goes straight to the stream (the fast path). Otherwise it waits in its user's backlog and
-- refill.lua moves jobs to the stream round-robin across users as executors take jobs.
local live = redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf')
if live == 0 and redis.call('EXISTS', KEYS[6]) == 0 then
  return redis.error_reply('NOEXEC no live executor')
end
local waiting = redis.call('XLEN', KEYS[1])
local pending = redis.pcall('XPENDING', KEYS[1], 'executors')
if type(pending) == 'table' and pending.err == nil then  -- no group yet: nothing pending
  waiting = waiting - pending[1]
end
local backlogged = tonumber(redis.call('GET', KEYS[4]) or '0')
if waiting + backlogged >= tonumber(ARGV[2]) then
  return redis.error_reply('FULL queue full')
end
if backlogged == 0 and waiting < tonumber(ARGV[5]) then
  return redis.call('XADD', KEYS[1], '*', 'id', ARGV[3], 'job', ARGV[4])
end
if redis.call('RPUSH', KEYS[5], ARGV[3] .. '\n' .. ARGV[4]) == 1 then
  redis.call('RPUSH', KEYS[3], ARGV[6])
end
redis.call('INCR', KEYS[4])
return 'BACKLOG'

-- Add a job to an access code's queue, atomically checking it can be served.
-- KEYS[1] queue stream, KEYS[2] live-executor sorted set (score = heartbeat expiry),
-- KEYS[3] ring of users with a backlog, KEYS[4] backlogged-job counter,
-- KEYS[5] this user's backlog list, KEYS[6] the standby flag of a scaled-to-zero model,
-- KEYS[7] the slots executors offer this queue (hash: executor id -> slots)
-- KEYS[8] the job's state hash
-- ARGV[1] now (unix seconds), ARGV[2] most jobs waiting for a slot, ARGV[3] job id,
-- ARGV[4] job payload, ARGV[5] fair window (unread jobs the stream may hold beyond the free
-- slots), ARGV[6] user, ARGV[7] backlog key prefix (+ user), ARGV[8] the state's TTL
-- (seconds), then the state's fields and values (status, model, owner, created)
-- Returns the stream entry id, "BACKLOG" (the job waits its turn among users), or an error
-- status: "NOEXEC" or "FULL". A refused job leaves nothing behind; an accepted one gets its
-- state, with `queued` the time it was queued by Redis's clock (the clock of take.lua's
-- `started`, so their difference is the queue's alone, whatever the hosts' clocks).
--
-- Admission: the live executors' free slots take jobs at once, so only the jobs beyond them
-- wait for a slot, and only those count against the queue limit. The stream holds at most
-- free slots + fair window unread jobs: while there is room and nobody has a backlog, a job
-- goes straight to the stream (the fast path). Otherwise it waits in its user's backlog, and
-- jobs move to the stream round-robin across users as room appears (here, and in refill.lua
-- when executors finish jobs or offer slots).
local unread, free, live = line(KEYS[1], KEYS[2], KEYS[7], ARGV[1])
if live == 0 and redis.call('EXISTS', KEYS[6]) == 0 then
  return redis.error_reply('NOEXEC no live executor')
end
local backlogged = tonumber(redis.call('GET', KEYS[4]) or '0')
if unread + backlogged - free >= tonumber(ARGV[2]) then
  return redis.error_reply('FULL queue full')
end
local clock = redis.call('TIME')
redis.call('HSET', KEYS[8], 'queued', clock[1] .. '.' .. string.format('%06d', clock[2]),
           unpack(ARGV, 9, #ARGV))
redis.call('EXPIRE', KEYS[8], ARGV[8])
local room = free + tonumber(ARGV[5]) - unread
if backlogged == 0 and room > 0 then
  return redis.call('XADD', KEYS[1], '*', 'id', ARGV[3], 'job', ARGV[4])
end
if redis.call('RPUSH', KEYS[5], ARGV[3] .. '\n' .. ARGV[4]) == 1 then
  redis.call('RPUSH', KEYS[3], ARGV[6])
end
redis.call('INCR', KEYS[4])
if room > 0 then  -- slots are free: backlogged jobs must not sit still (users take turns)
  move(KEYS[1], KEYS[3], KEYS[4], ARGV[7], room)
end
return 'BACKLOG'

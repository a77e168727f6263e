-- Record the slots an executor offers this queue (optional), then move backlogged jobs into
-- the stream, one user at a time in turn, until it holds free slots + fair window unread jobs.
-- KEYS[1] queue stream, KEYS[2] live-executor sorted set, KEYS[3] the slots executors offer
-- this queue, KEYS[4] ring of users with a backlog, KEYS[5] backlogged counter
-- ARGV[1] now (unix seconds), ARGV[2] fair window, ARGV[3] backlog key prefix (+ user),
-- ARGV[4] executor id ('' to record nothing), ARGV[5] the slots it offers
-- Returns the number of jobs moved.
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
end
return fill(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[3], ARGV[1], ARGV[2])

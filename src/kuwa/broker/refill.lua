-- Move up to ARGV[1] jobs from the users' backlogs into the stream, one user at a time in
-- turn, without letting more than ARGV[2] jobs wait in the stream.
-- KEYS[1] queue stream, KEYS[2] ring of users with a backlog, KEYS[3] backlogged counter
-- ARGV[1] most jobs to move, ARGV[2] fair window, ARGV[3] backlog key prefix (+ user)
-- Returns the number of jobs moved.
local waiting = redis.call('XLEN', KEYS[1])
local pending = redis.pcall('XPENDING', KEYS[1], 'executors')
if type(pending) == 'table' and pending.err == nil then  -- no group yet: nothing pending
  waiting = waiting - pending[1]
end
local room = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - waiting)
local moved = 0
while moved < room do
  local user = redis.call('LMOVE', KEYS[2], KEYS[2], 'LEFT', 'RIGHT')
  if not user then
    break
  end
  local backlog = ARGV[3] .. user
  local item = redis.call('LPOP', backlog)
  if redis.call('LLEN', backlog) == 0 then
    redis.call('LREM', KEYS[2], 0, user)
  end
  if item then
    local cut = string.find(item, '\n', 1, true)
    redis.call('XADD', KEYS[1], '*', 'id', string.sub(item, 1, cut - 1),
               'job', string.sub(item, cut + 1))
    redis.call('DECR', KEYS[3])
    moved = moved + 1
  end
end
return moved

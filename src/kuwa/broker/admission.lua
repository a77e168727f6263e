-- Shared by enqueue.lua and refill.lua: queue.py puts this text in front of each of them.
-- Every key they touch shares the queue's hash tag {q:CODE}.

-- The queue's line: jobs in the stream that no executor has read yet, the free slots of the
-- live executors, and how many executors are live. Live: heartbeat not expired and not
-- draining (the sorted set's score is the heartbeat's expiry, 0 while draining), so a dead
-- executor's report does not count. An executor's free slots are those it offers this queue
-- (the slots hash) less the jobs it has read and not yet acknowledged (its pending entries),
-- so taking a job (XREADGROUP) and finishing it (XACK) change them atomically.
local function line(stream, executors, slots, now)
  local unread = redis.call('XLEN', stream)
  local held = {}
  local pending = redis.pcall('XPENDING', stream, 'executors')
  if type(pending) == 'table' and pending.err == nil then  -- no group yet: nothing pending
    unread = unread - pending[1]
    if pending[4] then
      for _, consumer in ipairs(pending[4]) do
        held[consumer[1]] = tonumber(consumer[2])
      end
    end
  end
  local live = redis.call('ZRANGEBYSCORE', executors, now, '+inf')
  local free = 0
  if #live > 0 then
    local offered = redis.call('HMGET', slots, unpack(live))
    for i, id in ipairs(live) do
      local n = (tonumber(offered[i]) or 0) - (held[id] or 0)
      if n > 0 then
        free = free + n
      end
    end
  end
  return unread, free, #live
end

-- Move up to `room` jobs from the users' backlogs into the stream, one user at a time in
-- turn (the ring's head goes to its tail). Returns the number moved.
local function move(stream, ring, backlogged, prefix, room)
  local moved = 0
  while moved < room do
    local user = redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT')
    if not user then
      break
    end
    local backlog = prefix .. user
    local item = redis.call('LPOP', backlog)
    if redis.call('LLEN', backlog) == 0 then
      redis.call('LREM', ring, 0, user)
    end
    if item then
      local cut = string.find(item, '\n', 1, true)
      redis.call('XADD', stream, '*', 'id', string.sub(item, 1, cut - 1),
                 'job', string.sub(item, cut + 1))
      redis.call('DECR', backlogged)
      moved = moved + 1
    end
  end
  return moved
end

-- Move backlogged jobs into the stream, users taking turns, until it holds the live executors'
-- free slots plus `window` unread jobs. Returns the number moved.
local function fill(stream, executors, slots, ring, backlogged, prefix, now, window)
  if redis.call('LLEN', ring) == 0 then
    return 0
  end
  local unread, free = line(stream, executors, slots, now)
  local room = free + tonumber(window) - unread
  if room <= 0 then
    return 0
  end
  return move(stream, ring, backlogged, prefix, room)
end

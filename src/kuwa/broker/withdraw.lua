-- Delete those of the given entries of a queue's stream that no executor holds, in one step,
-- so that none is taken between the check and the delete.
-- KEYS[1] queue stream; ARGV[1] consumer group, ARGV[2..] entry ids
-- Returns the ids deleted.
local deleted = {}
for i = 2, #ARGV do
  local held = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  local taken = type(held) == 'table' and held.err == nil and #held > 0  -- NOGROUP: not taken
  if not taken and redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    deleted[#deleted + 1] = ARGV[i]
  end
end
return deleted

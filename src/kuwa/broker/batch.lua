-- Run a batch of write commands in one call (their replies are not needed).
-- ARGV: for each command, its word count, then its words: 3, 'XACK', key, ...
-- The keys are not declared (they are in ARGV), so like publish.lua this needs one Redis (or
-- a Sentinel-managed primary), not a Cluster.
local i, n = 1, #ARGV
while i <= n do
  local count = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
return n

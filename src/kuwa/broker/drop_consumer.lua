-- Delete a consumer from a queue's group if it holds no job, in one step: a job it takes
-- between the check and the delete would otherwise leave the pending list with it.
-- KEYS[1] queue stream; ARGV[1] consumer group, ARGV[2] consumer
-- Returns 1 when the consumer was deleted (or was not there), 0 while it holds jobs.
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1

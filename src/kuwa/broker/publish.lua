-- Publish one round of chunk messages for many jobs in one call.
-- KEYS[i]   transcript list of job i
-- ARGV[1]   transcript TTL while the job runs, ARGV[2] once it has ended (seconds)
-- ARGV[3]   m, the number of gateway inboxes in this round; ARGV[4 .. 3+m] their channels
-- then, per job i, four values: channel, message, flag (0 = publish only: transcript full;
--           1 = append; 2 = append and set the running TTL, for a job's first chunk;
--           3 = append and set the ended TTL, for its last; 4 = set the ended TTL only, for
--           the last chunk of a full transcript),
--           inbox (1..m: the inbox of the gateway that started the job; 0: none)
-- Each job's message goes to its own channel (followers: late readers, other gateways) and,
-- with the other jobs of the same gateway, into one message on that gateway's inbox:
-- "channel\nmessage\nchannel\nmessage…" (chunk messages are JSON, without newlines).
local running, ended = ARGV[1], ARGV[2]
local m = tonumber(ARGV[3])
local inboxes = {}
for j = 1, m do
  inboxes[j] = {}
end
local first = 3 + m
for i = 1, #KEYS do
  local base = first + (i - 1) * 4
  local channel, message, flag = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  if flag == '1' or flag == '2' or flag == '3' then
    redis.call('RPUSH', KEYS[i], message)
  end
  if flag == '2' then
    redis.call('EXPIRE', KEYS[i], running)
  elseif flag == '3' or flag == '4' then
    redis.call('EXPIRE', KEYS[i], ended)
  end
  redis.call('PUBLISH', channel, message)
  local inbox = tonumber(ARGV[base + 4])
  if inbox > 0 then
    local parts = inboxes[inbox]
    parts[#parts + 1] = channel
    parts[#parts + 1] = message
  end
end
for j = 1, m do
  redis.call('PUBLISH', ARGV[3 + j], table.concat(inboxes[j], '\n'))
end
return #KEYS

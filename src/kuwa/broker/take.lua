-- Take new jobs for an executor's free slots, or mark the jobs that its blocking read was
-- handed, as started (running, on this executor) in one step; then refill the queue as
-- refill.lua does (jobs taken beyond the slots offered). `started` is when the queue handed
-- the job to the executor, by Redis's clock: now for the jobs taken here; for the jobs of a
-- blocking read, when the read was served (now less the entry's idle time as a pending
-- entry, in milliseconds, so never before the job's `queued`), however long the executor
-- took to look at its reply.
-- KEYS[1] queue stream, KEYS[2] live-executor sorted set, KEYS[3] the slots executors offer
-- this queue, KEYS[4] ring of users with a backlog, KEYS[5] backlogged counter
-- ARGV[1] now (unix seconds, for the line), ARGV[2] fair window, ARGV[3] backlog key prefix,
-- ARGV[4] consumer group, ARGV[5] consumer (the executor's id), ARGV[6] the running status,
-- ARGV[7], ARGV[8] what comes before and after the id in a job's state key, ARGV[9],
-- ARGV[10] in its cancel flag's key, ARGV[11] how many new jobs to take (0: none),
-- ARGV[12 ..] entry id, job id of each job the blocking read was handed (to mark)
-- Returns, for each job marked, whether it was cancelled while queued (1/0), then for each
-- job taken its entry id, its payload and whether it was cancelled.
-- The jobs' keys are found here, not declared: like batch.lua this needs one Redis (or a
-- Sentinel-managed primary), not a Cluster.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local out = {}

local function start(job_id, at)
  local state = ARGV[7] .. job_id .. ARGV[8]
  -- A read's time is known to the millisecond only: never before the job was queued.
  local queued = tonumber(redis.call('HGET', state, 'queued') or '') or 0
  if at < queued then
    at = queued
  end
  redis.call('HSET', state, 'status', ARGV[6], 'executor', ARGV[5],
             'started', string.format('%.6f', at))
  return redis.call('EXISTS', ARGV[9] .. job_id .. ARGV[10])
end

for i = 12, #ARGV, 2 do
  local at = now
  local held = redis.call('XPENDING', KEYS[1], ARGV[4], ARGV[i], ARGV[i], 1, ARGV[5])
  if held[1] then
    at = now - tonumber(held[1][3]) / 1000
  end
  out[#out + 1] = start(ARGV[i + 1], at)
end

if tonumber(ARGV[11]) > 0 then
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[4], ARGV[5], 'COUNT', ARGV[11],
                           'STREAMS', KEYS[1], '>')
  if reply then
    for _, entry in ipairs(reply[1][2]) do
      local fields = entry[2]
      local job_id, payload
      for j = 1, #fields, 2 do
        if fields[j] == 'id' then
          job_id = fields[j + 1]
        elseif fields[j] == 'job' then
          payload = fields[j + 1]
        end
      end
      if job_id and payload then
        out[#out + 1] = entry[1]
        out[#out + 1] = payload
        out[#out + 1] = start(job_id, now)
      end
    end
  end
end

fill(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[3], ARGV[1], ARGV[2])
return out

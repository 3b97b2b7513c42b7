-- Extend the leases of holds ARGV[4..] by ARGV[3] ms from now: their
-- requests still run.
local expiry = now_ms() + tonumber(ARGV[3])
local renewed = 0
for i = 4, #ARGV do
  if redis.call('HEXISTS', holds, ARGV[i]) == 1 then
    redis.call('ZADD', leases, expiry, ARGV[i])
    renewed = renewed + 1
  end
end
return {'renewed', renewed}

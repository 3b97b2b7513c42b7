-- What a replica owes an account: charge ARGV[4] units it spent while Redis
-- did not answer, give back the ARGV[5] holds named next (their settlement
-- could not be told), then make sure the (id, units) pairs after them — the
-- holds of its requests still running — are held, with leases of ARGV[3] ms
-- from now. With nothing owed, this is how a replica renews its leases (and
-- has a hold counted again that Redis lost).
if redis.call('EXISTS', balance) == 0 then
  return {'unknown', 0}
end
local now = now_ms()
local spent = tonumber(ARGV[4])
if spent ~= 0 then
  redis.call('HINCRBY', balance, 'left', -spent)
end
local drops = tonumber(ARGV[5])
local freed = 0
for i = 6, 5 + drops do
  freed = freed + forget_hold(ARGV[i])
end
local adopted = 0
for i = 6 + drops, #ARGV - 1, 2 do
  local id, units = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('HEXISTS', holds, id) == 0 then
    redis.call('HSET', holds, id, units)
    redis.call('HINCRBY', balance, 'reserved', units)
    adopted = adopted + 1
  end
  redis.call('ZADD', leases, now + tonumber(ARGV[3]), id)
end
if freed > 0 then
  announce_freed()
end
return {'reconciled', adopted}

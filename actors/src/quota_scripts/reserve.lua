-- Hold up to ARGV[4] (full) units, at least ARGV[5] (min), as hold ARGV[3]
-- with a lease of ARGV[6] ms. The same rule as `Balances::reserve`: all of
-- it when there is room; wait when what others hold would make room for all
-- of it; as much as is left (at least min) when the balance itself is less.
if redis.call('EXISTS', balance) == 0 then
  return {'unknown', 0}
end
local now = now_ms()
if expire_holds(now) > 0 then
  announce_freed()
end
local full = tonumber(ARGV[4])
if redis.call('HGET', balance, 'unlimited') == '1' then
  return {'unlimited', full}
end
local left = tonumber(redis.call('HGET', balance, 'left'))
local reserved = tonumber(redis.call('HGET', balance, 'reserved') or '0')
local min = math.max(tonumber(ARGV[5]), 1)
if left < min then
  return {'short', left}
end
local available = left - reserved
local amount
if available >= math.max(full, 1) then
  amount = full
elseif left >= math.max(full, 1) then
  return {'wait', left}
elseif available >= min then
  amount = available
else
  return {'wait', left}
end
if amount > 0 then
  redis.call('HSET', holds, ARGV[3], amount)
  redis.call('ZADD', leases, now + tonumber(ARGV[6]), ARGV[3])
  redis.call('HINCRBY', balance, 'reserved', amount)
end
return {'granted', amount}

-- Give back hold ARGV[3] and charge ARGV[4] units (0 for a release). The
-- charge is made even when the hold's lease ran out: the request did spend.
if redis.call('EXISTS', balance) == 0 then
  return {'unknown', 0}
end
local held = forget_hold(ARGV[3])
local charge = tonumber(ARGV[4])
if charge ~= 0 then
  redis.call('HINCRBY', balance, 'left', -charge)
end
if held > 0 then
  announce_freed()
end
return {'settled', held}

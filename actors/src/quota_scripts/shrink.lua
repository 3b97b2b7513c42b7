-- Keep only ARGV[4] units of hold ARGV[3] (the other account of the request
-- could pay for no more).
local held = tonumber(redis.call('HGET', holds, ARGV[3]) or '0')
local keep = tonumber(ARGV[4])
if held <= keep then
  return {'kept', held}
end
redis.call('HSET', holds, ARGV[3], keep)
redis.call('HINCRBY', balance, 'reserved', keep - held)
announce_freed()
return {'shrunk', keep}

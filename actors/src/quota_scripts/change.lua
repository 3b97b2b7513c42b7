-- An admin's change: ARGV[3] is add, set, set_limited (a token's `Set`, which
-- also lifts "unlimited"), unlimited or limited; ARGV[4] the units. Answers
-- what was left before and whether it was unlimited, so the database gets the
-- same change as a difference.
if redis.call('EXISTS', balance) == 0 then
  return {'unknown', 0, 0}
end
local before = tonumber(redis.call('HGET', balance, 'left'))
local was_unlimited = redis.call('HGET', balance, 'unlimited') == '1' and 1 or 0
local kind, n = ARGV[3], ARGV[4]
if kind == 'add' then
  redis.call('HINCRBY', balance, 'left', n)
elseif kind == 'set' then
  redis.call('HSET', balance, 'left', n)
elseif kind == 'set_limited' then
  redis.call('HSET', balance, 'left', n, 'unlimited', 0)
elseif kind == 'unlimited' then
  redis.call('HSET', balance, 'unlimited', 1)
elseif kind == 'limited' then
  redis.call('HSET', balance, 'unlimited', 0)
else
  return redis.error_reply('unknown quota change ' .. kind)
end
-- A top-up may let waiting requests go, or tell them they never will.
announce_freed()
return {'changed', before, was_unlimited}

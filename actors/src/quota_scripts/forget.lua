-- The account's row is gone: drop its balance, holds and leases.
local removed = redis.call('DEL', balance, holds, leases)
announce_freed()
return {'forgotten', removed}

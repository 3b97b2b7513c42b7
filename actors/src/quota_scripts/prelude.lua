-- Shared by every quota script. A script touches one account's keys only,
-- all under one hash tag (so it runs on Redis Cluster too):
--   KEYS[1] the balance (hash: left, unlimited, reserved)
--   KEYS[2] its holds (hash: hold id -> units held)
--   KEYS[3] the holds' leases (sorted set: hold id -> expiry, ms)
-- ARGV[1] is the channel told when holds shrink, ARGV[2] the message.
local balance, holds, leases = KEYS[1], KEYS[2], KEYS[3]

-- Redis's clock, not a replica's: the replicas' clocks may disagree.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A replica renews its holds' leases while their requests run, so a hold
-- whose lease ran out belongs to a replica that died mid-request: give it back.
local function expire_holds(now)
  local gone = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 100)
  if #gone == 0 then
    return 0
  end
  local freed = 0
  for _, id in ipairs(gone) do
    freed = freed + tonumber(redis.call('HGET', holds, id) or '0')
    redis.call('HDEL', holds, id)
  end
  redis.call('ZREM', leases, unpack(gone))
  redis.call('HINCRBY', balance, 'reserved', -freed)
  return #gone
end

-- Requests waiting on any replica for this account's holds may go now.
local function announce_freed()
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end

local function forget_hold(id)
  local held = redis.call('HGET', holds, id)
  if not held then
    return 0
  end
  redis.call('HDEL', holds, id)
  redis.call('ZREM', leases, id)
  redis.call('HINCRBY', balance, 'reserved', -tonumber(held))
  return tonumber(held)
end


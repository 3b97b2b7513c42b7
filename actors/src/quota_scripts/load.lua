-- The balance as the database has it, on first use: only when absent, so two
-- replicas loading at once load once, and a balance in use is never replaced
-- by the database's (which lags by the replicas' unwritten spending).
if redis.call('EXISTS', balance) == 1 then
  return {'kept', 0}
end
redis.call('HSET', balance, 'left', ARGV[3], 'unlimited', ARGV[4], 'reserved', 0)
return {'loaded', 0}

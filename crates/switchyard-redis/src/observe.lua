-- Learns from a response's rate-limit headers: gates, and meter counts the provider reports.
-- KEYS[1] gates hash, KEYS[2..] one per meter to override.
-- ARGV[1] now_ms, ARGV[2] number of gates, then 2 per gate: field, value
-- ("remaining|until|need index"), then 5 per meter: kind, used, p1, p2, limit.
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local a = 3
for g = 1, n do
  redis.call('HSET', KEYS[1], ARGV[a], ARGV[a + 1])
  a = a + 2
end
redis.call('PEXPIRE', KEYS[1], 172800000)
for m = 2, #KEYS do
  local key = KEYS[m]
  local kind = ARGV[a]; local used = tonumber(ARGV[a + 1])
  local p1 = tonumber(ARGV[a + 2]); local p2 = tonumber(ARGV[a + 3])
  a = a + 5
  if kind == 's' then
    -- More than counted is added now; less is left as counted (it leaves with its window).
    local slot = math.floor(now / p1)
    local fields = redis.call('HGETALL', key)
    local total = 0
    for i = 1, #fields, 2 do
      if tonumber(fields[i]) > slot - p2 then total = total + tonumber(fields[i + 1]) end
    end
    if used > total then
      redis.call('HINCRBY', key, slot, used - total)
      redis.call('PEXPIRE', key, 2 * p1 * (p2 + 1) + 3600000)
    end
  elseif kind == 'r' then
    redis.call('HSET', key, 'used', used, 'asof', now)
    redis.call('PEXPIRE', key, 2 * p1 + 3600000)
  else
    redis.call('HSET', key, 'end', p1, 'used', used)
    redis.call('PEXPIRE', key, math.max(p1 - now, 0) + 3600000)
  end
end
return 1

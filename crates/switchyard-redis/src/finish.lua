-- Ends an attempt: settles its reservation with real usage or gives it all back.
-- KEYS[1] bucket hash, KEYS[2] gates hash, KEYS[3] in-flight leases, KEYS[4..] one per meter.
-- ARGV[1] now_ms, ARGV[2] taken_at_ms, ARGV[3] 1 settled / 0 released,
-- ARGV[4..7] reserved requests, tokens, input, output, ARGV[8..11] spent likewise,
-- ARGV[12] the attempt's lease token, ARGV[13] number of meters, then 5 per meter: kind,
-- reserved, spent, p1, p2 (as in admit). Returns the number of unreadable values dropped.
local now = num(ARGV[1]); local taken = num(ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[12])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'strikes', 0) end

local gates = redis.call('HGETALL', KEYS[2])
for i = 1, #gates, 2 do
  local rem, untl, idx, lim, per = gate(gates[i + 1])
  if rem == nil then
    repaired = repaired + 1
    redis.call('HDEL', KEYS[2], gates[i])
  else
    rem = math.max(0, rem + num(ARGV[3 + idx]) - num(ARGV[7 + idx]))
    redis.call('HSET', KEYS[2], gates[i], gate_value(rem, untl, idx, lim, per))
  end
end

local n = num(ARGV[13])
local a = 14
for m = 1, n do
  local key = KEYS[3 + m]
  local kind = ARGV[a]
  local reserved = num(ARGV[a + 1]); local spent = num(ARGV[a + 2])
  local p1 = num(ARGV[a + 3]); local p2 = num(ARGV[a + 4])
  a = a + 5
  local delta = spent - reserved
  if delta ~= 0 then
    if kind == 's' then
      -- The correction lands where the reservation was made, while that slot still counts.
      local slot = math.floor(taken / p1)
      if slot > math.floor(now / p1) - p2 then
        local stored = redis.call('HGET', key, int(slot))
        local have = num(stored)
        if stored and have == nil then repaired = repaired + 1 end
        have = math.max(0, have or 0)
        local count = math.max(0, have + delta)
        if stored or count > 0 then redis.call('HSET', key, int(slot), int(count)) end
      end
    elseif kind == 'r' then
      local f = redis.call('HMGET', key, 'used', 'asof')
      local used = num(f[1])
      if f[1] and used == nil then repaired = repaired + 1 end
      redis.call('HSET', key, 'used', dec(math.max(0, (used or 0) + delta)))
    else
      local f = redis.call('HMGET', key, 'end', 'used')
      local used = num(f[2])
      if f[2] and used == nil then repaired = repaired + 1 end
      if num(f[1]) == p1 and taken >= p2 then
        redis.call('HSET', key, 'used', int(math.max(0, (used or 0) + delta)))
      end
    end
  end
end
return repaired

-- Ends an attempt: settles its reservation with real usage or gives it all back.
-- KEYS[1] bucket hash, KEYS[2] gates hash, KEYS[3..] one per meter.
-- ARGV[1] now_ms, ARGV[2] taken_at_ms, ARGV[3] 1 settled / 0 released,
-- ARGV[4..7] reserved requests, tokens, input, output, ARGV[8..11] spent likewise,
-- ARGV[12] number of meters, then 5 per meter: kind, reserved, spent, p1, p2 (as in admit).
local now = tonumber(ARGV[1]); local taken = tonumber(ARGV[2])
local inflight = tonumber(redis.call('HGET', KEYS[1], 'inflight') or '0')
if inflight > 0 then redis.call('HINCRBY', KEYS[1], 'inflight', -1) end
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'strikes', 0) end

local gates = redis.call('HGETALL', KEYS[2])
for i = 1, #gates, 2 do
  local rem, untl, idx = string.match(gates[i + 1], '^(%d+)|(%-?%d+)|(%d)$')
  rem = tonumber(rem); idx = tonumber(idx)
  rem = math.max(0, rem + tonumber(ARGV[3 + idx]) - tonumber(ARGV[7 + idx]))
  redis.call('HSET', KEYS[2], gates[i], rem .. '|' .. untl .. '|' .. idx)
end

local n = tonumber(ARGV[12])
local a = 13
for m = 1, n do
  local key = KEYS[2 + m]
  local kind = ARGV[a]
  local reserved = tonumber(ARGV[a + 1]); local spent = tonumber(ARGV[a + 2])
  local p1 = tonumber(ARGV[a + 3]); local p2 = tonumber(ARGV[a + 4])
  a = a + 5
  local delta = spent - reserved
  if delta ~= 0 then
    if kind == 's' then
      -- The correction lands where the reservation was made, while that slot still counts.
      local slot = math.floor(taken / p1)
      if slot > math.floor(now / p1) - p2 then
        if delta > 0 then
          redis.call('HINCRBY', key, slot, delta)
        else
          local have = tonumber(redis.call('HGET', key, slot) or '0')
          local back = math.min(have, -delta)
          if back > 0 then redis.call('HINCRBY', key, slot, -back) end
        end
      end
    elseif kind == 'r' then
      local f = redis.call('HMGET', key, 'used', 'asof')
      local used = tonumber(f[1] or '0')
      redis.call('HSET', key, 'used', tostring(math.max(0, used + delta)))
    else
      local f = redis.call('HMGET', key, 'end', 'used')
      if f[1] and tonumber(f[1]) == p1 and taken >= p2 then
        redis.call('HSET', key, 'used', math.max(0, tonumber(f[2] or '0') + delta))
      end
    end
  end
end
return 1

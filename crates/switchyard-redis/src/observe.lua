-- Learns from a response's rate-limit headers: gates, and meter counts the provider reports.
-- KEYS[1] gates hash, KEYS[2] bucket hash (for 'inflight'), KEYS[3..] one per meter to override.
-- ARGV[1] now_ms, ARGV[2] number of gates, then 2 per gate: field, value
-- ("remaining|until|need index"), then 5 per meter: kind, used, p1, p2, limit.
--
-- The headers describe the key as of the answered call. Attempts admitted after it and still
-- in flight (on this instance or another) may not be in them yet, so while others are in
-- flight a header may only make the shared view stricter: a stale "9 remaining" arriving
-- after three newer admissions must not hand their capacity out again. The caller observes
-- before it settles, so its own attempt is one of 'inflight'.
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local others = tonumber(redis.call('HGET', KEYS[2], 'inflight') or '0') > 1
local a = 3
for g = 1, n do
  local field = ARGV[a]; local value = ARGV[a + 1]
  a = a + 2
  local keep = false
  if others then
    local old = redis.call('HGET', KEYS[1], field)
    if old then
      local rem, untl = string.match(old, '^(%d+)|(%-?%d+)|')
      local new = tonumber(string.match(value, '^(%d+)|'))
      keep = now < tonumber(untl) and tonumber(rem) < new
    end
  end
  if not keep then redis.call('HSET', KEYS[1], field, value) end
end
redis.call('PEXPIRE', KEYS[1], 172800000)
for m = 3, #KEYS do
  local key = KEYS[m]
  local kind = ARGV[a]; local used = tonumber(ARGV[a + 1])
  local p1 = tonumber(ARGV[a + 2]); local p2 = tonumber(ARGV[a + 3])
  local limit = tonumber(ARGV[a + 4])
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
    local counted = 0
    if others then
      local f = redis.call('HMGET', key, 'used', 'asof')
      counted = tonumber(f[1] or '0'); local asof = tonumber(f[2] or tostring(now))
      if now > asof then counted = math.max(0, counted - (now - asof) * limit / p1) end
    end
    if not others or used >= counted then
      redis.call('HSET', key, 'used', used, 'asof', now)
      redis.call('PEXPIRE', key, 2 * p1 + 3600000)
    end
  else
    local counted = 0
    if others then
      local f = redis.call('HMGET', key, 'end', 'used')
      if f[1] and tonumber(f[1]) == p1 then counted = tonumber(f[2] or '0') end
    end
    if not others or used >= counted then
      redis.call('HSET', key, 'end', p1, 'used', used)
      redis.call('PEXPIRE', key, math.max(p1 - now, 0) + 3600000)
    end
  end
end
return 1

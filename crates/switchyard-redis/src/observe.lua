-- Learns from a response's rate-limit headers: gates, and meter counts the provider reports.
-- KEYS[1] gates hash, KEYS[2] in-flight leases, KEYS[3] bucket hash, KEYS[4..] one per meter
-- to override.
-- ARGV[1] now_ms, ARGV[2] the answered attempt's admission number (-1 when the headers come
-- without one), ARGV[3] 1 when others were in flight at its admission, else 0, ARGV[4] number
-- of gates, then 2 per gate: field, value ("remaining|until|need index", then "|limit|period
-- ms" when an answer stated the request limit), then 5 per meter: kind, used, p1, p2, limit.
-- Returns the number of unreadable values dropped.
--
-- The headers describe the key as of the answered call. Attempts that overlapped it (on this
-- instance or another) may not be in them yet: those in flight now, those admitted after it,
-- and those in flight when it was admitted (calls overtake each other on the way). Then a
-- header may only make the shared view stricter: a stale "9 remaining" must not hand their
-- capacity out again. The caller observes before it settles, so its own attempt is one of
-- those in flight.
local now = num(ARGV[1])
local seq = num(ARGV[2])
local n = num(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', int(now))
local others = redis.call('ZCARD', KEYS[2]) > 1 or ARGV[3] == '1'
if not others and seq >= 0 then
  local admits = num(redis.call('HGET', KEYS[3], 'admits')) or 0
  others = admits > seq
end
local a = 5
for g = 1, n do
  local field = ARGV[a]; local value = ARGV[a + 1]
  a = a + 2
  local old = redis.call('HGET', KEYS[1], field)
  local rem, untl, _, lim, per = gate(old)
  local new_rem, new_untl, new_idx, new_lim = gate(value)
  if old and rem == nil then repaired = repaired + 1 end
  local keep = others and rem ~= nil and new_rem ~= nil and now < untl and rem < new_rem
  if not keep then
    -- A 429's reading states no limit for the next window: the one an answer stated stays.
    if new_rem ~= nil and new_lim == nil and lim ~= nil then
      value = gate_value(new_rem, new_untl, new_idx, lim, per)
    end
    redis.call('HSET', KEYS[1], field, value)
  end
end
redis.call('PEXPIRE', KEYS[1], 172800000)
for m = 4, #KEYS do
  local key = KEYS[m]
  local kind = ARGV[a]; local used = num(ARGV[a + 1])
  local p1 = num(ARGV[a + 2]); local p2 = num(ARGV[a + 3])
  local limit = num(ARGV[a + 4])
  a = a + 5
  if kind == 's' then
    -- More than counted is added now; less is left as counted (it leaves with its window).
    local slot = math.floor(now / p1)
    local fields = redis.call('HGETALL', key)
    local total = 0
    local here = 0
    local bad = {}
    for i = 1, #fields, 2 do
      local s = num(fields[i]); local c = num(fields[i + 1])
      if s == nil or c == nil then
        bad[#bad + 1] = fields[i]
      elseif s > slot - p2 then
        total = total + math.max(0, c)
        if s == slot then here = here + math.max(0, c) end
      end
    end
    if #bad > 0 then
      repaired = repaired + #bad
      redis.call('HDEL', key, unpack(bad))
    end
    if used > total then
      redis.call('HSET', key, int(slot), int(here + used - total))
      redis.call('PEXPIRE', key, int(2 * p1 * (p2 + 1) + 3600000))
    end
  elseif kind == 'r' then
    local counted = 0
    if others then
      local f = redis.call('HMGET', key, 'used', 'asof')
      counted = math.max(0, num(f[1]) or 0); local asof = num(f[2]) or now
      if now > asof and p1 > 0 then counted = math.max(0, counted - (now - asof) * limit / p1) end
    end
    if not others or used >= counted then
      redis.call('HSET', key, 'used', dec(used), 'asof', int(now))
      redis.call('PEXPIRE', key, int(2 * p1 + 3600000))
    end
  else
    local counted = 0
    if others then
      local f = redis.call('HMGET', key, 'end', 'used')
      if num(f[1]) == p1 then counted = math.max(0, num(f[2]) or 0) end
    end
    if not others or used >= counted then
      redis.call('HSET', key, 'end', int(p1), 'used', int(used))
      redis.call('PEXPIRE', key, int(math.max(p1 - now, 0) + 3600000))
    end
  end
end
return repaired

-- Atomic admission. Time is ARGV[1] (ms, from the caller's Clock), never Redis's TIME.
-- KEYS[1] bucket hash, KEYS[2] key hash, KEYS[3] gates hash, KEYS[4..] one per meter.
-- ARGV[1] now_ms, ARGV[2] max concurrent (-1: none), ARGV[3..6] what the attempt needs in
-- requests, tokens, input tokens, output tokens, ARGV[7] number of meters, then 5 per meter:
-- kind (s sliding, r refill, d day), limit, need, p1, p2
--   s: p1 slot length ms, p2 slots kept; r: p1 full-refill ms; d: p1 day end ms, p2 day start ms.
-- Returns {1} or {0, reason, until_ms (-1 unknown or never), detail}.
local now = tonumber(ARGV[1])

local hold = redis.call('HMGET', KEYS[2], 'hold', 'until')
if hold[1] then
  local untl = tonumber(hold[2])
  if untl < 0 or now < untl then return {0, hold[1], untl, ''} end
  redis.call('HDEL', KEYS[2], 'hold', 'until', 'since', 'reason')
  redis.call('HSET', KEYS[2], 'changed', untl)
end

local b = redis.call('HMGET', KEYS[1], 'cool_until', 'exh_until', 'inflight')
-- Exhaustion first: it outlasts any cooldown, so its end is the one to report.
if b[2] then
  local untl = tonumber(b[2])
  if untl < 0 or now < untl then return {0, 'exhausted', untl, ''} end
  redis.call('HDEL', KEYS[1], 'exh_until', 'exh_since', 'exh_reason')
  redis.call('HSET', KEYS[1], 'changed', untl)
end
if b[1] then
  local untl = tonumber(b[1])
  if now < untl then return {0, 'cooling_down', untl, ''} end
  redis.call('HDEL', KEYS[1], 'cool_until', 'cool_since', 'cool_reason')
  redis.call('HSET', KEYS[1], 'changed', untl)
end
local maxc = tonumber(ARGV[2])
if maxc >= 0 and tonumber(b[3] or '0') >= maxc then
  return {0, 'concurrency', -1, tostring(maxc)}
end

-- Gates: field "unit|scope" -> "remaining|until|need index".
local gates = redis.call('HGETALL', KEYS[3])
local live = {}
for i = 1, #gates, 2 do
  local rem, untl, idx = string.match(gates[i + 1], '^(%d+)|(%-?%d+)|(%d)$')
  rem = tonumber(rem); untl = tonumber(untl); idx = tonumber(idx)
  if now < untl then
    if rem < tonumber(ARGV[2 + idx]) then
      return {0, 'provider_remaining', untl, gates[i] .. '|' .. rem}
    end
    live[#live + 1] = {gates[i], rem - tonumber(ARGV[2 + idx]), untl, idx}
  else
    redis.call('HDEL', KEYS[3], gates[i])
  end
end

local n = tonumber(ARGV[7])
local plan = {}
local a = 8
for m = 1, n do
  local key = KEYS[3 + m]
  local kind = ARGV[a]
  local limit = tonumber(ARGV[a + 1]); local need = tonumber(ARGV[a + 2])
  local p1 = tonumber(ARGV[a + 3]); local p2 = tonumber(ARGV[a + 4])
  a = a + 5
  if need > limit then return {0, 'too_large', -1, tostring(m)} end
  if kind == 's' then
    local slot = math.floor(now / p1)
    local fields = redis.call('HGETALL', key)
    local total = 0
    local kept = {}
    local stale = {}
    for i = 1, #fields, 2 do
      local s = tonumber(fields[i]); local c = tonumber(fields[i + 1])
      if s <= slot - p2 then stale[#stale + 1] = fields[i]
      else total = total + c; kept[#kept + 1] = {s, c} end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    if total + need > limit then
      table.sort(kept, function(x, y) return x[1] < y[1] end)
      local left = total
      for _, sc in ipairs(kept) do
        left = left - sc[2]
        if left + need <= limit then return {0, 'limit', (sc[1] + p2) * p1, tostring(m)} end
      end
      return {0, 'limit', (slot + 1) * p1, tostring(m)}
    end
    plan[m] = {kind, key, need, slot, p1 * (p2 + 1)}
  elseif kind == 'r' then
    local f = redis.call('HMGET', key, 'used', 'asof')
    local used = tonumber(f[1] or '0'); local asof = tonumber(f[2] or tostring(now))
    if now > asof then used = math.max(0, used - (now - asof) * limit / p1) end
    if used + need > limit then
      return {0, 'limit', now + math.ceil((used + need - limit) * p1 / limit), tostring(m)}
    end
    plan[m] = {kind, key, need, used, p1}
  else
    local f = redis.call('HMGET', key, 'end', 'used')
    local used = 0
    if f[1] and tonumber(f[1]) == p1 then used = tonumber(f[2] or '0') end
    if used + need > limit then return {0, 'limit', p1, tostring(m)} end
    plan[m] = {kind, key, need, used, p1}
  end
end

for m = 1, n do
  local p = plan[m]
  if p[1] == 's' then
    redis.call('HINCRBY', p[2], p[4], p[3])
    -- The TTL only collects garbage; which slots count is decided by ARGV[1] above.
    redis.call('PEXPIRE', p[2], 2 * p[5] + 3600000)
  elseif p[1] == 'r' then
    redis.call('HSET', p[2], 'used', tostring(p[4] + p[3]), 'asof', now)
    redis.call('PEXPIRE', p[2], 2 * p[5] + 3600000)
  else
    redis.call('HSET', p[2], 'end', p[5], 'used', p[4] + p[3])
    redis.call('PEXPIRE', p[2], math.max(p[5] - now, 0) + 3600000)
  end
end
for _, g in ipairs(live) do
  redis.call('HSET', KEYS[3], g[1], g[2] .. '|' .. g[3] .. '|' .. g[4])
end
redis.call('HINCRBY', KEYS[1], 'inflight', 1)
return {1}

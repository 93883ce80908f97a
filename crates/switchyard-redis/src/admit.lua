-- Atomic admission. Time is ARGV[1] (ms, from the caller's Clock), never Redis's TIME.
-- KEYS[1] bucket hash, KEYS[2] key hash, KEYS[3] gates hash, KEYS[4] in-flight leases (sorted
-- set: token scored by its lease's end), KEYS[5..] one per meter.
-- ARGV[1] now_ms, ARGV[2] max concurrent (-1: none), ARGV[3..6] what the attempt needs in
-- requests, tokens, input tokens, output tokens, ARGV[7] the lease's end ms, ARGV[8] the
-- attempt's token, ARGV[9] number of meters, then 5 per meter:
-- kind (s sliding, r refill, d day), limit, need, p1, p2
--   s: p1 slot length ms, p2 slots kept; r: p1 full-refill ms; d: p1 day end ms, p2 day start ms.
-- Returns {1, repaired, seq, overlapped, left_1, .., left_n} (the admission's number among the
-- bucket's admissions; 1 when other attempts were in flight then, else 0; each meter's share
-- left after this admission, in millionths: the ledger's headroom) or {0, reason, until_ms
-- (-1 unknown or never), detail, repaired}.
local now = num(ARGV[1])

local hold = redis.call('HMGET', KEYS[2], 'hold', 'until')
if hold[1] then
  -- No end stored: open-ended (until re-enabled). An end that does not parse is dropped
  -- with the hold; the provider's next error sets it again if it still holds.
  local untl = -1
  if hold[2] then untl = num(hold[2]) end
  if untl == nil then
    repaired = repaired + 1
    redis.call('HDEL', KEYS[2], 'hold', 'until', 'since', 'reason')
  elseif untl < 0 or now < untl then
    return {0, hold[1], whole(untl), '', repaired}
  else
    redis.call('HDEL', KEYS[2], 'hold', 'until', 'since', 'reason')
    redis.call('HSET', KEYS[2], 'changed', int(untl))
  end
end

local b = redis.call('HMGET', KEYS[1], 'cool_until', 'exh_until')
-- Exhaustion first: it outlasts any cooldown, so its end is the one to report.
if b[2] then
  local untl = num(b[2])
  if untl ~= nil and (untl < 0 or now < untl) then
    return {0, 'exhausted', whole(untl), '', repaired}
  end
  if untl == nil then repaired = repaired + 1 else redis.call('HSET', KEYS[1], 'changed', int(untl)) end
  redis.call('HDEL', KEYS[1], 'exh_until', 'exh_since', 'exh_reason')
end
if b[1] then
  local untl = num(b[1])
  if untl ~= nil and now < untl then return {0, 'cooling_down', whole(untl), '', repaired} end
  if untl == nil then repaired = repaired + 1 else redis.call('HSET', KEYS[1], 'changed', int(untl)) end
  redis.call('HDEL', KEYS[1], 'cool_until', 'cool_since', 'cool_reason')
end
-- Attempts in flight hold a lease each; a lease whose holder died ends by itself.
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', int(now))
local maxc = num(ARGV[2])
if maxc >= 0 and redis.call('ZCARD', KEYS[4]) >= maxc then
  return {0, 'concurrency', -1, int(maxc), repaired}
end

-- Gates: field "unit|scope" -> "remaining|until|need index[|limit|period ms]".
local gates = redis.call('HGETALL', KEYS[3])
local live = {}
for i = 1, #gates, 2 do
  local rem, untl, idx, lim, per = gate(gates[i + 1])
  -- A gate whose answer stated its request limit starts the next window with that limit, for
  -- one period or until the next header replaces it: the requests waiting for the reset get
  -- the limit's worth through, not all of them at once.
  if rem ~= nil and lim ~= nil and now >= untl then
    rem = lim
    untl = now + per
  end
  if rem == nil then
    repaired = repaired + 1
    redis.call('HDEL', KEYS[3], gates[i])
  elseif now < untl then
    local need = num(ARGV[2 + idx])
    if rem < need then
      return {0, 'provider_remaining', whole(untl), gates[i] .. '|' .. int(rem), repaired}
    end
    live[#live + 1] = {gates[i], rem - need, untl, idx, lim, per}
  else
    redis.call('HDEL', KEYS[3], gates[i])
  end
end

local n = num(ARGV[9])
local plan = {}
local room = {}
-- What `limit` has left once `used` (this admission included) is counted, in millionths.
local function share_left(limit, used)
  if limit <= 0 then return 0 end
  return whole(math.max(0, limit - used) * 1000000 / limit)
end
local a = 10
for m = 1, n do
  local key = KEYS[4 + m]
  local kind = ARGV[a]
  local limit = num(ARGV[a + 1]); local need = num(ARGV[a + 2])
  local p1 = num(ARGV[a + 3]); local p2 = num(ARGV[a + 4])
  a = a + 5
  if need > limit then return {0, 'too_large', -1, int(m), repaired} end
  if kind == 's' then
    local slot = math.floor(now / p1)
    local fields = redis.call('HGETALL', key)
    local total = 0
    local kept = {}
    local stale = {}
    local here = 0
    for i = 1, #fields, 2 do
      local s = num(fields[i]); local c = num(fields[i + 1])
      if s == nil or c == nil then
        repaired = repaired + 1
        stale[#stale + 1] = fields[i]
      elseif s <= slot - p2 then
        stale[#stale + 1] = fields[i]
      else
        c = math.max(0, c)
        total = total + c
        kept[#kept + 1] = {s, c}
        if s == slot then here = here + c end
      end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    if total + need > limit then
      table.sort(kept, function(x, y) return x[1] < y[1] end)
      local left = total
      for _, sc in ipairs(kept) do
        left = left - sc[2]
        if left + need <= limit then
          return {0, 'limit', whole((sc[1] + p2) * p1), int(m), repaired}
        end
      end
      return {0, 'limit', whole((slot + 1) * p1), int(m), repaired}
    end
    plan[m] = {kind, key, need, slot, p1 * (p2 + 1), here}
    room[m] = share_left(limit, total + need)
  elseif kind == 'r' then
    local f = redis.call('HMGET', key, 'used', 'asof')
    local used = num(f[1]); local asof = num(f[2])
    if (f[1] and used == nil) or (f[2] and asof == nil) then repaired = repaired + 1 end
    used = math.max(0, used or 0); asof = asof or now
    if now > asof then used = math.max(0, used - (now - asof) * limit / p1) end
    if used + need > limit then
      local wait = 0
      if limit > 0 then wait = math.ceil((used + need - limit) * p1 / limit) end
      return {0, 'limit', whole(now + wait), int(m), repaired}
    end
    plan[m] = {kind, key, need, used, p1}
    room[m] = share_left(limit, used + need)
  else
    local f = redis.call('HMGET', key, 'end', 'used')
    local used = 0
    local stored_end = num(f[1]); local stored_used = num(f[2])
    if (f[1] and stored_end == nil) or (f[2] and stored_used == nil) then repaired = repaired + 1 end
    if stored_end == p1 then used = math.max(0, stored_used or 0) end
    if used + need > limit then return {0, 'limit', whole(p1), int(m), repaired} end
    plan[m] = {kind, key, need, used, p1}
    room[m] = share_left(limit, used + need)
  end
end

for m = 1, n do
  local p = plan[m]
  if p[1] == 's' then
    redis.call('HSET', p[2], int(p[4]), int(p[6] + p[3]))
    -- The TTL only collects garbage; which slots count is decided by ARGV[1] above.
    redis.call('PEXPIRE', p[2], int(2 * p[5] + 3600000))
  elseif p[1] == 'r' then
    redis.call('HSET', p[2], 'used', dec(p[4] + p[3]), 'asof', int(now))
    redis.call('PEXPIRE', p[2], int(2 * p[5] + 3600000))
  else
    redis.call('HSET', p[2], 'end', int(p[5]), 'used', int(p[4] + p[3]))
    redis.call('PEXPIRE', p[2], int(math.max(p[5] - now, 0) + 3600000))
  end
end
for _, g in ipairs(live) do
  redis.call('HSET', KEYS[3], g[1], gate_value(g[2], g[3], g[4], g[5], g[6]))
end
local overlapped = 0
if redis.call('ZCARD', KEYS[4]) > 0 then overlapped = 1 end
-- Not HINCRBY: a count that does not parse would fail every admission instead of restarting.
local admits = redis.call('HGET', KEYS[1], 'admits')
local seq = num(admits)
if admits and seq == nil then repaired = repaired + 1 end
seq = math.max(0, math.floor(seq or 0)) + 1
redis.call('HSET', KEYS[1], 'admits', int(seq))
local lease_end = num(ARGV[7])
redis.call('ZADD', KEYS[4], int(lease_end), ARGV[8])
-- Garbage collection only (Redis's own clock): leases are judged by ARGV[1] above.
redis.call('PEXPIRE', KEYS[4], int(math.max(lease_end - now, 0) + 3600000))
local reply = {1, repaired, seq, overlapped}
for m = 1, n do reply[4 + m] = room[m] end
return reply

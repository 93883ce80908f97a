-- Puts a bucket in cooldown or exhaustion; never shortens one in force.
-- KEYS[1] bucket hash. ARGV[1] now_ms, ARGV[2] 'cool' or 'exh', ARGV[3] the delay ms for a
-- cooldown (-1: the backoff schedule) or the end ms of an exhaustion (-1: until re-enabled),
-- ARGV[4] reason, ARGV[5..] the backoff schedule in ms.
-- Returns the hold's end in force afterwards (-1: open-ended). A stored value that does not
-- parse counts as absent and is overwritten.
local now = num(ARGV[1])
local arg = num(ARGV[3])
if ARGV[2] == 'cool' then
  local strikes = math.max(0, num(redis.call('HGET', KEYS[1], 'strikes')) or 0)
  redis.call('HSET', KEYS[1], 'strikes', int(strikes + 1))
  local wait = arg
  if wait < 0 then
    local steps = #ARGV - 4
    wait = num(ARGV[4 + math.min(strikes + 1, steps)])
  end
  local untl = now + wait
  local cur = num(redis.call('HGET', KEYS[1], 'cool_until')) or -2
  if cur >= untl and cur > now then return whole(cur) end
  redis.call('HSET', KEYS[1], 'cool_until', int(untl), 'cool_since', int(now), 'cool_reason', ARGV[4], 'changed', int(now))
  return whole(untl)
else
  local cur = num(redis.call('HGET', KEYS[1], 'exh_until'))
  if cur then
    if cur < 0 then return -1 end
    if cur > now and arg >= 0 and arg <= cur then return whole(cur) end
  end
  redis.call('HSET', KEYS[1], 'exh_until', int(arg), 'exh_since', int(now), 'exh_reason', ARGV[4], 'changed', int(now))
  return whole(arg)
end

-- Shared by every script (prepended to each). Lua numbers are doubles: every count and time
-- is kept within +/-(2^53 - 1), where doubles are exact, and is written as an integer string
-- ('%d'), never through tostring or concatenation, which write 1e+14 from 1e14 on (HINCRBY,
-- string patterns and the gateway's parser then refuse it). A stored value that does not
-- parse is dropped and counted in `repaired`: one bad value costs its own count, never every
-- later call. See: issue 16.
local MAXN = 9007199254740991
local repaired = 0

local function clamp(n)
  if n == nil or n ~= n then return 0 end
  if n > MAXN then return MAXN end
  if n < -MAXN then return -MAXN end
  return n
end

-- A whole number, clamped: for replies (Redis turns a Lua number into an integer reply).
local function whole(n)
  n = clamp(n)
  if n >= 0 then return math.floor(n) end
  return -math.floor(-n)
end

-- A whole number as an integer string, for anything written.
local function int(n)
  return string.format('%d', whole(n))
end

-- A fractional count (a refilling bucket drains continuously) in plain decimal notation.
local function dec(n)
  return string.format('%.3f', clamp(n))
end

-- A stored number, clamped; nil when absent (`false` from HMGET) or not a finite number.
local function num(text)
  if not text then return nil end
  local n = tonumber(text)
  if n == nil or n ~= n or n == math.huge or n == -math.huge then return nil end
  return clamp(n)
end

-- A gate's stored value "remaining|until|need index", followed by "|limit|period ms" when a
-- successful answer stated the request limit (the next window starts with it); nil when it
-- does not parse. Values written as 1e+14 by earlier versions still parse, and are rewritten
-- as integers.
local function gate(value)
  local rem, untl, idx, lim, per =
    string.match(value or '', '^([^|]+)|([^|]+)|([1-4])|([^|]+)|([^|]+)$')
  if rem == nil then
    rem, untl, idx = string.match(value or '', '^([^|]+)|([^|]+)|([1-4])$')
  else
    lim = num(lim); per = num(per)
    if lim == nil or per == nil or lim < 1 or per < 1 then return nil end
  end
  rem = num(rem); untl = num(untl)
  if rem == nil or untl == nil or idx == nil then return nil end
  return math.max(0, rem), untl, tonumber(idx), lim, per
end

local function gate_value(rem, untl, idx, lim, per)
  local value = int(rem) .. '|' .. int(untl) .. '|' .. idx
  if lim ~= nil then value = value .. '|' .. int(lim) .. '|' .. int(per) end
  return value
end


//! The Lua scripts: every write is one script, so it is atomic in Redis.
//!
//! # Layout in Redis
//!
//! - `{prefix}:s:{hex}`: a session, a hash keyed by the hex of the token's
//!   keyed digest (never the token). Fields: `v` version (bumped by each
//!   data update), `d` data (JSON), `p` principal (JSON, absent while
//!   anonymous), `h` handle (16 hex digits), `c` created, `i` token issued,
//!   `s` last seen, `a` absolute deadline — times in Unix ms on Redis's own
//!   clock (`TIME`), so servers with skewed clocks still agree. The key's
//!   TTL is always `min(s + idle, a) - now`. `al`: the hex of the
//!   session's one grace alias, while it has one. With a recorded device
//!   (see [`SET_DEVICE`]), also `ua` its user agent and `ip` its address
//!   (text, empty when unknown): personal data, gone with the key.
//! - `{prefix}:a:{old hex}`: a token replaced by a plain rotation, still
//!   accepted for the grace window (the key's TTL): the hex of the
//!   session's current key. Followed only while the session's `al` names it
//!   back; deleted by the next rotation, a login, a logout or a revocation.
//! - `{prefix}:u:{principal JSON}`: a sorted set of the hex digests of a
//!   principal's sessions, scored by the time each was bound to the
//!   principal (its login; a re-login as the same principal or a rotation
//!   keeps the score), so the per-user limit ends the earliest-bound ones.
//!   Members whose session expired are pruned by the scripts that read it;
//!   its own TTL covers its longest-lived member, so an abandoned index
//!   disappears. An index left as a plain set by an earlier version is
//!   converted in place by the first script that touches it (scored by the
//!   members' `i`, their last token issue).
//! - `{prefix}:all`: a sorted set of every session's hex digest, scored
//!   by its deadline (`min(s + idle, a)`, kept in step by every script that
//!   moves the TTL): its size is what `max_sessions` bounds; members whose
//!   deadline passed are dropped by `create` at capacity and by `COUNT`.
//! - `{prefix}:anon`: a sorted set of the anonymous sessions' hex digests,
//!   scored by their last recorded use (`s`): the eviction order. A login
//!   removes its session.
//! - `{prefix}:live`: the subscriber's flush marker (see `subscriber`).
//! - `{prefix}:inv`: the pub/sub channel of invalidations. A message is the
//!   space-separated hex digests of sessions changed or ended.
//!
//! Scripts build principal-set keys from data, so they need a single Redis
//! (or a primary behind Sentinel), not Redis Cluster.

use std::sync::LazyLock;

use redis::Script;

/// `now`: Unix ms on Redis's clock; `n(x)`: an integer as a decimal string
/// (Lua numbers are doubles; `%.0f` prints them without exponent).
macro_rules! prelude {
    () => {
        "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function n(x) return string.format('%.0f', x) end
"
    };
}

/// `index(k, prefix)`: the principal index `k`, converted first if an
/// earlier version left it as a plain set (see the module docs).
macro_rules! index_fn {
    () => {
        "local function index(k, prefix)
  if redis.call('TYPE', k)['ok'] == 'set' then
    local ttl = redis.call('PTTL', k)
    local ms = redis.call('SMEMBERS', k)
    redis.call('DEL', k)
    for _, m in ipairs(ms) do
      local i = redis.call('HGET', prefix .. ':s:' .. m, 'i')
      if i then redis.call('ZADD', k, i, m) end
    end
    if ttl > 0 and redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, ttl) end
  end
  return k
end
"
    };
}

/// The session space (`{prefix}:all`, `{prefix}:anon`, see the module
/// docs): `used(prefix, hex, s, deadline)` records a use of a session
/// already counted; `reclaim(prefix)` drops the members whose deadline has
/// passed and returns how many. Needs `now` and `n` (the prelude).
macro_rules! space_fn {
    () => {
        "local function used(prefix, hex, s, deadline)
  redis.call('ZADD', prefix .. ':all', 'XX', n(deadline), hex)
  redis.call('ZADD', prefix .. ':anon', 'XX', n(s), hex)
end
local function reclaim(prefix)
  local dead = redis.call('ZRANGEBYSCORE', prefix .. ':all', '-inf', n(now))
  for _, m in ipairs(dead) do redis.call('ZREM', prefix .. ':anon', m) end
  redis.call('ZREMRANGEBYSCORE', prefix .. ':all', '-inf', n(now))
  return #dead
end
"
    };
}

/// KEYS: session. ARGV: handle, data, idle ms, absolute ms, prefix,
/// max sessions, channel.
/// At `max sessions`, first drops the members of the session space whose
/// deadline passed, then evicts anonymous sessions, least recently used
/// first (as far as Redis has seen: `s`), until there is room, publishing
/// their digests. Logged-in sessions are never evicted.
/// Returns `{1, now, evicted hex, evicted handle, ...}`, `{0, 0}` if the
/// key exists (a digest collision), or `{-1}` when the space is full of
/// logged-in sessions.
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        space_fn!(),
        "if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local idle = tonumber(ARGV[3])
local abs = tonumber(ARGV[4])
local prefix = ARGV[5]
local max = tonumber(ARGV[6])
local all, anon = prefix .. ':all', prefix .. ':anon'
local out = {1, now}
if redis.call('ZCARD', all) >= max then
  reclaim(prefix)
  local gone = {}
  while redis.call('ZCARD', all) >= max do
    local first = redis.call('ZRANGE', anon, 0, 0)
    if #first == 0 then
      if #gone > 0 then redis.call('PUBLISH', ARGV[7], table.concat(gone, ' ')) end
      return {-1}
    end
    local m = first[1]
    local k = prefix .. ':s:' .. m
    local r = redis.call('HMGET', k, 'h', 'al', 'p')
    redis.call('ZREM', anon, m)
    if not r[1] then
      redis.call('ZREM', all, m)
    elseif not r[3] then
      if r[2] then redis.call('DEL', prefix .. ':a:' .. r[2]) end
      redis.call('DEL', k)
      redis.call('ZREM', all, m)
      table.insert(gone, m)
      table.insert(out, m)
      table.insert(out, r[1])
    end
  end
  if #gone > 0 then redis.call('PUBLISH', ARGV[7], table.concat(gone, ' ')) end
end
local hex = string.sub(KEYS[1], #prefix + 4)
redis.call('HSET', KEYS[1], 'v', 1, 'd', ARGV[2], 'h', ARGV[1], 'c', n(now), 'i', n(now), 's', n(now), 'a', n(now + abs))
redis.call('PEXPIRE', KEYS[1], n(math.min(idle, abs)))
redis.call('ZADD', all, n(now + math.min(idle, abs)), hex)
redis.call('ZADD', anon, n(now), hex)
return out"
    ))
});

/// KEYS: none. ARGV: prefix.
/// Drops the members of the session space whose deadline passed; returns
/// `{live, anonymous}`.
pub(crate) static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        space_fn!(),
        "reclaim(ARGV[1])
return {redis.call('ZCARD', ARGV[1] .. ':all'), redis.call('ZCARD', ARGV[1] .. ':anon')}"
    ))
});

/// KEYS: session. ARGV: idle ms, prefix, hex of the session key, whether
/// the read is a use (`1`) or not (`0`).
/// Returns nil, or `{v, d, p or '', h, c, i, s, a, now, target}` as
/// strings. `target` is `''` for the session's own token; for a token in a
/// rotation's grace window (an alias: `{prefix}:a:{hex}` names the session
/// it now leads to, and that session names it back in its `al` field), the
/// hex of the session's current key. A read that is a use records it when
/// less than half the idle timeout is left (`s = now`, TTL renewed), so
/// reads turn into writes only that often.
pub(crate) static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        space_fn!(),
        "local key = KEYS[1]
local target = ''
if redis.call('EXISTS', key) == 0 then
  local t = redis.call('GET', ARGV[2] .. ':a:' .. ARGV[3])
  if not t then return false end
  key = ARGV[2] .. ':s:' .. t
  if redis.call('HGET', key, 'al') ~= ARGV[3] then return false end
  target = t
end
local r = redis.call('HMGET', key, 'v', 'd', 'p', 'h', 'c', 'i', 's', 'a')
if not r[1] or not r[8] then return false end
local idle = tonumber(ARGV[1])
local s = tonumber(r[7])
local a = tonumber(r[8])
if now >= math.min(s + idle, a) then return false end
if ARGV[4] == '1' and s + idle - now < idle / 2 then
  s = now
  redis.call('HSET', key, 's', n(now))
  redis.call('PEXPIRE', key, n(math.min(now + idle, a) - now))
  if target == '' then used(ARGV[2], ARGV[3], now, math.min(now + idle, a))
  else used(ARGV[2], target, now, math.min(now + idle, a)) end
end
return {r[1], r[2], r[3] or '', r[4], r[5], r[6], n(s), r[8], n(now), target}"
    ))
});

/// KEYS: session. ARGV: idle ms, prefix, hex.
/// Records a use: `s = now`, TTL `min(now + idle, a) - now`.
/// Returns `now`, or -1 when the session is gone.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        space_fn!(),
        "local a = redis.call('HGET', KEYS[1], 'a')
if not a then return -1 end
local ttl = math.min(now + tonumber(ARGV[1]), tonumber(a)) - now
if ttl <= 0 then return -1 end
redis.call('HSET', KEYS[1], 's', n(now))
redis.call('PEXPIRE', KEYS[1], n(ttl))
used(ARGV[2], ARGV[3], now, now + ttl)
return now"
    ))
});

/// KEYS: session. ARGV: expected version, new data, idle ms, channel, hex,
/// prefix.
/// Optimistic write: applies only if the version is still the expected one.
/// Returns `{1, new version}`, `{0, current version, current data}` on a
/// conflict, or `{-1}` when the session is gone.
pub(crate) static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        space_fn!(),
        "local r = redis.call('HMGET', KEYS[1], 'v', 'd', 'a', 's')
if not r[1] or not r[3] then return {-1} end
if r[1] ~= ARGV[1] then return {0, r[1], r[2]} end
local idle = tonumber(ARGV[3])
local ttl = math.min(now + idle, tonumber(r[3])) - now
if ttl <= 0 or now >= tonumber(r[4]) + idle then return {-1} end
local v = tonumber(r[1]) + 1
redis.call('HSET', KEYS[1], 'v', n(v), 'd', ARGV[2], 's', n(now))
redis.call('PEXPIRE', KEYS[1], n(ttl))
used(ARGV[6], ARGV[5], now, now + ttl)
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {1, v}"
    ))
});

/// KEYS: old session, new session. ARGV: prefix, old hex, new hex, idle ms,
/// absolute ms, principal JSON to log in as (or '' to only rotate), channel,
/// the encoded fresh data for a change of principal, grace ms, per-user
/// limit (0: none).
/// Moves the session to the new key, updates the principal index, restarts
/// the absolute deadline on login, resets the data (and bumps its version)
/// when the principal changes, and invalidates the old key. The session's
/// previous alias ends; a plain rotation with a grace window leaves the old
/// key as its one alias (`{prefix}:a:{old hex}` → new hex, expiring with
/// the window, named in the session's `al` field); a login leaves none.
/// A login that binds the session to a principal (anonymous before, or
/// another principal's) ends that principal's earliest-bound sessions
/// beyond the limit, never this one, and invalidates them too.
/// Returns `{1, handle, principal JSON or '', victim hex, victim handle,
/// ...}` (the principal the session is bound to now), `{0}` when the old
/// session is gone (an alias cannot rotate), `{-1}` when the new key exists.
pub(crate) static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        index_fn!(),
        "local r = redis.call('HMGET', KEYS[1], 'p', 'a', 's', 'al', 'h')
if not r[2] then return {0} end
local idle = tonumber(ARGV[4])
local a = tonumber(r[2])
if now >= math.min(tonumber(r[3]) + idle, a) then return {0} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1} end
redis.call('RENAME', KEYS[1], KEYS[2])
if r[4] then redis.call('DEL', ARGV[1] .. ':a:' .. r[4]) end
local grace = tonumber(ARGV[9])
if ARGV[6] == '' and grace > 0 then
  redis.call('SET', ARGV[1] .. ':a:' .. ARGV[2], ARGV[3], 'PX', n(grace))
  redis.call('HSET', KEYS[2], 'al', ARGV[2])
elseif r[4] then
  redis.call('HDEL', KEYS[2], 'al')
end
local oldp = r[1]
local p = oldp
if ARGV[6] ~= '' then
  p = ARGV[6]
  a = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[2], 'p', p, 'a', n(a))
  if oldp and oldp ~= p then
    redis.call('HSET', KEYS[2], 'd', ARGV[8])
    redis.call('HINCRBY', KEYS[2], 'v', 1)
  end
end
redis.call('HSET', KEYS[2], 'i', n(now), 's', n(now))
redis.call('PEXPIRE', KEYS[2], n(math.min(now + idle, a) - now))
local all, anon = ARGV[1] .. ':all', ARGV[1] .. ':anon'
if redis.call('ZREM', all, ARGV[2]) == 1 then
  redis.call('ZADD', all, n(math.min(now + idle, a)), ARGV[3])
end
if redis.call('ZREM', anon, ARGV[2]) == 1 and not p then
  redis.call('ZADD', anon, n(now), ARGV[3])
end
local bound = now
if oldp then
  local old = index(ARGV[1] .. ':u:' .. oldp, ARGV[1])
  if oldp == p then bound = tonumber(redis.call('ZSCORE', old, ARGV[2]) or now) end
  redis.call('ZREM', old, ARGV[2])
end
local out = {1, r[5] or '', p or ''}
local inv = {ARGV[2]}
if p then
  local set = index(ARGV[1] .. ':u:' .. p, ARGV[1])
  for _, m in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    if redis.call('EXISTS', ARGV[1] .. ':s:' .. m) == 0 then redis.call('ZREM', set, m) end
  end
  if oldp ~= p then
    -- A new binding is the latest: after every member, even one bound in
    -- the same millisecond (scores order the limit's victims).
    local top = redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')
    if top[2] and tonumber(top[2]) >= bound then bound = tonumber(top[2]) + 1 end
  end
  redis.call('ZADD', set, n(bound), ARGV[3])
  local limit = tonumber(ARGV[10])
  local excess = redis.call('ZCARD', set) - limit
  if oldp ~= p and limit > 0 and excess > 0 then
    for _, m in ipairs(redis.call('ZRANGE', set, 0, -1)) do
      if excess <= 0 then break end
      if m ~= ARGV[3] then
        local k = ARGV[1] .. ':s:' .. m
        local v = redis.call('HMGET', k, 'h', 'al')
        if v[2] then redis.call('DEL', ARGV[1] .. ':a:' .. v[2]) end
        redis.call('DEL', k)
        redis.call('ZREM', set, m)
        redis.call('ZREM', all, m)
        table.insert(out, m)
        table.insert(out, v[1] or '')
        table.insert(inv, m)
        excess = excess - 1
      end
    end
  end
  if redis.call('PTTL', set) < a - now then redis.call('PEXPIRE', set, n(a - now)) end
end
redis.call('PUBLISH', ARGV[7], table.concat(inv, ' '))
return out"
    ))
});

/// KEYS: session. ARGV: prefix, hex, channel.
/// Deletes the session (found through its alias if `hex` is one), its
/// alias and its index entry. Returns `{1, hex of the session's key,
/// handle, principal JSON or ''}` if it existed, else `{0, ''}`.
pub(crate) static DESTROY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        index_fn!(),
        "local key, hex = KEYS[1], ARGV[2]
if redis.call('EXISTS', key) == 0 then
  local t = redis.call('GET', ARGV[1] .. ':a:' .. hex)
  if not t or redis.call('HGET', ARGV[1] .. ':s:' .. t, 'al') ~= hex then return {0, ''} end
  key, hex = ARGV[1] .. ':s:' .. t, t
end
local r = redis.call('HMGET', key, 'p', 'al', 'h')
local existed = redis.call('DEL', key)
if r[1] then redis.call('ZREM', index(ARGV[1] .. ':u:' .. r[1], ARGV[1]), hex) end
if r[2] then redis.call('DEL', ARGV[1] .. ':a:' .. r[2]) end
redis.call('ZREM', ARGV[1] .. ':all', hex)
redis.call('ZREM', ARGV[1] .. ':anon', hex)
if existed == 0 then return {0, ''} end
redis.call('PUBLISH', ARGV[3], hex)
return {1, hex, r[3] or '', r[1] or ''}"
    ))
});

/// KEYS: principal index. ARGV: prefix, channel, handle (or '' for all).
/// Deletes the principal's sessions (or the one with that handle) and their
/// aliases, prunes expired members, invalidates. Returns
/// `{hex, handle, hex, handle, ...}` of the sessions ended.
pub(crate) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        index_fn!(),
        "local gone = {}
local out = {}
index(KEYS[1], ARGV[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local k = ARGV[1] .. ':s:' .. m
  local v = redis.call('HMGET', k, 'h', 'al')
  if ARGV[3] == '' or v[1] == ARGV[3] then
    if v[2] then redis.call('DEL', ARGV[1] .. ':a:' .. v[2]) end
    redis.call('ZREM', ARGV[1] .. ':all', m)
    if redis.call('DEL', k) == 1 then
      table.insert(gone, m)
      table.insert(out, m)
      table.insert(out, v[1])
    end
    redis.call('ZREM', KEYS[1], m)
  elseif not v[1] then
    redis.call('ZREM', KEYS[1], m)
  end
end
if #gone > 0 then redis.call('PUBLISH', ARGV[2], table.concat(gone, ' ')) end
return out"
    ))
});

/// KEYS: principal index. ARGV: prefix.
/// Lists the principal's live sessions, pruning expired members.
/// Returns `{now, {{h, c, i, s, a}, ...}}` as strings.
pub(crate) static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        index_fn!(),
        "local out = {}
index(KEYS[1], ARGV[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local r = redis.call('HMGET', ARGV[1] .. ':s:' .. m, 'h', 'c', 'i', 's', 'a')
  if r[1] and r[5] then
    table.insert(out, {r[1], r[2], r[3], r[4], r[5]})
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return {n(now), out}"
    ))
});

/// KEYS: session. ARGV: user agent, address (each '' when unknown), idle ms.
/// Records the session's device (fields `ua`, `ip`). Returns 1, or 0 when
/// the session is gone (nothing written: a recording never revives a key).
pub(crate) static SET_DEVICE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        "local r = redis.call('HMGET', KEYS[1], 'a', 's')
if not r[1] or not r[2] then return 0 end
if now >= math.min(tonumber(r[2]) + tonumber(ARGV[3]), tonumber(r[1])) then return 0 end
redis.call('HSET', KEYS[1], 'ua', ARGV[1], 'ip', ARGV[2])
return 1"
    ))
});

/// KEYS: principal index. ARGV: prefix.
/// The recorded devices of the principal's sessions (read only, but it
/// converts an index left as a plain set, as every index reader does).
/// Returns `{{h, ua, ip}, ...}` for the sessions that have one.
pub(crate) static DEVICES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        index_fn!(),
        "local out = {}
index(KEYS[1], ARGV[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local r = redis.call('HMGET', ARGV[1] .. ':s:' .. m, 'h', 'ua', 'ip')
  if r[1] and (r[2] or r[3]) then table.insert(out, {r[1], r[2] or '', r[3] or ''}) end
end
return out"
    ))
});

/// KEYS: session. ARGV: prefix, channel, its hex, idle ms.
/// "Sign out of all other devices": ends every session in the index of the
/// principal the session is logged in as, except the session itself (found
/// through its grace alias too), as `REVOKE` ends them (aliases, the session
/// space, the index, one invalidation). Returns nil when the session is
/// gone, else `{principal JSON or '', hex, handle, ...}`: the principal,
/// then the sessions ended (none for an anonymous session).
pub(crate) static REVOKE_OTHERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        index_fn!(),
        "local key = KEYS[1]
local me = ARGV[3]
if redis.call('EXISTS', key) == 0 then
  local t = redis.call('GET', ARGV[1] .. ':a:' .. ARGV[3])
  if not t then return false end
  key = ARGV[1] .. ':s:' .. t
  if redis.call('HGET', key, 'al') ~= ARGV[3] then return false end
  me = t
end
local r = redis.call('HMGET', key, 'p', 'a', 's')
if not r[2] or not r[3] then return false end
if now >= math.min(tonumber(r[3]) + tonumber(ARGV[4]), tonumber(r[2])) then return false end
if not r[1] then return {''} end
local set = index(ARGV[1] .. ':u:' .. r[1], ARGV[1])
local gone = {}
local out = {r[1]}
for _, m in ipairs(redis.call('ZRANGE', set, 0, -1)) do
  if m ~= me then
    local k = ARGV[1] .. ':s:' .. m
    local v = redis.call('HMGET', k, 'h', 'al')
    if v[2] then redis.call('DEL', ARGV[1] .. ':a:' .. v[2]) end
    redis.call('ZREM', ARGV[1] .. ':all', m)
    if redis.call('DEL', k) == 1 then
      table.insert(gone, m)
      table.insert(out, m)
      table.insert(out, v[1])
    end
    redis.call('ZREM', set, m)
  end
end
if #gone > 0 then redis.call('PUBLISH', ARGV[2], table.concat(gone, ' ')) end
return out"
    ))
});

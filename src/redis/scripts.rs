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
//!   TTL is always `min(s + idle, a) - now`. With a recorded device (see
//!   [`SET_DEVICE`]), also `ua` its user agent and `ip` its address (text,
//!   empty when unknown): personal data, gone with the key.
//! - `{prefix}:u:{principal JSON}`: a set of the hex digests of a
//!   principal's sessions. Members whose session expired are pruned by the
//!   scripts that read the set; the set's own TTL covers its longest-lived
//!   member, so an abandoned set disappears.
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

/// KEYS: session. ARGV: handle, data, idle ms, absolute ms.
/// Returns `{1, now}`, or `{0, 0}` if the key exists (a digest collision).
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        "if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local idle = tonumber(ARGV[3])
local abs = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'v', 1, 'd', ARGV[2], 'h', ARGV[1], 'c', n(now), 'i', n(now), 's', n(now), 'a', n(now + abs))
redis.call('PEXPIRE', KEYS[1], n(math.min(idle, abs)))
return {1, now}"
    ))
});

/// KEYS: session. ARGV: idle ms.
/// Returns nil, or `{v, d, p or '', h, c, i, s, a, now}` as strings. A read
/// is a use: when less than half the idle timeout is left, it also records
/// it (`s = now`, TTL renewed), so reads turn into writes only that often.
pub(crate) static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        "local r = redis.call('HMGET', KEYS[1], 'v', 'd', 'p', 'h', 'c', 'i', 's', 'a')
if not r[1] or not r[8] then return false end
local idle = tonumber(ARGV[1])
local s = tonumber(r[7])
local a = tonumber(r[8])
if now >= math.min(s + idle, a) then return false end
if s + idle - now < idle / 2 then
  s = now
  redis.call('HSET', KEYS[1], 's', n(now))
  redis.call('PEXPIRE', KEYS[1], n(math.min(now + idle, a) - now))
end
return {r[1], r[2], r[3] or '', r[4], r[5], r[6], n(s), r[8], n(now)}"
    ))
});

/// KEYS: session. ARGV: idle ms.
/// Records a use: `s = now`, TTL `min(now + idle, a) - now`.
/// Returns `now`, or -1 when the session is gone.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        "local a = redis.call('HGET', KEYS[1], 'a')
if not a then return -1 end
local ttl = math.min(now + tonumber(ARGV[1]), tonumber(a)) - now
if ttl <= 0 then return -1 end
redis.call('HSET', KEYS[1], 's', n(now))
redis.call('PEXPIRE', KEYS[1], n(ttl))
return now"
    ))
});

/// KEYS: session. ARGV: expected version, new data, idle ms, channel, hex.
/// Optimistic write: applies only if the version is still the expected one.
/// Returns `{1, new version}`, `{0, current version, current data}` on a
/// conflict, or `{-1}` when the session is gone.
pub(crate) static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        "local r = redis.call('HMGET', KEYS[1], 'v', 'd', 'a', 's')
if not r[1] or not r[3] then return {-1} end
if r[1] ~= ARGV[1] then return {0, r[1], r[2]} end
local idle = tonumber(ARGV[3])
local ttl = math.min(now + idle, tonumber(r[3])) - now
if ttl <= 0 or now >= tonumber(r[4]) + idle then return {-1} end
local v = tonumber(r[1]) + 1
redis.call('HSET', KEYS[1], 'v', n(v), 'd', ARGV[2], 's', n(now))
redis.call('PEXPIRE', KEYS[1], n(ttl))
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {1, v}"
    ))
});

/// KEYS: old session, new session. ARGV: prefix, old hex, new hex, idle ms,
/// absolute ms, principal JSON to log in as (or '' to only rotate), channel,
/// the encoded fresh data for a change of principal.
/// Moves the session to the new key, updates the principal index, restarts
/// the absolute deadline on login, resets the data (and bumps its version)
/// when the principal changes, and invalidates the old key.
/// Returns 1, 0 when the old session is gone, -1 when the new key exists.
pub(crate) static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        "local r = redis.call('HMGET', KEYS[1], 'p', 'a', 's')
if not r[2] then return 0 end
local idle = tonumber(ARGV[4])
local a = tonumber(r[2])
if now >= math.min(tonumber(r[3]) + idle, a) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('RENAME', KEYS[1], KEYS[2])
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
if oldp then redis.call('SREM', ARGV[1] .. ':u:' .. oldp, ARGV[2]) end
if p then
  local set = ARGV[1] .. ':u:' .. p
  for _, m in ipairs(redis.call('SMEMBERS', set)) do
    if redis.call('EXISTS', ARGV[1] .. ':s:' .. m) == 0 then redis.call('SREM', set, m) end
  end
  redis.call('SADD', set, ARGV[3])
  if redis.call('PTTL', set) < a - now then redis.call('PEXPIRE', set, n(a - now)) end
end
redis.call('PUBLISH', ARGV[7], ARGV[2])
return 1"
    ))
});

/// KEYS: session. ARGV: prefix, hex, channel.
/// Deletes the session and its index entry. Returns 1 if it existed.
pub(crate) static DESTROY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local p = redis.call('HGET', KEYS[1], 'p')
local existed = redis.call('DEL', KEYS[1])
if p then redis.call('SREM', ARGV[1] .. ':u:' .. p, ARGV[2]) end
if existed == 1 then redis.call('PUBLISH', ARGV[3], ARGV[2]) end
return existed",
    )
});

/// KEYS: principal set. ARGV: prefix, channel, handle (or '' for all).
/// Deletes the principal's sessions (or the one with that handle), prunes
/// expired members, invalidates. Returns the hex digests of the sessions
/// ended.
pub(crate) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local gone = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. ':s:' .. m
  if ARGV[3] == '' or redis.call('HGET', k, 'h') == ARGV[3] then
    if redis.call('DEL', k) == 1 then table.insert(gone, m) end
    redis.call('SREM', KEYS[1], m)
  elseif redis.call('EXISTS', k) == 0 then
    redis.call('SREM', KEYS[1], m)
  end
end
if #gone > 0 then redis.call('PUBLISH', ARGV[2], table.concat(gone, ' ')) end
return gone",
    )
});

/// KEYS: principal set. ARGV: prefix.
/// Lists the principal's live sessions, pruning expired members.
/// Returns `{now, {{h, c, i, s, a}, ...}}` as strings.
pub(crate) static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        "local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local r = redis.call('HMGET', ARGV[1] .. ':s:' .. m, 'h', 'c', 'i', 's', 'a')
  if r[1] and r[5] then
    table.insert(out, {r[1], r[2], r[3], r[4], r[5]})
  else
    redis.call('SREM', KEYS[1], m)
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

/// KEYS: principal set. ARGV: prefix.
/// The recorded devices of the principal's sessions (read only).
/// Returns `{{h, ua, ip}, ...}` for the sessions that have one.
pub(crate) static DEVICES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local r = redis.call('HMGET', ARGV[1] .. ':s:' .. m, 'h', 'ua', 'ip')
  if r[1] and (r[2] or r[3]) then table.insert(out, {r[1], r[2] or '', r[3] or ''}) end
end
return out",
    )
});

/// KEYS: session. ARGV: prefix, channel, its hex, idle ms.
/// "Sign out of all other devices": deletes every session in the set of
/// the principal the session is logged in as, except the session itself,
/// and invalidates them. Returns nil when the session is gone, else the hex
/// digests of the sessions ended (none for an anonymous session).
pub(crate) static REVOKE_OTHERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        "local r = redis.call('HMGET', KEYS[1], 'p', 'a', 's')
if not r[2] or not r[3] then return false end
if now >= math.min(tonumber(r[3]) + tonumber(ARGV[4]), tonumber(r[2])) then return false end
if not r[1] then return {} end
local set = ARGV[1] .. ':u:' .. r[1]
local gone = {}
for _, m in ipairs(redis.call('SMEMBERS', set)) do
  if m ~= ARGV[3] then
    if redis.call('DEL', ARGV[1] .. ':s:' .. m) == 1 then table.insert(gone, m) end
    redis.call('SREM', set, m)
  end
end
if #gone > 0 then redis.call('PUBLISH', ARGV[2], table.concat(gone, ' ')) end
return gone"
    ))
});

//! The Lua scripts: every write is one script, so it is atomic in Redis.
//!
//! # Layout in Redis
//!
//! Every key carries a *hash tag* (`{TT}`, two hex digits: 256 tags), so
//! on Redis Cluster each script touches keys of one slot; a single
//! instance uses the same names (it ignores the tags). A session's tag is
//! the first byte of its keyed digest; a principal's tag is the first byte
//! of a keyed hash of its JSON. Only a cluster keeps a logged-in session
//! in its principal's tag (see the invariants below); a single instance
//! lets it land in any tag, and every logged-in session records its
//! principal's tag (`ut`), from which the scripts find its index.
//!
//! - `{prefix}:s:{TT}{hex}`: a session, a hash keyed by the hex of the
//!   token's keyed digest (never the token); `TT` is the hex's first two
//!   digits. Fields: `v` version (bumped by each data update), `d` data
//!   (JSON), `p` principal (JSON, absent while anonymous), `h` handle (16
//!   hex digits), `c` created, `i` token issued, `s` last seen, `a`
//!   absolute deadline — times in Unix ms on Redis's own clock (`TIME`), so
//!   servers with skewed clocks still agree. The key's TTL is always
//!   `min(s + idle, a) - now`. `ut`: the principal's tag (two hex digits,
//!   while `p` is set), so a script finds the index `{prefix}:u:{ut}{p}`
//!   from the session alone; a session logged in by an earlier version has
//!   none and sits in its principal's tag, so its own tag stands in (and
//!   its next rotation or login records `ut`). `al`: the hex of the
//!   session's one grace alias, while it has one. With a recorded device
//!   (see [`SET_DEVICE`]),
//!   also `ua` its user agent and `ip` its address (text, empty when
//!   unknown): personal data, gone with the key.
//! - `{prefix}:a:{TT}{old hex}`: a token replaced by a plain rotation,
//!   still accepted for the grace window (the key's TTL): the hex of the
//!   session's current key. Followed only while the session's `al` names it
//!   back; deleted by the next rotation, a login, a logout or a revocation.
//! - `{prefix}:u:{PT}{principal JSON}`: a sorted set of the hex digests of
//!   a principal's sessions, scored by the time each was bound to the
//!   principal (its login; a re-login as the same principal or a rotation
//!   keeps the score), so the per-user limit ends the earliest-bound ones.
//!   Members whose session expired are pruned by the scripts that read it;
//!   its own TTL covers its longest-lived member, so an abandoned index
//!   disappears. An index left as a plain set by an earlier version is
//!   converted in place by the first script that touches it (scored by the
//!   members' `i`, their last token issue).
//! - The capacity sets, one *scope* each: on a single instance one scope,
//!   `{prefix}:all` and `{prefix}:anon`; on a cluster one per tag,
//!   `{prefix}:all:{TT}` and `{prefix}:anon:{TT}`. `all` holds every
//!   session's hex digest, scored by its deadline (`min(s + idle, a)`, kept
//!   in step by every script that moves the TTL): its size is what
//!   `max_sessions` bounds; members whose deadline passed are dropped by
//!   `create` at capacity and by `COUNT`. `anon` holds the anonymous
//!   sessions, scored by their last recorded use (`s`): the eviction order.
//!   A login removes its session.
//! - `{prefix}:live`: the subscriber's flush marker (see `subscriber`; on a
//!   cluster one per master, `{prefix}:live:{TT}` with a tag it serves).
//! - `{prefix}:inv`: the pub/sub channel of invalidations. A message is the
//!   space-separated hex digests of sessions changed or ended.
//!
//! # Invariants that keep each script in one slot (cluster only)
//!
//! - **A rotation keeps the tag**: it draws tokens until the new digest's
//!   first byte equals the old one's (256 draws on average, 33 µs in all
//!   measured: `tag_draw/rotation` in `benches/redis.rs`, BENCHMARKS.md),
//!   so the old key, the new key and the
//!   grace alias share a slot and `ROTATE` stays one script.
//! - **A logged-in session sits in its principal's tag**: a login draws
//!   the new token so that its tag is the principal's. Every session of a
//!   principal then shares the slot of the principal's index: the per-user
//!   limit, `revoke_user`, `revoke`, `sessions_of`, a logout (which drops
//!   the index entry) are each one script on one slot; the index a script
//!   finds from the session's `ut` is in that slot too.
//! - Every script names its session, alias, index and capacity keys in
//!   `KEYS` (the first one routes it); the keys it reaches through data (an
//!   index's members, an eviction victim, an alias named by `al`, the index
//!   named by `ut` in a rotation or a logout) share that slot by the
//!   invariants above.
//!
//! **A single instance has no slots**, so it keeps neither invariant: a
//! rotation and a login draw exactly one token, whatever its tag (with
//! the draw, a rotation took 1.6–1.8x its time now and a first login
//! 2.1–2.3x a create, 1.5x now; BENCHMARKS.md). What the invariants gave
//! the scripts there comes from the data instead: a login passes the
//! principal's index in `KEYS` and its tag in `ARGV`, and records the tag
//! in `ut`; a rotation, a logout, `TAKE` and "sign out other devices" find
//! the index from `ut`. Key names did not change, so an upgrade keeps everyone
//! logged in. Sentinel is a single instance (one primary) here.
//!
//! **Upgrading a fleet from an earlier version**: the earlier version's
//! scripts find the index from the session's own tag. While old and new
//! servers share one instance, an old server that rotates, logs out or
//! signs out the other devices of a session a new server logged in (in
//! any tag) looks for its index under the session's tag: a logout leaves
//! a stale entry (pruned later, harmless), "sign out other devices" ends
//! none, and a rotation files the session under a wrong index, so "log
//! out everywhere", `revoke`, the per-user limit and `sessions_of` miss it
//! until a new server rotates or logs it in again, or it expires. Replace
//! every server before relying on those (or stop the old ones first); a
//! cluster is not affected.
//!
//! # What is atomic and what is not
//!
//! - Atomic, on both: create (with capacity eviction in its scope),
//!   fetch, touch, update, rotate, destroy, revoke, list; on a single
//!   instance also every login (one `ROTATE`, even across tags: a single
//!   instance has no slots).
//! - **A login on a cluster whose session must change tag** (an anonymous
//!   session, or one bound to another principal) runs two scripts in two
//!   slots: `TAKE` removes the live session from its slot (key, alias,
//!   index entry, capacity entry; invalidated) and returns its data,
//!   handle and creation time; `PLACE` then writes it under the new token
//!   in the principal's slot, with the index update and the per-user
//!   limit. Between the two the session exists nowhere: no reader can use
//!   the old token (fail closed). If `PLACE` fails (the node is down, the
//!   server dies), the session is gone: the user is logged out, never left
//!   with a usable pre-login token. When only `PLACE`'s reply is lost (a
//!   timeout on a node that still ran it), the session lives on under the
//!   new token, which no caller received: listed by `sessions_of` and
//!   counted by the per-user limit until its idle timeout, never usable
//!   (`tests/redis_cluster.rs` freezes the principal's master to show it). A login whose session already sits in
//!   the principal's tag (a re-login) is one `ROTATE`.
//! - **Capacity on a cluster is approximate**: each tag's scope holds at
//!   most `ceil(max_sessions / 256)` sessions, and evicts the least
//!   recently used anonymous session *of that tag*. A create whose tag is
//!   full of logged-in sessions draws another token (another tag), up to 32
//!   times before answering `Full`. Logins move sessions into their
//!   principal's tag without a capacity check (the session was counted
//!   where it was created), so a tag may exceed its share. `COUNT` sums the
//!   256 scopes (256 scripts, run concurrently).
//! - Removing old data: keys of the untagged layout of earlier versions
//!   (`{prefix}:s:{hex}`) are no longer read: upgrading logs everyone out
//!   once; their entries in `{prefix}:all`/`{prefix}:anon` are dropped when
//!   eviction meets them or their deadline passes.

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

/// Key names (see the module docs): `sk(prefix, hex)` the session,
/// `ak(prefix, hex)` the grace alias of the digest `hex`, `uk(prefix, ut,
/// hex, p)` the index of principal `p` bound to the session `hex`, whose
/// `ut` field (the principal's tag, two hex digits) is `ut`: a session
/// bound by an earlier version has none, and sits in its principal's tag,
/// so its own tag stands in.
macro_rules! keys_fn {
    () => {
        "local function tag(hex) return '{' .. string.sub(hex, 1, 2) .. '}' end
local function sk(prefix, hex) return prefix .. ':s:' .. tag(hex) .. hex end
local function ak(prefix, hex) return prefix .. ':a:' .. tag(hex) .. hex end
local function uk(prefix, ut, hex, p) return prefix .. ':u:{' .. (ut or string.sub(hex, 1, 2)) .. '}' .. p end
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
      local i = redis.call('HGET', sk(prefix, m), 'i')
      if i then redis.call('ZADD', k, i, m) end
    end
    if ttl > 0 and redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, ttl) end
  end
  return k
end
"
    };
}

/// The session space (`all`, `anon`: the capacity sets named in KEYS, see
/// the module docs): `used(all, anon, hex, s, deadline)` records a use of a
/// session already counted; `reclaim(all, anon)` drops the members whose
/// deadline has passed and returns how many. Needs `now` and `n` (the
/// prelude).
macro_rules! space_fn {
    () => {
        "local function used(all, anon, hex, s, deadline)
  redis.call('ZADD', all, 'XX', n(deadline), hex)
  redis.call('ZADD', anon, 'XX', n(s), hex)
end
local function reclaim(all, anon)
  local dead = redis.call('ZRANGEBYSCORE', all, '-inf', n(now))
  for _, m in ipairs(dead) do redis.call('ZREM', anon, m) end
  redis.call('ZREMRANGEBYSCORE', all, '-inf', n(now))
  return #dead
end
"
    };
}

/// `bind(prefix, set, all, hex, bound, renew, limit, a, out, inv)`: puts
/// session `hex` in the principal index `set` (pruned of members whose
/// session is gone) at score `bound` (`renew`: a new binding, placed after
/// every member), ends the earliest-bound sessions beyond `limit` (0: none)
/// when it is a new binding, never `hex`, appending `hex, handle` of each
/// to `out` and its hex to `inv`; keeps the index alive until `a`.
macro_rules! bind_fn {
    () => {
        "local function bind(prefix, set, all, hex, bound, renew, limit, a, out, inv)
  for _, m in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    if redis.call('EXISTS', sk(prefix, m)) == 0 then redis.call('ZREM', set, m) end
  end
  if renew then
    -- A new binding is the latest: after every member, even one bound in
    -- the same millisecond (scores order the limit's victims).
    local top = redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')
    if top[2] and tonumber(top[2]) >= bound then bound = tonumber(top[2]) + 1 end
  end
  redis.call('ZADD', set, n(bound), hex)
  local excess = redis.call('ZCARD', set) - limit
  if renew and limit > 0 and excess > 0 then
    for _, m in ipairs(redis.call('ZRANGE', set, 0, -1)) do
      if excess <= 0 then break end
      if m ~= hex then
        local k = sk(prefix, m)
        local v = redis.call('HMGET', k, 'h', 'al')
        if v[2] then redis.call('DEL', ak(prefix, v[2])) end
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
"
    };
}

/// KEYS: session, all, anon. ARGV: handle, data, idle ms, absolute ms,
/// prefix, max sessions (of this capacity scope), channel, hex.
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
        keys_fn!(),
        space_fn!(),
        "if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local idle = tonumber(ARGV[3])
local abs = tonumber(ARGV[4])
local prefix = ARGV[5]
local max = tonumber(ARGV[6])
local all, anon = KEYS[2], KEYS[3]
local out = {1, now}
if redis.call('ZCARD', all) >= max then
  reclaim(all, anon)
  local gone = {}
  while redis.call('ZCARD', all) >= max do
    local first = redis.call('ZRANGE', anon, 0, 0)
    if #first == 0 then
      if #gone > 0 then redis.call('PUBLISH', ARGV[7], table.concat(gone, ' ')) end
      return {-1}
    end
    local m = first[1]
    local k = sk(prefix, m)
    local r = redis.call('HMGET', k, 'h', 'al', 'p')
    redis.call('ZREM', anon, m)
    if not r[1] then
      redis.call('ZREM', all, m)
    elseif not r[3] then
      if r[2] then redis.call('DEL', ak(prefix, r[2])) end
      redis.call('DEL', k)
      redis.call('ZREM', all, m)
      table.insert(gone, m)
      table.insert(out, m)
      table.insert(out, r[1])
    end
  end
  if #gone > 0 then redis.call('PUBLISH', ARGV[7], table.concat(gone, ' ')) end
end
local hex = ARGV[8]
redis.call('HSET', KEYS[1], 'v', 1, 'd', ARGV[2], 'h', ARGV[1], 'c', n(now), 'i', n(now), 's', n(now), 'a', n(now + abs))
redis.call('PEXPIRE', KEYS[1], n(math.min(idle, abs)))
redis.call('ZADD', all, n(now + math.min(idle, abs)), hex)
redis.call('ZADD', anon, n(now), hex)
return out"
    ))
});

/// KEYS: all, anon (one capacity scope). ARGV: none.
/// Drops the members of the scope whose deadline passed; returns
/// `{live, anonymous}`.
pub(crate) static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        space_fn!(),
        "reclaim(KEYS[1], KEYS[2])
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}"
    ))
});

/// KEYS: session, its alias key, all, anon. ARGV: idle ms, prefix, hex of
/// the session key, whether the read is a use (`1`) or not (`0`).
/// Returns nil, or `{v, d, p or '', h, c, i, s, a, now, target}` as
/// strings. `target` is `''` for the session's own token; for a token in a
/// rotation's grace window (an alias: `{prefix}:a:{TT}{hex}` names the
/// session it now leads to, in the same tag, and that session names it
/// back in its `al` field), the hex of the session's current key. A read
/// that is a use records it when less than half the idle timeout is left
/// (`s = now`, TTL renewed), so reads turn into writes only that often.
pub(crate) static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        keys_fn!(),
        space_fn!(),
        "local key = KEYS[1]
local target = ''
if redis.call('EXISTS', key) == 0 then
  local t = redis.call('GET', KEYS[2])
  if not t then return false end
  key = sk(ARGV[2], t)
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
  if target == '' then used(KEYS[3], KEYS[4], ARGV[3], now, math.min(now + idle, a))
  else used(KEYS[3], KEYS[4], target, now, math.min(now + idle, a)) end
end
return {r[1], r[2], r[3] or '', r[4], r[5], r[6], n(s), r[8], n(now), target}"
    ))
});

/// KEYS: session, all, anon. ARGV: idle ms, hex.
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
used(KEYS[2], KEYS[3], ARGV[2], now, now + ttl)
return now"
    ))
});

/// KEYS: session, all, anon. ARGV: expected version, new data, idle ms,
/// channel, hex.
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
used(KEYS[2], KEYS[3], ARGV[5], now, now + ttl)
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {1, v}"
    ))
});

/// KEYS: old session, new session, the old key's alias, all, anon, and for
/// a login the new principal's index. ARGV: prefix, old hex, new hex, idle
/// ms, absolute ms, principal JSON to log in as (or '' to only rotate),
/// channel, the encoded fresh data for a change of principal, grace ms,
/// per-user limit (0: none), the principal's tag for a login (two hex
/// digits, or '').
/// Moves the session to the new key, updates the principal index, restarts
/// the absolute deadline on login, resets the data (and bumps its version)
/// when the principal changes, and invalidates the old key. The session's
/// previous alias ends; a plain rotation with a grace window leaves the old
/// key as its one alias (`{prefix}:a:{TT}{old hex}` → new hex, expiring
/// with the window, named in the session's `al` field); a login leaves
/// none. A login that binds the session to a principal (anonymous before,
/// or another principal's) ends that principal's earliest-bound sessions
/// beyond the limit, never this one, and invalidates them too.
/// The session's index is found by its `ut` field (a plain rotation) or
/// given in KEYS (a login, which records the principal's tag in `ut`): on
/// a single instance the new key's tag is whatever the one token drawn
/// gives. In a cluster both session keys share a tag (a rotation draws its
/// new token so; a login runs this script only when the session already
/// sits in the principal's tag, else `TAKE` then `PLACE`).
/// Returns `{1, handle, principal JSON or '', victim hex, victim handle,
/// ...}` (the principal the session is bound to now), `{0}` when the old
/// session is gone (an alias cannot rotate), `{-1}` when the new key exists.
pub(crate) static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        keys_fn!(),
        index_fn!(),
        bind_fn!(),
        "local r = redis.call('HMGET', KEYS[1], 'p', 'a', 's', 'al', 'h', 'ut')
if not r[2] then return {0} end
local idle = tonumber(ARGV[4])
local a = tonumber(r[2])
if now >= math.min(tonumber(r[3]) + idle, a) then return {0} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1} end
redis.call('RENAME', KEYS[1], KEYS[2])
if r[4] then redis.call('DEL', ak(ARGV[1], r[4])) end
local grace = tonumber(ARGV[9])
if ARGV[6] == '' and grace > 0 then
  redis.call('SET', KEYS[3], ARGV[3], 'PX', n(grace))
  redis.call('HSET', KEYS[2], 'al', ARGV[2])
elseif r[4] then
  redis.call('HDEL', KEYS[2], 'al')
end
local oldp = r[1]
local p = oldp
-- The principal's tag: kept by a rotation (a session bound by an earlier
-- version sits in it), given by a login; recorded in `ut` either way.
local ut = r[6] or string.sub(ARGV[2], 1, 2)
if ARGV[6] ~= '' then
  p = ARGV[6]
  ut = ARGV[11]
  a = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[2], 'p', p, 'a', n(a))
  if oldp and oldp ~= p then
    redis.call('HSET', KEYS[2], 'd', ARGV[8])
    redis.call('HINCRBY', KEYS[2], 'v', 1)
  end
end
if p then redis.call('HSET', KEYS[2], 'i', n(now), 's', n(now), 'ut', ut)
else redis.call('HSET', KEYS[2], 'i', n(now), 's', n(now)) end
redis.call('PEXPIRE', KEYS[2], n(math.min(now + idle, a) - now))
local all, anon = KEYS[4], KEYS[5]
if redis.call('ZREM', all, ARGV[2]) == 1 then
  redis.call('ZADD', all, n(math.min(now + idle, a)), ARGV[3])
end
if redis.call('ZREM', anon, ARGV[2]) == 1 and not p then
  redis.call('ZADD', anon, n(now), ARGV[3])
end
local bound = now
if oldp then
  local old = index(uk(ARGV[1], r[6], ARGV[2], oldp), ARGV[1])
  if oldp == p then bound = tonumber(redis.call('ZSCORE', old, ARGV[2]) or now) end
  redis.call('ZREM', old, ARGV[2])
end
local out = {1, r[5] or '', p or ''}
local inv = {ARGV[2]}
if p then
  local set = index(ARGV[6] ~= '' and KEYS[6] or uk(ARGV[1], ut, ARGV[3], p), ARGV[1])
  bind(ARGV[1], set, all, ARGV[3], bound, oldp ~= p, tonumber(ARGV[10]), a, out, inv)
end
redis.call('PUBLISH', ARGV[7], table.concat(inv, ' '))
return out"
    ))
});

/// Step one of a login that moves a session to another tag (cluster only,
/// see the module docs). KEYS: session, all, anon. ARGV: prefix, hex,
/// channel, idle ms.
/// Takes the live session out: deletes it, its alias and its index entry,
/// drops it from the session space, invalidates it. Returns `{1, handle,
/// principal JSON or '', version, data, created}`, or `{0}` when no live
/// session has this key (an alias cannot log in).
pub(crate) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        keys_fn!(),
        index_fn!(),
        "local r = redis.call('HMGET', KEYS[1], 'p', 'a', 's', 'al', 'h', 'v', 'd', 'c', 'ut')
if not r[2] or not r[5] then return {0} end
if now >= math.min(tonumber(r[3]) + tonumber(ARGV[4]), tonumber(r[2])) then return {0} end
redis.call('DEL', KEYS[1])
if r[4] then redis.call('DEL', ak(ARGV[1], r[4])) end
if r[1] then redis.call('ZREM', index(uk(ARGV[1], r[9], ARGV[2], r[1]), ARGV[1]), ARGV[2]) end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return {1, r[5], r[1] or '', r[6], r[7], r[8]}"
    ))
});

/// Step two of a login that moves a session to another tag (cluster only).
/// KEYS: new session, all, anon, principal index. ARGV: prefix, new hex,
/// idle ms, absolute ms, principal JSON, channel, data, handle, created,
/// version, per-user limit (0: none), whether this is a new binding (`1`),
/// the principal's tag (two hex digits, recorded in `ut`).
/// Writes the session under its new key, bound to the principal, counted in
/// the new tag's session space (no capacity check: the session was
/// counted), and updates the index as `ROTATE` does. Returns `{1, victim
/// hex, victim handle, ...}`, or `{-1}` when the new key exists.
pub(crate) static PLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        keys_fn!(),
        index_fn!(),
        bind_fn!(),
        "if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
local idle = tonumber(ARGV[3])
local a = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'v', ARGV[10], 'd', ARGV[7], 'p', ARGV[5], 'h', ARGV[8], 'c', ARGV[9], 'i', n(now), 's', n(now), 'a', n(a), 'ut', ARGV[13])
redis.call('PEXPIRE', KEYS[1], n(math.min(idle, a - now)))
redis.call('ZADD', KEYS[2], n(math.min(now + idle, a)), ARGV[2])
local out = {1}
local inv = {ARGV[2]}
bind(ARGV[1], index(KEYS[4], ARGV[1]), KEYS[2], ARGV[2], now, ARGV[12] == '1', tonumber(ARGV[11]), a, out, inv)
redis.call('PUBLISH', ARGV[6], table.concat(inv, ' '))
return out"
    ))
});

/// KEYS: session, its alias key, all, anon. ARGV: prefix, hex, channel.
/// Deletes the session (found through its alias if `hex` is one), its
/// alias and its index entry. Returns `{1, hex of the session's key,
/// handle, principal JSON or ''}` if it existed, else `{0, ''}`.
pub(crate) static DESTROY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        keys_fn!(),
        index_fn!(),
        "local key, hex = KEYS[1], ARGV[2]
if redis.call('EXISTS', key) == 0 then
  local t = redis.call('GET', KEYS[2])
  if not t or redis.call('HGET', sk(ARGV[1], t), 'al') ~= hex then return {0, ''} end
  key, hex = sk(ARGV[1], t), t
end
local r = redis.call('HMGET', key, 'p', 'al', 'h', 'ut')
local existed = redis.call('DEL', key)
if r[1] then redis.call('ZREM', index(uk(ARGV[1], r[4], hex, r[1]), ARGV[1]), hex) end
if r[2] then redis.call('DEL', ak(ARGV[1], r[2])) end
redis.call('ZREM', KEYS[3], hex)
redis.call('ZREM', KEYS[4], hex)
if existed == 0 then return {0, ''} end
redis.call('PUBLISH', ARGV[3], hex)
return {1, hex, r[3] or '', r[1] or ''}"
    ))
});

/// KEYS: principal index, all. ARGV: prefix, channel, handle (or '' for
/// all).
/// Deletes the principal's sessions (or the one with that handle) and their
/// aliases, prunes expired members, invalidates. Returns
/// `{hex, handle, hex, handle, ...}` of the sessions ended.
pub(crate) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        keys_fn!(),
        index_fn!(),
        "local gone = {}
local out = {}
index(KEYS[1], ARGV[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local k = sk(ARGV[1], m)
  local v = redis.call('HMGET', k, 'h', 'al')
  if ARGV[3] == '' or v[1] == ARGV[3] then
    if v[2] then redis.call('DEL', ak(ARGV[1], v[2])) end
    redis.call('ZREM', KEYS[2], m)
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
        keys_fn!(),
        index_fn!(),
        "local out = {}
index(KEYS[1], ARGV[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local r = redis.call('HMGET', sk(ARGV[1], m), 'h', 'c', 'i', 's', 'a')
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
        keys_fn!(),
        index_fn!(),
        "local out = {}
index(KEYS[1], ARGV[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local r = redis.call('HMGET', sk(ARGV[1], m), 'h', 'ua', 'ip')
  if r[1] and (r[2] or r[3]) then table.insert(out, {r[1], r[2] or '', r[3] or ''}) end
end
return out"
    ))
});

/// KEYS: session, its alias key, all. ARGV: prefix, channel, its hex, idle
/// ms.
/// "Sign out of all other devices": ends every session in the index of the
/// principal the session is logged in as, except the session itself (found
/// through its grace alias too), as `REVOKE` ends them (aliases, the
/// session space, the index, one invalidation). The index is found by the
/// session's `ut` field; on a cluster a logged-in session sits in its
/// principal's tag, so the index is in this slot. Returns nil when the
/// session is gone, else `{principal JSON or '', hex, handle, ...}`: the
/// principal, then the sessions ended (none for an anonymous session).
pub(crate) static REVOKE_OTHERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        keys_fn!(),
        index_fn!(),
        "local key, me = KEYS[1], ARGV[3]
if redis.call('EXISTS', key) == 0 then
  local t = redis.call('GET', KEYS[2])
  if not t or redis.call('HGET', sk(ARGV[1], t), 'al') ~= me then return false end
  key, me = sk(ARGV[1], t), t
end
local r = redis.call('HMGET', key, 'p', 'a', 's', 'ut')
if not r[2] or not r[3] then return false end
if now >= math.min(tonumber(r[3]) + tonumber(ARGV[4]), tonumber(r[2])) then return false end
if not r[1] then return {''} end
local set = index(uk(ARGV[1], r[4], me, r[1]), ARGV[1])
local gone = {}
local out = {r[1]}
for _, m in ipairs(redis.call('ZRANGE', set, 0, -1)) do
  if m ~= me then
    local k = sk(ARGV[1], m)
    local v = redis.call('HMGET', k, 'h', 'al')
    if v[2] then redis.call('DEL', ak(ARGV[1], v[2])) end
    redis.call('ZREM', KEYS[3], m)
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

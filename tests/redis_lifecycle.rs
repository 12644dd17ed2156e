//! Issue 11 on the Redis backend: a new principal starts from fresh data
//! there too (the engine's rule, tests/lifecycle.rs).

mod redis_support;

use std::time::Duration;

use redis_support::{RedisServer, eventually_async};
use serde::{Deserialize, Serialize};
use sesame::SecretKey;
use sesame::redis::RedisSessions;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<u32>,
}

async fn store(server: &RedisServer, key: &SecretKey) -> RedisSessions<Cart, String> {
    let s = RedisSessions::builder(&server.url())
        .secret_key(key.clone())
        .build()
        .expect("valid options");
    assert!(s.wait_ready(Duration::from_secs(5)).await, "subscribed");
    s
}

/// Broke: bob's login on a session alice left logged in kept alice's cart,
/// on the server that ran it and on every other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_as_another_principal_starts_from_fresh_data_on_every_server() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let (a, b) = (store(&server, &key).await, store(&server, &key).await);
    let (anon, _) = a.create(Cart { items: vec![1] }).await.unwrap();
    let alice = a.login(&anon, "alice".to_string()).await.unwrap();
    assert_eq!(
        b.get(&alice).await.unwrap(),
        Some(Cart { items: vec![1] }),
        "anonymous data kept"
    );
    a.update(&alice, |c| c.items.push(2)).await.unwrap();
    let again = a.login(&alice, "alice".to_string()).await.unwrap();
    assert_eq!(
        b.get(&again).await.unwrap().unwrap().items,
        vec![1, 2],
        "same principal keeps data"
    );
    let bob = b.login(&again, "bob".to_string()).await.unwrap();
    assert_eq!(
        a.get(&bob).await.unwrap(),
        Some(Cart::default()),
        "bob sees alice's cart"
    );
    assert_eq!(b.get(&bob).await.unwrap(), Some(Cart::default()));
    assert!(a.validate(&again).await.unwrap().is_none());
    // Updates after the reset start from the fresh data.
    b.update(&bob, |c| c.items.push(9)).await.unwrap();
    assert_eq!(b.get(&bob).await.unwrap(), Some(Cart { items: vec![9] }));
    // Another server's copy follows within the invalidation bound.
    let seen = eventually_async(Duration::from_secs(1), async || {
        a.get(&bob).await.unwrap() == Some(Cart { items: vec![9] })
    })
    .await;
    assert!(seen.is_some(), "server A never saw bob's update");
}

/// The principal index became a sorted set (scored by login time, for the
/// per-user limit); an index an earlier version left as a plain set is
/// converted in place by the first script that touches it: listing,
/// logging in and revoking all still find its sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_index_left_as_a_plain_set_still_works() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let s = store(&server, &key).await;
    let alice = "alice".to_string();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (t, _) = s.create(Cart::default()).await.unwrap();
        tokens.push(s.login(&t, alice.clone()).await.unwrap());
    }
    // Rewrite the index as the old layout did: a plain set of hex digests.
    let mut con = server.connection();
    // The index sits under the principal's hash tag: `sesame:u:{TT}"alice"`.
    let indexes: Vec<String> = redis::cmd("KEYS")
        .arg("sesame:u:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(indexes.len(), 1);
    assert!(indexes[0].ends_with("}\"alice\""), "{indexes:?}");
    let index = indexes[0].as_str();
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(index)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(members.len(), 2);
    let _: () = redis::cmd("DEL").arg(index).query(&mut con).unwrap();
    let _: () = redis::cmd("SADD")
        .arg(index)
        .arg(&members)
        .query(&mut con)
        .unwrap();
    assert_eq!(s.sessions_of(&alice).await.unwrap().len(), 2);
    let kind: String = redis::cmd("TYPE").arg(index).query(&mut con).unwrap();
    assert_eq!(kind, "zset");
    let (t, _) = s.create(Cart::default()).await.unwrap();
    tokens.push(s.login(&t, alice.clone()).await.unwrap());
    assert_eq!(s.revoke_user(&alice).await.unwrap(), 3);
    for t in &tokens {
        assert_eq!(s.validate(t).await.unwrap(), None);
    }
}

/// The policies are Redis's, not one server's: a login on server B ends,
/// by the per-user limit, a session server A holds a copy of; a create on
/// B evicts, for capacity, an anonymous session A holds a copy of; a token
/// in its grace window after a rotation on A works on B until the window
/// ends. A reports the first two as refused within the invalidation bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_hold_across_servers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let build = || {
        RedisSessions::<Cart, String>::builder(&server.url())
            .secret_key(key.clone())
            .max_sessions(3)
            .max_sessions_per_user(1)
            .rotation_grace(Duration::from_millis(500))
            .build()
            .expect("valid options")
    };
    let (a, b) = (build(), build());
    assert!(a.wait_ready(Duration::from_secs(5)).await);
    assert!(b.wait_ready(Duration::from_secs(5)).await);
    let alice = "alice".to_string();
    let (t, _) = a.create(Cart::default()).await.unwrap();
    let on_a = a.login(&t, alice.clone()).await.unwrap();
    assert!(a.validate(&on_a).await.unwrap().is_some(), "cached on A");
    let (t, _) = b.create(Cart::default()).await.unwrap();
    let on_b = b.login(&t, alice.clone()).await.unwrap();
    let gone = eventually_async(Duration::from_secs(1), async || {
        a.validate(&on_a).await.unwrap().is_none()
    })
    .await;
    assert!(gone.is_some(), "A still serves the session B's login ended");
    assert!(a.validate(&on_b).await.unwrap().is_some());

    // Capacity 3: on_b, anon (cached on A), then two more on B evict anon.
    let (anon, _) = a.create(Cart::default()).await.unwrap();
    assert!(a.validate(&anon).await.unwrap().is_some(), "cached on A");
    tokio::time::sleep(Duration::from_millis(3)).await;
    let (fresh, _) = b.create(Cart::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    b.create(Cart::default()).await.unwrap();
    let gone = eventually_async(Duration::from_secs(1), async || {
        a.validate(&anon).await.unwrap().is_none()
    })
    .await;
    assert!(gone.is_some(), "A still serves the session B evicted");
    assert!(a.validate(&fresh).await.unwrap().is_some());

    // Grace window: rotated on A, the old token works on B, then not.
    assert!(b.validate(&fresh).await.unwrap().is_some(), "cached on B");
    let new = a.rotate(&fresh).await.unwrap();
    assert!(b.validate(&fresh).await.unwrap().is_some(), "no grace on B");
    // B learns of the rotation within the invalidation bound (until then
    // its copy still says current).
    let learnt = eventually_async(Duration::from_millis(300), async || {
        !b.is_current(&fresh).await.unwrap()
    })
    .await;
    assert!(learnt.is_some(), "B still calls the rotated token current");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        b.validate(&fresh).await.unwrap().is_none(),
        "alias outlived its window on B"
    );
    assert!(b.validate(&new).await.unwrap().is_some());
}

/// The session keys under `prefix`, and the tag (two hex digits) each
/// carries: `{prefix}:s:{TT}{hex}`.
fn session_keys(con: &mut redis::Connection, prefix: &str) -> Vec<(String, String)> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:s:*"))
        .query(con)
        .unwrap();
    let at = prefix.len() + ":s:{".len();
    keys.into_iter()
        .map(|k| {
            let t = k[at..at + 2].to_owned();
            (k, t)
        })
        .collect()
}

/// The one index under `prefix`, its tag and its members.
fn the_index(con: &mut redis::Connection, prefix: &str) -> (String, String, Vec<String>) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:u:*"))
        .query(con)
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let at = prefix.len() + ":u:{".len();
    let t = keys[0][at..at + 2].to_owned();
    let mut members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&keys[0])
        .arg(0)
        .arg(-1)
        .query(con)
        .unwrap();
    members.sort();
    (keys[0].clone(), t, members)
}

/// The hex digests of the session keys, sorted.
fn hexes(keys: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = keys
        .iter()
        .map(|(k, _)| k[k.len() - 64..].to_owned())
        .collect();
    out.sort();
    out
}

/// Broke (the cluster merge): on a single instance too, every rotation
/// drew tokens until the new digest had the old one's hash tag and every
/// login until it had the principal's (~256 draws each, a first login
/// 1.9–2.7x a create), because the scripts found a session's index from
/// the session's own tag. A single instance has no slots: a rotation and a
/// login now draw one token, so the new keys land in any tag, and the
/// index is found from the principal's tag the session records (`ut`);
/// the per-user limit, listing, logout, "sign out other devices" and
/// "log out everywhere" still find every session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_draws_one_token_per_rotation_and_login() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let s = store(&server, &key).await;
    let mut con = server.connection();
    let alice = "alice".to_string();

    // 24 rotations of one anonymous session: all in one tag has
    // probability 256^-23 unless the rotation draws for the tag.
    let (mut t, _) = s.create(Cart::default()).await.unwrap();
    let mut tags = std::collections::BTreeSet::new();
    for _ in 0..24 {
        t = s.rotate(&t).await.unwrap();
        let keys = session_keys(&mut con, "sesame");
        assert_eq!(keys.len(), 1, "{keys:?}");
        tags.insert(keys[0].1.clone());
    }
    assert!(tags.len() > 1, "24 rotations kept the tag {tags:?}");
    assert!(s.logout(&t).await.unwrap());

    // 24 logins as alice: all in her tag, likewise, only if drawn so.
    let mut tokens = Vec::new();
    for _ in 0..24 {
        let (t, _) = s.create(Cart::default()).await.unwrap();
        tokens.push(s.login(&t, alice.clone()).await.unwrap());
    }
    let keys = session_keys(&mut con, "sesame");
    let (index, alice_tag, members) = the_index(&mut con, "sesame");
    assert!(
        keys.iter().any(|(_, t)| *t != alice_tag),
        "24 logins all landed in alice's tag {alice_tag}"
    );
    // Every session is in alice's index and records her tag.
    assert_eq!(members, hexes(&keys));
    for (k, _) in &keys {
        let ut: String = redis::cmd("HGET").arg(k).arg("ut").query(&mut con).unwrap();
        assert_eq!(ut, alice_tag, "{k}");
    }

    // A rotation of a logged-in session (new key, new tag) stays indexed.
    tokens[0] = s.rotate(&tokens[0]).await.unwrap();
    let keys = session_keys(&mut con, "sesame");
    assert_eq!(the_index(&mut con, "sesame").2, hexes(&keys));
    // A re-login as alice, too.
    tokens[1] = s.login(&tokens[1], alice.clone()).await.unwrap();
    let keys = session_keys(&mut con, "sesame");
    assert_eq!(the_index(&mut con, "sesame").2, hexes(&keys));
    assert_eq!(s.sessions_of(&alice).await.unwrap().len(), 24);
    // A logout drops its index entry.
    assert!(s.logout(&tokens[2]).await.unwrap());
    let keys = session_keys(&mut con, "sesame");
    assert_eq!(keys.len(), 23);
    assert_eq!(the_index(&mut con, "sesame").2, hexes(&keys));
    // "Sign out other devices" finds the other 22 through the index.
    assert_eq!(s.logout_others(&tokens[0]).await.unwrap(), 22);
    assert_eq!(session_keys(&mut con, "sesame").len(), 1);
    // A login as bob moves the last one out of alice's index.
    let bob = s.login(&tokens[0], "bob".to_string()).await.unwrap();
    let gone: i64 = redis::cmd("EXISTS").arg(&index).query(&mut con).unwrap();
    let left: i64 = if gone == 1 {
        redis::cmd("ZCARD").arg(&index).query(&mut con).unwrap()
    } else {
        0
    };
    assert_eq!(left, 0, "alice's index still lists bob's session");
    assert_eq!(s.revoke_user(&"bob".to_string()).await.unwrap(), 1);
    assert!(s.validate(&bob).await.unwrap().is_none());

    // The per-user limit holds across tags.
    let limited = RedisSessions::<Cart, String>::builder(&server.url())
        .secret_key(key.clone())
        .key_prefix("limited")
        .max_sessions_per_user(3)
        .build()
        .unwrap();
    assert!(limited.wait_ready(Duration::from_secs(5)).await);
    let mut carol = Vec::new();
    for _ in 0..6 {
        let (t, _) = limited.create(Cart::default()).await.unwrap();
        carol.push(limited.login(&t, "carol".to_string()).await.unwrap());
    }
    let keys = session_keys(&mut con, "limited");
    assert_eq!(keys.len(), 3);
    assert_eq!(the_index(&mut con, "limited").2, hexes(&keys));
    for (i, t) in carol.iter().enumerate() {
        assert_eq!(limited.validate(t).await.unwrap().is_some(), i >= 3);
    }
}

/// An upgrade keeps everyone logged in: a session an earlier version
/// logged in sits in its principal's tag without a `ut` field; rotating
/// it (now to any tag), logging it out and revoking still find its index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_logged_in_by_an_earlier_version_keeps_its_index() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let s = store(&server, &key).await;
    let mut con = server.connection();
    let alice = "alice".to_string();
    // Two sessions as the earlier version left them: logins that happen to
    // land in alice's tag (1 in 256), their `ut` removed.
    let (mut legacy, mut kept) = (Vec::new(), Vec::new());
    for _ in 0..20_000 {
        if legacy.len() == 2 {
            break;
        }
        let (t, _) = s.create(Cart::default()).await.unwrap();
        let t = s.login(&t, alice.clone()).await.unwrap();
        let (_, alice_tag, _) = the_index(&mut con, "sesame");
        let keys = session_keys(&mut con, "sesame");
        let mine = keys
            .into_iter()
            .find(|(k, _)| !kept.contains(k))
            .expect("the new session");
        if mine.1 == alice_tag {
            let _: i64 = redis::cmd("HDEL")
                .arg(&mine.0)
                .arg("ut")
                .query(&mut con)
                .unwrap();
            kept.push(mine.0);
            legacy.push(t);
        } else {
            assert!(s.logout(&t).await.unwrap());
        }
    }
    assert_eq!(legacy.len(), 2, "no login landed in alice's tag");
    let keys = session_keys(&mut con, "sesame");
    assert_eq!(the_index(&mut con, "sesame").2, hexes(&keys));

    // Rotations move it to other tags; the index follows and `ut` is set.
    let (_, alice_tag, _) = the_index(&mut con, "sesame");
    for _ in 0..8 {
        legacy[0] = s.rotate(&legacy[0]).await.unwrap();
    }
    let keys = session_keys(&mut con, "sesame");
    assert_eq!(the_index(&mut con, "sesame").2, hexes(&keys));
    assert_eq!(s.sessions_of(&alice).await.unwrap().len(), 2);
    let uts: Vec<Option<String>> = keys
        .iter()
        .map(|(k, _)| redis::cmd("HGET").arg(k).arg("ut").query(&mut con).unwrap())
        .collect();
    assert!(uts.contains(&Some(alice_tag.clone())), "{uts:?}");
    assert!(uts.contains(&None), "{uts:?}");
    // A logout of the untouched one drops its entry.
    assert!(s.logout(&legacy[1]).await.unwrap());
    let keys = session_keys(&mut con, "sesame");
    assert_eq!(keys.len(), 1);
    assert_eq!(the_index(&mut con, "sesame").2, hexes(&keys));
    // "Log out everywhere" ends the rotated one.
    assert_eq!(s.revoke_user(&alice).await.unwrap(), 1);
    assert!(s.validate(&legacy[0]).await.unwrap().is_none());
}

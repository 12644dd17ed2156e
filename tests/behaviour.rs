//! One behaviour suite, every backend: each behaviour is written once, as a
//! generic async function over [`Backend`], and runs as three tests,
//! `in_process::<name>` (the engine, `sesame::Sessions`),
//! `redis::<name>` (`sesame::redis::RedisSessions` on a real
//! `redis-server`, with the `redis` feature) and `cluster::<name>` (the
//! same on a real six-node Redis Cluster; the behaviours that hold
//! `max_sessions` exactly are left out there, see the macro).
//!
//! Time is real here (Redis's TTLs run on Redis's clock, which a
//! `ManualClock` cannot move), so the timeouts are the shortest the builders
//! accept (1 s) and the margins generous.

use std::sync::Arc;
use std::time::Duration;

use sesame::store::Store;
use sesame::{ErrorKind, EventKind, EvictionReason, Handle, SessionToken};

type Data = Vec<u32>;

/// What a behaviour asks of the store it runs on.
#[derive(Clone, Copy, Debug)]
struct Cfg {
    idle: Duration,
    absolute: Duration,
    grace: Duration,
    max_sessions: usize,
    per_user: PerUser,
}

#[derive(Clone, Copy, Debug)]
#[allow(dead_code)]
enum PerUser {
    Default,
    Limit(usize),
    Unlimited,
}

impl Default for Cfg {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
            grace: Duration::ZERO,
            max_sessions: 1_000_000,
            per_user: PerUser::Default,
        }
    }
}

/// A store under test, with whatever keeps its backend alive.
struct Env<S> {
    s: S,
    _guard: Option<Arc<dyn Send + Sync>>,
}

/// One backend: how to build a store from a [`Cfg`], and what the
/// [`Store`] trait cannot express (a value that is not a token at all).
trait Backend {
    type S: Store<Data = Data, Principal = String>;
    /// `None` when the backend cannot run here (no `redis-server`).
    async fn build(cfg: Cfg) -> Option<Env<Self::S>>;
    /// Validates a text that may not be a token.
    async fn validate_text(s: &Self::S, text: &str) -> Result<Option<Handle>, sesame::Error>;
}

struct InProcess;

impl Backend for InProcess {
    type S = sesame::Sessions<Data, String>;

    async fn build(cfg: Cfg) -> Option<Env<Self::S>> {
        let b = sesame::Sessions::<Data, String>::builder()
            .idle_timeout(cfg.idle)
            .absolute_timeout(cfg.absolute)
            .rotation_grace(cfg.grace)
            .max_sessions(cfg.max_sessions)
            // One shard: eviction then picks from one ring, so "the least
            // recently seen anonymous session" is exact, as on Redis (with
            // many shards it is approximate).
            .shards(1);
        let b = match cfg.per_user {
            PerUser::Default => b,
            PerUser::Limit(n) => b.max_sessions_per_user(n),
            PerUser::Unlimited => b.unlimited_sessions_per_user(),
        };
        Some(Env {
            s: b.build().expect("valid options"),
            _guard: None,
        })
    }

    async fn validate_text(s: &Self::S, text: &str) -> Result<Option<Handle>, sesame::Error> {
        Ok(s.validate(text))
    }
}

#[cfg(feature = "redis")]
mod redis_support;

#[cfg(feature = "redis")]
struct OnRedis;

#[cfg(feature = "redis")]
impl Backend for OnRedis {
    type S = sesame::redis::RedisSessions<Data, String>;

    async fn build(cfg: Cfg) -> Option<Env<Self::S>> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let server = shared_server()?;
        // A fresh key space per test: capacity counts every session under
        // the prefix.
        let prefix = format!(
            "behaviour-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let b = sesame::redis::RedisSessions::<Data, String>::builder(&server.url())
            .secret_key(sesame::SecretKey::generate())
            .key_prefix(&prefix)
            .idle_timeout(cfg.idle)
            .absolute_timeout(cfg.absolute)
            .rotation_grace(cfg.grace)
            .max_sessions(cfg.max_sessions)
            .cache_ttl(cfg.absolute.min(Duration::from_secs(60)));
        let b = match cfg.per_user {
            PerUser::Default => b,
            PerUser::Limit(n) => b.max_sessions_per_user(n),
            PerUser::Unlimited => b.unlimited_sessions_per_user(),
        };
        let s = b.build().expect("valid options");
        assert!(s.wait_ready(Duration::from_secs(5)).await, "subscribed");
        Some(Env {
            s,
            _guard: Some(server),
        })
    }

    async fn validate_text(s: &Self::S, text: &str) -> Result<Option<Handle>, sesame::Error> {
        s.validate(text).await
    }
}

/// One `redis-server` shared by the tests that run at the same time; the
/// last one to finish stops it (a static would never be dropped, and the
/// server would outlive the test binary).
#[cfg(feature = "redis")]
fn shared_server() -> Option<Arc<redis_support::RedisServer>> {
    use std::sync::{Mutex, Weak};
    static SHARED: Mutex<Weak<redis_support::RedisServer>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(server) = slot.upgrade() {
        return Some(server);
    }
    let server = Arc::new(redis_support::RedisServer::start()?);
    *slot = Arc::downgrade(&server);
    Some(server)
}

#[cfg(feature = "redis")]
struct OnCluster;

#[cfg(feature = "redis")]
impl Backend for OnCluster {
    type S = sesame::redis::RedisSessions<Data, String>;

    async fn build(cfg: Cfg) -> Option<Env<Self::S>> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let cluster = shared_cluster()?;
        let prefix = format!(
            "behaviour-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let urls = cluster.urls();
        let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
        let b = sesame::redis::RedisSessions::<Data, String>::cluster_builder(&nodes)
            .secret_key(sesame::SecretKey::generate())
            .key_prefix(&prefix)
            .idle_timeout(cfg.idle)
            .absolute_timeout(cfg.absolute)
            .rotation_grace(cfg.grace)
            .max_sessions(cfg.max_sessions)
            .cache_ttl(cfg.absolute.min(Duration::from_secs(60)));
        let b = match cfg.per_user {
            PerUser::Default => b,
            PerUser::Limit(n) => b.max_sessions_per_user(n),
            PerUser::Unlimited => b.unlimited_sessions_per_user(),
        };
        let s = b.build().expect("valid options");
        assert!(s.wait_ready(Duration::from_secs(10)).await, "subscribed");
        Some(Env {
            s,
            _guard: Some(cluster),
        })
    }

    async fn validate_text(s: &Self::S, text: &str) -> Result<Option<Handle>, sesame::Error> {
        s.validate(text).await
    }
}

/// One six-node Redis Cluster shared by the tests that run at the same
/// time, as [`shared_server`].
#[cfg(feature = "redis")]
fn shared_cluster() -> Option<Arc<redis_support::cluster::RedisCluster>> {
    use std::sync::{Mutex, Weak};
    static SHARED: Mutex<Weak<redis_support::cluster::RedisCluster>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cluster) = slot.upgrade() {
        return Some(cluster);
    }
    let cluster = Arc::new(redis_support::cluster::RedisCluster::start()?);
    *slot = Arc::downgrade(&cluster);
    Some(cluster)
}

/// Each behaviour as `in_process::<name>`, `redis::<name>` and
/// `cluster::<name>` (a Redis Cluster of six real nodes). The behaviours
/// after `exact_capacity:` hold `max_sessions` exactly, which a cluster
/// splits across its 256 hash tags (approximate: see
/// `src/redis/scripts.rs`); they do not run there, and
/// `cluster_capacity_is_split_across_tags` checks the cluster's rule.
macro_rules! behaviours {
    ($($name:ident),* $(,)?; exact_capacity: $($exact:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<super::InProcess>().await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $exact() {
                    super::$exact::<super::InProcess>().await
                }
            )*
        }
        #[cfg(feature = "redis")]
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<super::OnRedis>().await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $exact() {
                    super::$exact::<super::OnRedis>().await
                }
            )*
        }
        #[cfg(feature = "redis")]
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<super::OnCluster>().await
                }
            )*
        }
    };
}

behaviours!(
    create_validate_with_update,
    malformed_and_unknown_tokens_find_nothing,
    rotate_keeps_data_and_handle_and_ends_the_old_token,
    login_rotates_and_binds,
    login_leaves_no_pre_login_token_even_with_a_grace_window,
    login_as_another_principal_starts_from_fresh_data,
    logout_is_final,
    revoke_user_and_revoke_by_handle,
    sessions_of_lists_metadata_oldest_first,
    idle_expiry,
    absolute_expiry,
    grace_window_keeps_the_old_token_until_it_ends,
    a_session_has_at_most_one_alias,
    ending_a_session_through_its_alias_ends_both_tokens,
    per_user_limit_ends_the_session_bound_longest_ago,
    concurrent_logins_at_the_limit_never_leave_the_user_without_a_session,
    the_default_per_user_limit_is_a_tenth_of_a_small_store;
    exact_capacity:
    capacity_evicts_the_least_recently_created_anonymous_session,
    capacity_never_evicts_logged_in_sessions_and_says_full,
    create_at_capacity_reclaims_expired_sessions_first,
    events_tell_what_happened_and_never_a_token,
    stats_move_the_same_way,
);

// --- helpers ----------------------------------------------------------------

fn alice() -> String {
    "alice".to_string()
}

async fn handle_of<S: Store>(s: &S, t: &SessionToken) -> Option<Handle> {
    s.validate(t).await.expect("store reachable")
}

async fn live<S: Store>(s: &S, t: &SessionToken) -> bool {
    handle_of(s, t).await.is_some()
}

async fn new_session<S: Store<Data = Data>>(s: &S, data: Data) -> SessionToken {
    s.create(data).await.expect("create")
}

async fn logged_in<S: Store<Data = Data, Principal = String>>(s: &S, who: &str) -> SessionToken {
    let t = new_session(s, Vec::new()).await;
    s.login(&t, who.to_string()).await.expect("login")
}

fn kind<T: std::fmt::Debug>(r: Result<T, sesame::Error>) -> ErrorKind {
    r.expect_err("an error").kind()
}

// --- behaviours that hold today on both backends ------------------------------

async fn create_validate_with_update<B: Backend>() {
    let Some(Env { s, _guard }) = B::build(Cfg::default()).await else {
        return;
    };
    let t = new_session(&s, vec![1, 2]).await;
    let h = handle_of(&s, &t).await.expect("live");
    assert_eq!(s.with(&t, |d| d.clone()).await.unwrap(), Some(vec![1, 2]));
    let n = s
        .update(&t, |d| {
            d.push(3);
            d.len()
        })
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        s.with(&t, |d| d.clone()).await.unwrap(),
        Some(vec![1, 2, 3])
    );
    let info = s.info(&t).await.unwrap().expect("info");
    assert_eq!((info.handle, info.principal), (h, None));
    assert!(info.expires <= info.absolute_expires);
    assert!(s.is_current(&t).await.unwrap());
    // Two sessions are two sessions.
    let u = new_session(&s, vec![9]).await;
    assert_ne!(handle_of(&s, &u).await, Some(h));
    assert_eq!(s.with(&u, |d| d.clone()).await.unwrap(), Some(vec![9]));
}

async fn malformed_and_unknown_tokens_find_nothing<B: Backend>() {
    let Some(Env { s, _guard }) = B::build(Cfg::default()).await else {
        return;
    };
    new_session(&s, vec![1]).await;
    for text in [
        "",
        "garbage",
        "a-cookie-value-that-is-43-chars-long-but-no",
        "é",
    ] {
        assert_eq!(B::validate_text(&s, text).await.unwrap(), None, "{text:?}");
    }
    let unknown = SessionToken::generate();
    assert_eq!(B::validate_text(&s, unknown.as_str()).await.unwrap(), None);
    assert_eq!(s.validate(&unknown).await.unwrap(), None);
    assert!(!s.is_current(&unknown).await.unwrap());
    assert_eq!(s.with(&unknown, |d| d.len()).await.unwrap(), None);
    assert!(s.info(&unknown).await.unwrap().is_none());
    assert_eq!(
        kind(s.update(&unknown, |d| d.push(1)).await),
        ErrorKind::NotFound
    );
    assert_eq!(kind(s.rotate(&unknown).await), ErrorKind::NotFound);
    assert_eq!(kind(s.login(&unknown, alice()).await), ErrorKind::NotFound);
    assert!(!s.logout(&unknown).await.unwrap());
    assert_eq!(s.revoke_user(&alice()).await.unwrap(), 0);
    assert!(s.sessions_of(&alice()).await.unwrap().is_empty());
}

async fn rotate_keeps_data_and_handle_and_ends_the_old_token<B: Backend>() {
    let Some(Env { s, _guard }) = B::build(Cfg::default()).await else {
        return;
    };
    let old = new_session(&s, vec![5]).await;
    let h = handle_of(&s, &old).await.unwrap();
    let new = s.rotate(&old).await.unwrap();
    assert_ne!(old, new);
    assert_eq!(handle_of(&s, &old).await, None, "old token still works");
    assert!(!s.is_current(&old).await.unwrap());
    assert_eq!(handle_of(&s, &new).await, Some(h), "handle kept");
    assert!(s.is_current(&new).await.unwrap());
    assert_eq!(s.with(&new, |d| d.clone()).await.unwrap(), Some(vec![5]));
    // A logged-in session keeps its principal, and the index follows.
    let t = s.login(&new, alice()).await.unwrap();
    let r = s.rotate(&t).await.unwrap();
    assert_eq!(
        s.info(&r).await.unwrap().unwrap().principal.as_deref(),
        Some("alice")
    );
    let listed = s.sessions_of(&alice()).await.unwrap();
    assert_eq!(listed.iter().map(|i| i.handle).collect::<Vec<_>>(), [h]);
    assert_eq!(s.revoke_user(&alice()).await.unwrap(), 1);
    assert!(!live(&s, &r).await);
}

async fn login_rotates_and_binds<B: Backend>() {
    let Some(Env { s, _guard }) = B::build(Cfg::default()).await else {
        return;
    };
    let anon = new_session(&s, vec![7]).await;
    let h = handle_of(&s, &anon).await.unwrap();
    let user = s.login(&anon, alice()).await.unwrap();
    assert_ne!(anon, user);
    assert!(!live(&s, &anon).await, "pre-login token still works");
    assert_eq!(kind(s.update(&anon, |_| ()).await), ErrorKind::NotFound);
    assert_eq!(s.with(&user, |d| d.clone()).await.unwrap(), Some(vec![7]));
    let info = s.info(&user).await.unwrap().unwrap();
    assert_eq!((info.handle, info.principal.as_deref()), (h, Some("alice")));
    assert!(s.is_current(&user).await.unwrap());
}

async fn login_leaves_no_pre_login_token_even_with_a_grace_window<B: Backend>() {
    let cfg = Cfg {
        grace: Duration::from_secs(5),
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    let anon = new_session(&s, vec![1]).await;
    let user = s.login(&anon, alice()).await.unwrap();
    assert_eq!(
        handle_of(&s, &anon).await,
        None,
        "fixation: pre-login token works"
    );
    assert_eq!(s.with(&anon, |d| d.clone()).await.unwrap(), None);
    assert!(live(&s, &user).await);
    // The alias of an earlier plain rotation ends with the login too.
    let anon = new_session(&s, vec![2]).await;
    let rotated = s.rotate(&anon).await.unwrap();
    let user = s.login(&rotated, alice()).await.unwrap();
    assert_eq!(handle_of(&s, &anon).await, None, "alias survived a login");
    assert_eq!(handle_of(&s, &rotated).await, None, "pre-login token works");
    assert!(live(&s, &user).await);
}

async fn login_as_another_principal_starts_from_fresh_data<B: Backend>() {
    let Some(Env { s, _guard }) = B::build(Cfg::default()).await else {
        return;
    };
    let anon = new_session(&s, vec![1]).await;
    let a = s.login(&anon, alice()).await.unwrap();
    assert_eq!(
        s.with(&a, |d| d.clone()).await.unwrap(),
        Some(vec![1]),
        "anonymous data kept"
    );
    s.update(&a, |d| d.push(2)).await.unwrap();
    let again = s.login(&a, alice()).await.unwrap();
    assert_eq!(
        s.with(&again, |d| d.clone()).await.unwrap(),
        Some(vec![1, 2]),
        "same principal keeps the data"
    );
    let bob = s.login(&again, "bob".to_string()).await.unwrap();
    assert_eq!(
        s.with(&bob, |d| d.clone()).await.unwrap(),
        Some(vec![]),
        "bob sees alice's data"
    );
    assert!(s.sessions_of(&alice()).await.unwrap().is_empty());
    assert_eq!(s.sessions_of(&"bob".to_string()).await.unwrap().len(), 1);
}

async fn logout_is_final<B: Backend>() {
    let Some(Env { s, _guard }) = B::build(Cfg::default()).await else {
        return;
    };
    let t = logged_in(&s, "alice").await;
    assert!(s.logout(&t).await.unwrap());
    assert!(!live(&s, &t).await);
    assert!(!s.logout(&t).await.unwrap(), "ended twice");
    assert_eq!(kind(s.update(&t, |d| d.push(1)).await), ErrorKind::NotFound);
    assert_eq!(kind(s.rotate(&t).await), ErrorKind::NotFound);
    assert_eq!(kind(s.login(&t, alice()).await), ErrorKind::NotFound);
    assert!(s.sessions_of(&alice()).await.unwrap().is_empty());
    let anon = new_session(&s, vec![]).await;
    assert!(s.logout(&anon).await.unwrap());
    assert!(!live(&s, &anon).await);
}

async fn revoke_user_and_revoke_by_handle<B: Backend>() {
    let Some(Env { s, _guard }) = B::build(Cfg::default()).await else {
        return;
    };
    let phone = logged_in(&s, "alice").await;
    let laptop = logged_in(&s, "alice").await;
    let tablet = logged_in(&s, "alice").await;
    let bob = logged_in(&s, "bob").await;
    let anon = new_session(&s, vec![]).await;
    let laptop_h = handle_of(&s, &laptop).await.unwrap();
    assert!(
        !s.revoke(&"bob".to_string(), laptop_h).await.unwrap(),
        "not bob's"
    );
    assert!(live(&s, &laptop).await);
    assert!(s.revoke(&alice(), laptop_h).await.unwrap());
    assert!(!live(&s, &laptop).await);
    assert!(!s.revoke(&alice(), laptop_h).await.unwrap(), "ended twice");
    assert!(live(&s, &phone).await && live(&s, &tablet).await);
    assert_eq!(s.revoke_user(&alice()).await.unwrap(), 2);
    assert!(!live(&s, &phone).await && !live(&s, &tablet).await);
    assert_eq!(s.revoke_user(&alice()).await.unwrap(), 0);
    assert!(
        live(&s, &bob).await && live(&s, &anon).await,
        "others untouched"
    );
}

async fn sessions_of_lists_metadata_oldest_first<B: Backend>() {
    let Some(Env { s, _guard }) = B::build(Cfg::default()).await else {
        return;
    };
    let mut handles = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let t = logged_in(&s, "alice").await;
        handles.push(handle_of(&s, &t).await.unwrap());
        tokens.push(t);
        // Distinct creation times (milliseconds).
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    logged_in(&s, "bob").await;
    let listed = s.sessions_of(&alice()).await.unwrap();
    assert_eq!(listed.iter().map(|i| i.handle).collect::<Vec<_>>(), handles);
    for i in &listed {
        assert_eq!(i.principal.as_deref(), Some("alice"));
        assert!(i.created <= i.token_issued && i.created <= i.last_seen);
        assert!(i.expires <= i.absolute_expires);
        let text = format!("{i:?}");
        for t in &tokens {
            assert!(!text.contains(t.as_str()), "a token in {text}");
        }
    }
}

async fn idle_expiry<B: Backend>() {
    let cfg = Cfg {
        idle: Duration::from_secs(1),
        absolute: Duration::from_secs(60),
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    let unused = new_session(&s, vec![]).await;
    let used = logged_in(&s, "alice").await;
    // 1.6 s of requests every 200 ms: the used one stays, the other goes.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(live(&s, &used).await, "a session in use expired");
    }
    assert!(
        !live(&s, &unused).await,
        "an unused session outlived its idle timeout"
    );
    assert_eq!(kind(s.update(&unused, |_| ()).await), ErrorKind::NotFound);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!live(&s, &used).await);
    assert!(s.sessions_of(&alice()).await.unwrap().is_empty());
}

async fn absolute_expiry<B: Backend>() {
    let cfg = Cfg {
        idle: Duration::from_secs(1),
        absolute: Duration::from_secs(2),
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    let t = new_session(&s, vec![]).await;
    let start = std::time::Instant::now();
    // In use every 200 ms: alive until the absolute deadline, then gone.
    while start.elapsed() < Duration::from_millis(1_600) {
        assert!(live(&s, &t).await, "ended before its absolute deadline");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while start.elapsed() < Duration::from_millis(2_600) {
        live(&s, &t).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!live(&s, &t).await, "outlived its absolute deadline");
}

// --- the rotation grace window ------------------------------------------------

async fn grace_window_keeps_the_old_token_until_it_ends<B: Backend>() {
    let cfg = Cfg {
        grace: Duration::from_millis(500),
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    let old = new_session(&s, vec![1]).await;
    let h = handle_of(&s, &old).await.unwrap();
    let new = s.rotate(&old).await.unwrap();
    // In flight with the old token: the same session, read and written.
    assert_eq!(
        handle_of(&s, &old).await,
        Some(h),
        "no grace for the old token"
    );
    assert!(
        !s.is_current(&old).await.unwrap(),
        "an alias is not current"
    );
    assert!(s.is_current(&new).await.unwrap());
    s.update(&old, |d| d.push(2)).await.unwrap();
    assert_eq!(s.with(&new, |d| d.clone()).await.unwrap(), Some(vec![1, 2]));
    assert_eq!(s.with(&old, |d| d.clone()).await.unwrap(), Some(vec![1, 2]));
    assert_eq!(s.info(&old).await.unwrap().map(|i| i.handle), Some(h));
    // An alias cannot rotate or log in.
    assert_eq!(kind(s.rotate(&old).await), ErrorKind::NotFound);
    assert_eq!(kind(s.login(&old, alice()).await), ErrorKind::NotFound);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        handle_of(&s, &old).await,
        None,
        "the alias outlived its window"
    );
    assert_eq!(kind(s.update(&old, |_| ()).await), ErrorKind::NotFound);
    assert_eq!(handle_of(&s, &new).await, Some(h));
    assert_eq!(s.with(&new, |d| d.clone()).await.unwrap(), Some(vec![1, 2]));
}

async fn a_session_has_at_most_one_alias<B: Backend>() {
    let cfg = Cfg {
        grace: Duration::from_secs(5),
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    let t0 = new_session(&s, vec![]).await;
    let t1 = s.rotate(&t0).await.unwrap();
    assert!(live(&s, &t0).await);
    let t2 = s.rotate(&t1).await.unwrap();
    assert_eq!(handle_of(&s, &t0).await, None, "two aliases at once");
    assert!(live(&s, &t1).await, "the newest alias ended");
    assert!(!s.is_current(&t1).await.unwrap());
    assert!(live(&s, &t2).await && s.is_current(&t2).await.unwrap());
}

async fn ending_a_session_through_its_alias_ends_both_tokens<B: Backend>() {
    let cfg = Cfg {
        grace: Duration::from_secs(5),
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    // Logout with the old token.
    let old = new_session(&s, vec![]).await;
    let new = s.rotate(&old).await.unwrap();
    assert!(s.logout(&old).await.unwrap());
    assert!(!live(&s, &old).await && !live(&s, &new).await);
    // Logout with the new token ends the alias too.
    let old = new_session(&s, vec![]).await;
    let new = s.rotate(&old).await.unwrap();
    assert!(s.logout(&new).await.unwrap());
    assert!(!live(&s, &old).await, "the alias outlived its session");
    // Revocation ends a logged-in session's alias.
    let t = logged_in(&s, "alice").await;
    let r = s.rotate(&t).await.unwrap();
    assert!(live(&s, &t).await);
    assert_eq!(s.revoke_user(&alice()).await.unwrap(), 1);
    assert!(!live(&s, &t).await && !live(&s, &r).await);
}

// --- the per-user limit ---------------------------------------------------------

async fn per_user_limit_ends_the_session_bound_longest_ago<B: Backend>() {
    let cfg = Cfg {
        per_user: PerUser::Limit(2),
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    // Created first, logs in last: the victim is the one bound longest
    // ago, not the one created first.
    let early = new_session(&s, vec![]).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let (a, b) = (new_session(&s, vec![]).await, new_session(&s, vec![]).await);
    let a = s.login(&a, alice()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let b = s.login(&b, alice()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    // Logging in again as the same principal is no new binding.
    let a = s.login(&a, alice()).await.unwrap();
    assert_eq!(s.sessions_of(&alice()).await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(3)).await;
    let c = s.login(&early, alice()).await.unwrap();
    assert!(!live(&s, &a).await, "the session bound first survived");
    assert!(
        live(&s, &b).await && live(&s, &c).await,
        "the wrong one ended"
    );
    assert_eq!(s.sessions_of(&alice()).await.unwrap().len(), 2);
    // Another principal is not affected, and a rotation binds nothing.
    let bob = logged_in(&s, "bob").await;
    let c = s.rotate(&c).await.unwrap();
    assert!(live(&s, &bob).await && live(&s, &b).await && live(&s, &c).await);
    // A session moving to alice from bob counts as a new binding.
    let d = s.login(&bob, alice()).await.unwrap();
    assert!(!live(&s, &b).await, "b was bound before c");
    assert!(live(&s, &c).await && live(&s, &d).await);
    assert!(s.sessions_of(&"bob".to_string()).await.unwrap().is_empty());
}

async fn concurrent_logins_at_the_limit_never_leave_the_user_without_a_session<B: Backend>() {
    for limit in [1, 2] {
        let cfg = Cfg {
            per_user: PerUser::Limit(limit),
            ..Cfg::default()
        };
        let Some(Env { s, _guard }) = B::build(cfg).await else {
            return;
        };
        for _ in 0..limit {
            logged_in(&s, "alice").await;
        }
        for round in 0..50 {
            let anon = [new_session(&s, vec![]).await, new_session(&s, vec![]).await];
            let tasks: Vec<_> = anon
                .into_iter()
                .map(|t| {
                    let s = s.clone();
                    tokio::spawn(async move { s.login(&t, alice()).await.unwrap() })
                })
                .collect();
            let mut new = Vec::new();
            for t in tasks {
                new.push(t.await.expect("login task"));
            }
            let mut alive = 0;
            for t in &new {
                alive += usize::from(live(&s, t).await);
            }
            assert_eq!(
                (alive, s.sessions_of(&alice()).await.unwrap().len()),
                (limit.min(2), limit),
                "limit {limit}, round {round}: new sessions alive, sessions held"
            );
        }
    }
}

async fn the_default_per_user_limit_is_a_tenth_of_a_small_store<B: Backend>() {
    for (per_user, held) in [(PerUser::Default, 5), (PerUser::Unlimited, 20)] {
        let cfg = Cfg {
            max_sessions: 50,
            per_user,
            ..Cfg::default()
        };
        let Some(Env { s, _guard }) = B::build(cfg).await else {
            return;
        };
        for _ in 0..20 {
            logged_in(&s, "mallory").await;
        }
        let listed = s.sessions_of(&"mallory".to_string()).await.unwrap();
        assert_eq!(listed.len(), held, "{per_user:?}");
    }
}

// --- capacity ---------------------------------------------------------------------

async fn capacity_evicts_the_least_recently_created_anonymous_session<B: Backend>() {
    let cfg = Cfg {
        max_sessions: 3,
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(new_session(&s, vec![i]).await);
        // Distinct creation times (milliseconds): "oldest" is well defined.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let d = new_session(&s, vec![3]).await;
    assert!(
        !live(&s, &made[0]).await,
        "the oldest anonymous session stayed"
    );
    assert!(
        live(&s, &made[1]).await && live(&s, &made[2]).await,
        "the wrong one went"
    );
    assert!(live(&s, &d).await);
    tokio::time::sleep(Duration::from_millis(3)).await;
    let e = new_session(&s, vec![4]).await;
    assert!(!live(&s, &made[1]).await, "the next oldest stayed");
    assert!(live(&s, &made[2]).await && live(&s, &d).await && live(&s, &e).await);
}

async fn capacity_never_evicts_logged_in_sessions_and_says_full<B: Backend>() {
    let cfg = Cfg {
        max_sessions: 3,
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    let u1 = logged_in(&s, "u1").await;
    let u2 = logged_in(&s, "u2").await;
    let x = new_session(&s, vec![]).await;
    let y = new_session(&s, vec![]).await;
    assert!(!live(&s, &x).await, "the anonymous session stayed");
    assert!(
        live(&s, &u1).await && live(&s, &u2).await,
        "a logged-in session was evicted"
    );
    let u3 = s.login(&y, "u3".to_string()).await.unwrap();
    assert_eq!(kind(s.create(vec![]).await), ErrorKind::Full);
    assert!(live(&s, &u1).await && live(&s, &u2).await && live(&s, &u3).await);
    // Room again once one ends.
    assert!(s.logout(&u2).await.unwrap());
    let z = new_session(&s, vec![]).await;
    assert!(live(&s, &z).await);
    let w = new_session(&s, vec![]).await;
    assert!(!live(&s, &z).await && live(&s, &w).await);
}

async fn create_at_capacity_reclaims_expired_sessions_first<B: Backend>() {
    let cfg = Cfg {
        idle: Duration::from_secs(1),
        max_sessions: 3,
        per_user: PerUser::Unlimited,
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    logged_in(&s, "u1").await;
    logged_in(&s, "u2").await;
    let old = new_session(&s, vec![]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let young = s
        .login(&new_session(&s, vec![]).await, "u3".to_string())
        .await;
    // Full of logged-in sessions (the anonymous one was evicted for u3's).
    assert!(!live(&s, &old).await);
    assert_eq!(kind(s.create(vec![]).await), ErrorKind::Full);
    // u1's and u2's expire; u3's (kept in use) does not. The engine reaps
    // by its wheel's 1 s ticks: 2 s leave it a tick past their deadlines.
    let young = young.unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(live(&s, &young).await);
    }
    let a = new_session(&s, vec![]).await;
    let b = new_session(&s, vec![]).await;
    assert!(
        live(&s, &a).await && live(&s, &b).await,
        "expired sessions made no room"
    );
    assert!(live(&s, &young).await, "a live session went in their place");
}

// --- events and stats ---------------------------------------------------------------

async fn events_tell_what_happened_and_never_a_token<B: Backend>() {
    let cfg = Cfg {
        max_sessions: 3,
        per_user: PerUser::Limit(1),
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    let events = s.subscribe(64);
    let mut tokens = Vec::new();
    let a = new_session(&s, vec![]).await;
    let ha = handle_of(&s, &a).await.unwrap();
    tokens.push(a.clone());
    let a = s.rotate(&a).await.unwrap();
    tokens.push(a.clone());
    let a = s.login(&a, alice()).await.unwrap();
    tokens.push(a.clone());
    tokio::time::sleep(Duration::from_millis(3)).await;
    let b = new_session(&s, vec![]).await;
    let hb = handle_of(&s, &b).await.unwrap();
    tokens.push(b.clone());
    // The per-user limit (1) ends a.
    let b = s.login(&b, alice()).await.unwrap();
    tokens.push(b.clone());
    let c = new_session(&s, vec![]).await;
    let hc = handle_of(&s, &c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let d = new_session(&s, vec![]).await;
    let hd = handle_of(&s, &d).await.unwrap();
    tokens.extend([c.clone(), d.clone()]);
    // Full (b, c, d): c, the oldest anonymous session, is evicted.
    let e = new_session(&s, vec![]).await;
    let he = handle_of(&s, &e).await.unwrap();
    tokens.push(e.clone());
    assert!(s.logout(&d).await.unwrap());
    assert_eq!(s.revoke_user(&alice()).await.unwrap(), 1);

    let got: Vec<_> = events.try_iter().collect();
    for ev in &got {
        let text = format!("{ev:?}");
        for t in &tokens {
            assert!(!text.contains(t.as_str()), "a token in {text}");
        }
    }
    let got: Vec<_> = got
        .into_iter()
        .map(|e| (e.kind, e.handle, e.principal))
        .collect();
    let al = Some(alice());
    let expected = vec![
        (EventKind::Created, ha, None),
        (EventKind::Rotated, ha, None),
        (EventKind::LoggedIn, ha, al.clone()),
        (EventKind::Created, hb, None),
        (EventKind::LoggedIn, hb, al.clone()),
        (EventKind::Evicted(EvictionReason::PerUser), ha, al.clone()),
        (EventKind::Created, hc, None),
        (EventKind::Created, hd, None),
        (EventKind::Evicted(EvictionReason::Capacity), hc, None),
        (EventKind::Created, he, None),
        (EventKind::Destroyed, hd, None),
        (EventKind::Revoked, hb, al.clone()),
    ];
    assert_eq!(got, expected);
}

/// The fields of `sesame::Stats` both backends keep, as a tuple:
/// (live, anonymous, created, rotated, destroyed, revoked, evicted for
/// capacity, evicted per user, rejected, refused full).
async fn counters<S: Store>(s: &S) -> [u64; 10] {
    let st = s.stats().await.expect("stats");
    [
        st.live,
        st.anonymous,
        st.created,
        st.rotated,
        st.destroyed,
        st.revoked,
        st.evicted_capacity,
        st.evicted_per_user,
        st.rejected,
        st.refused_full,
    ]
}

async fn stats_move_the_same_way<B: Backend>() {
    let cfg = Cfg {
        max_sessions: 3,
        per_user: PerUser::Limit(1),
        ..Cfg::default()
    };
    let Some(Env { s, _guard }) = B::build(cfg).await else {
        return;
    };
    assert_eq!(counters(&s).await, [0; 10]);
    let a = new_session(&s, vec![]).await;
    let b = new_session(&s, vec![]).await;
    //                             live anon created rot des rev cap user rej full
    assert_eq!(counters(&s).await, [2, 2, 2, 0, 0, 0, 0, 0, 0, 0]);
    let a = s.login(&a, alice()).await.unwrap();
    let a = s.rotate(&a).await.unwrap();
    assert_eq!(counters(&s).await, [2, 1, 2, 2, 0, 0, 0, 0, 0, 0]);
    // The limit (1) ends a.
    let b = s.login(&b, alice()).await.unwrap();
    assert_eq!(counters(&s).await, [1, 0, 2, 3, 0, 0, 0, 1, 0, 0]);
    // Lookups that find nothing: a dead token, an unknown one, a malformed
    // value, an update and a rotation of a dead token.
    assert!(!live(&s, &a).await);
    assert!(!live(&s, &SessionToken::generate()).await);
    assert_eq!(B::validate_text(&s, "not a token").await.unwrap(), None);
    s.note_malformed();
    assert!(s.update(&a, |_| ()).await.is_err());
    assert!(s.rotate(&a).await.is_err());
    assert_eq!(counters(&s).await, [1, 0, 2, 3, 0, 0, 0, 1, 6, 0]);
    // Capacity: c, d fill the store, e evicts c.
    let c = new_session(&s, vec![]).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let d = new_session(&s, vec![]).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let e = new_session(&s, vec![]).await;
    assert_eq!(counters(&s).await, [3, 2, 5, 3, 0, 0, 1, 1, 6, 0]);
    // Full of logged-in sessions.
    s.login(&d, "bob".to_string()).await.unwrap();
    s.login(&e, "carol".to_string()).await.unwrap();
    assert_eq!(kind(s.create(vec![]).await), ErrorKind::Full);
    assert_eq!(counters(&s).await, [3, 0, 5, 5, 0, 0, 1, 1, 6, 1]);
    // Logout and revocation.
    assert!(s.logout(&b).await.unwrap());
    assert!(!s.logout(&c).await.unwrap(), "c was evicted");
    assert_eq!(s.revoke_user(&"bob".to_string()).await.unwrap(), 1);
    assert_eq!(counters(&s).await, [1, 0, 5, 5, 1, 1, 1, 1, 7, 1]);
    // A full subscriber's channel drops events and counts them.
    let _events = s.subscribe(1);
    new_session(&s, vec![]).await;
    new_session(&s, vec![]).await;
    assert_eq!(s.stats().await.unwrap().events_dropped, 1);
}

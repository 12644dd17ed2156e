//! The stores under test, behind one trait so that every bench drives sesame
//! and its peers through the same loop, on tokens of the same shape.
//!
//! Every store receives what a server reads from a cookie: the token's text.
//! Each turns it into its own key the way its users would:
//!
//! - `sesame`: strict base64url decode, blake3 keyed digest, sharded map.
//! - `floor`: the same decode and digest, then a `DashMap<[u8; 32], Arc<_>>`
//!   with an identity hasher: what any hashed-at-rest store must pay.
//! - `moka`: `moka::sync::Cache<String, Arc<_>>` with time-to-idle, keyed
//!   by the token text (it hashes with its default SipHash).
//! - `rwlock`: `parking_lot::RwLock<HashMap<String, Arc<_>>>` (std hasher).
//! - `tower_sessions`: its `MemoryStore`, keyed by its own `Id` parsed from
//!   the cookie text (`Id::from_str`), driven by a current-thread tokio
//!   runtime.
//!
//! Session data is a `u64` counter: `update` increments it in place.
//!
//! A hit reads the session, as a request does: every store's `validate`
//! returns a `u64` read from the session's own heap object (sesame's, the
//! floor's and the `String`-keyed peers' per-session handle; tower-sessions'
//! record is cloned out whole and its expiry read), so no store's figure
//! leaves out the cache miss on its session.

#![allow(dead_code)] // each bench binary uses part of this module

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Zipf};
use sesame::{SecretKey, SessionToken, Sessions};
use tower_sessions::session::{Id, Record};
use tower_sessions::{MemoryStore, SessionStore};

/// Idle timeout of every store: long enough that nothing expires during a run.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

/// A session store as the benches see it. All methods take the token text.
pub trait Store: Send + Sync {
    /// Short name used in bench ids.
    const NAME: &'static str;
    /// An empty store sized for `n` sessions.
    fn with_capacity(n: usize) -> Self;
    /// Creates a session; returns its token text.
    fn create(&self) -> String;
    /// Validate-and-touch: on a live session, a `u64` read from it (see the
    /// module docs); `None` otherwise.
    fn validate(&self, token: &str) -> Option<u64>;
    /// Increments the session's counter; false if there is no session.
    fn update(&self, token: &str) -> bool;
    /// Gives the session a new token; the old one stops working.
    fn rotate(&self, token: &str) -> Option<String>;
    /// Logs in: rotation plus binding a principal (for peers: the same
    /// rotation, with the user id written into the session).
    fn login(&self, token: &str, user: u64) -> Option<String>;
    /// Destroys the session.
    fn logout(&self, token: &str) -> bool;
}

/// A store with `n` sessions, and their tokens in creation order.
pub fn populated<S: Store>(n: usize) -> (S, Vec<String>) {
    let s = S::with_capacity(n);
    let tokens = (0..n).map(|_| s.create()).collect();
    (s, tokens)
}

/// Well-formed tokens no store knows.
pub fn unknown_tokens(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| SessionToken::generate().as_str().to_owned())
        .collect()
}

/// 43 characters, but not base64url: every store must reject it.
pub const MALFORMED: &str = "AAAAAAAAAAAAAAAAAAAAA*AAAAAAAAAAAAAAAAAAAAA";

// ---------------------------------------------------------------- access orders

/// Seed of every access order (see `benches/sessions.rs`).
pub const SEED: u64 = 0x5e5a_3e16;
/// Exponent of the skewed workload's Zipf distribution: YCSB's default.
pub const ZIPF_S: f64 = 0.99;
/// Draws in the skewed access sequence; loops cycle through it.
pub const ZIPF_DRAWS: usize = 1 << 20;

/// Token texts laid end to end in the order a loop presents them (all of a
/// store's tokens have one length).
pub struct Seq {
    text: String,
    len: usize,
    /// Tokens in the sequence.
    pub count: usize,
}

impl Seq {
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        let mut text = String::new();
        let mut len = 0;
        let mut count = 0;
        for t in tokens {
            if count == 0 {
                len = t.len();
            }
            assert_eq!(t.len(), len, "one token length per store");
            text.push_str(t);
            count += 1;
        }
        assert!(count > 0, "an empty sequence");
        Self { text, len, count }
    }

    /// A cursor that cycles through the sequence from position `from`.
    pub fn cursor(&self, from: usize) -> Cursor<'_> {
        Cursor {
            seq: self,
            i: from % self.count,
        }
    }
}

/// Walks a [`Seq`], starting over at its end.
pub struct Cursor<'a> {
    seq: &'a Seq,
    i: usize,
}

impl<'a> Cursor<'a> {
    /// The next token text.
    #[inline]
    pub fn next(&mut self) -> &'a str {
        let at = self.i * self.seq.len;
        self.i += 1;
        if self.i == self.seq.count {
            self.i = 0;
        }
        &self.seq.text[at..at + self.seq.len]
    }
}

/// `tokens` in one shuffled order fixed by `seed`.
pub fn shuffled(tokens: &[String], seed: u64) -> Seq {
    let mut order: Vec<&str> = tokens.iter().map(String::as_str).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    Seq::new(order)
}

/// [`ZIPF_DRAWS`] draws over `tokens`: rank `r` of the Zipf distribution is
/// the `r`-th token of a shuffled order, so the hot sessions are spread over
/// the creation order (and over the heap).
pub fn zipf(tokens: &[String], seed: u64) -> Seq {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_rank: Vec<&str> = tokens.iter().map(String::as_str).collect();
    by_rank.shuffle(&mut rng);
    let dist = Zipf::new(tokens.len() as f64, ZIPF_S).expect("valid Zipf parameters");
    // Draws are ranks in 1..=n.
    Seq::new((0..ZIPF_DRAWS).map(|_| by_rank[dist.sample(&mut rng) as usize - 1]))
}

// ---------------------------------------------------------------- sesame

/// The engine as benched: no background reaper, room for everything.
pub struct Sesame(pub Sessions<u64, u64>);

pub fn sesame_engine<T: Send + 'static>(max: usize) -> Sessions<T, u64> {
    Sessions::<T, u64>::builder()
        .idle_timeout(IDLE)
        .max_sessions(max.max(1 << 20) * 2)
        .reaper_interval(None)
        .build()
        .expect("valid bench config")
}

impl Store for Sesame {
    const NAME: &'static str = "sesame";
    fn with_capacity(n: usize) -> Self {
        Self(sesame_engine(n))
    }
    fn create(&self) -> String {
        let (t, _) = self.0.create(0).expect("room");
        t.as_str().to_owned()
    }
    fn validate(&self, token: &str) -> Option<u64> {
        self.0.validate(token).map(sesame::Handle::as_u64)
    }
    fn update(&self, token: &str) -> bool {
        self.0.update(token, |n| *n += 1).is_ok()
    }
    fn rotate(&self, token: &str) -> Option<String> {
        self.0.rotate(token).ok().map(|t| t.as_str().to_owned())
    }
    fn login(&self, token: &str, user: u64) -> Option<String> {
        self.0
            .login(token, user)
            .ok()
            .map(|t| t.as_str().to_owned())
    }
    fn logout(&self, token: &str) -> bool {
        self.0.logout(token)
    }
}

// ---------------------------------------------------------------- floor

/// Hashes a `[u8; 32]` digest by its first eight bytes (the slice's length
/// prefix is ignored): the digest is already uniformly random.
#[derive(Default)]
pub struct FirstEight(u64);

impl Hasher for FirstEight {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() >= 8 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[..8]);
            self.0 = u64::from_le_bytes(b);
        }
    }
    fn write_usize(&mut self, _len: usize) {}
}

/// What the floor stores per session.
pub struct FloorEntry {
    pub handle: u64,
    pub user: Mutex<Option<u64>>,
    pub data: Mutex<u64>,
}

/// `DashMap<[u8; 32], Arc<_>>` + identity hasher + the same blake3 keyed hash.
pub struct Floor {
    secret: [u8; 32],
    pub map: DashMap<[u8; 32], Arc<FloorEntry>, BuildHasherDefault<FirstEight>>,
}

impl Floor {
    #[inline]
    fn key(&self, token: &str) -> Option<[u8; 32]> {
        let mut raw = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(token.as_bytes(), &mut raw) {
            Ok(32) if token.len() == 43 => Some(*blake3::keyed_hash(&self.secret, &raw).as_bytes()),
            _ => None,
        }
    }

    fn insert_new(&self, e: Arc<FloorEntry>) -> String {
        let t = SessionToken::generate();
        let k = *blake3::keyed_hash(&self.secret, t.as_bytes()).as_bytes();
        self.map.insert(k, e);
        t.as_str().to_owned()
    }
}

impl Store for Floor {
    const NAME: &'static str = "floor";
    fn with_capacity(n: usize) -> Self {
        Self {
            secret: *SecretKey::generate().as_bytes(),
            map: DashMap::with_capacity_and_hasher(n, BuildHasherDefault::default()),
        }
    }
    fn create(&self) -> String {
        self.insert_new(Arc::new(FloorEntry {
            handle: rand::random(),
            user: Mutex::new(None),
            data: Mutex::new(0),
        }))
    }
    #[inline]
    fn validate(&self, token: &str) -> Option<u64> {
        let k = self.key(token)?;
        self.map.get(&k).map(|e| e.handle)
    }
    fn update(&self, token: &str) -> bool {
        let Some(k) = self.key(token) else {
            return false;
        };
        let Some(e) = self.map.get(&k).map(|e| Arc::clone(&e)) else {
            return false;
        };
        *e.data.lock() += 1;
        true
    }
    fn rotate(&self, token: &str) -> Option<String> {
        let k = self.key(token)?;
        let (_, e) = self.map.remove(&k)?;
        Some(self.insert_new(e))
    }
    fn login(&self, token: &str, user: u64) -> Option<String> {
        let k = self.key(token)?;
        let (_, e) = self.map.remove(&k)?;
        *e.user.lock() = Some(user);
        Some(self.insert_new(e))
    }
    fn logout(&self, token: &str) -> bool {
        self.key(token)
            .is_some_and(|k| self.map.remove(&k).is_some())
    }
}

// ---------------------------------------------------------------- moka

/// What the `String`-keyed peers store per session (the floor's entry).
pub struct PeerEntry {
    pub handle: u64,
    pub user: Mutex<Option<u64>>,
    pub data: Mutex<u64>,
}

fn peer_entry() -> Arc<PeerEntry> {
    Arc::new(PeerEntry {
        handle: rand::random(),
        user: Mutex::new(None),
        data: Mutex::new(0),
    })
}

fn new_token_text() -> String {
    SessionToken::generate().as_str().to_owned()
}

/// `moka::sync::Cache` with time-to-idle, keyed by the token text.
pub struct Moka(pub moka::sync::Cache<String, Arc<PeerEntry>>);

impl Store for Moka {
    const NAME: &'static str = "moka";
    fn with_capacity(n: usize) -> Self {
        Self(
            moka::sync::Cache::builder()
                .time_to_idle(IDLE)
                .max_capacity((n as u64).max(1 << 20) * 2)
                .initial_capacity(n)
                .build(),
        )
    }
    fn create(&self) -> String {
        let t = new_token_text();
        self.0.insert(t.clone(), peer_entry());
        t
    }
    #[inline]
    fn validate(&self, token: &str) -> Option<u64> {
        // `get` clones the `Arc` out (moka's values are returned by value).
        self.0.get(token).map(|e| e.handle)
    }
    fn update(&self, token: &str) -> bool {
        self.0.get(token).map(|e| *e.data.lock() += 1).is_some()
    }
    fn rotate(&self, token: &str) -> Option<String> {
        let e = self.0.remove(token)?;
        let t = new_token_text();
        self.0.insert(t.clone(), e);
        Some(t)
    }
    fn login(&self, token: &str, user: u64) -> Option<String> {
        let e = self.0.remove(token)?;
        *e.user.lock() = Some(user);
        let t = new_token_text();
        self.0.insert(t.clone(), e);
        Some(t)
    }
    fn logout(&self, token: &str) -> bool {
        self.0.remove(token).is_some()
    }
}

// ---------------------------------------------------------------- rwlock

/// `parking_lot::RwLock<HashMap<String, Arc<_>>>`, std hasher.
pub struct RwMap(pub RwLock<HashMap<String, Arc<PeerEntry>>>);

impl Store for RwMap {
    const NAME: &'static str = "rwlock";
    fn with_capacity(n: usize) -> Self {
        Self(RwLock::new(HashMap::with_capacity(n)))
    }
    fn create(&self) -> String {
        let t = new_token_text();
        self.0.write().insert(t.clone(), peer_entry());
        t
    }
    #[inline]
    fn validate(&self, token: &str) -> Option<u64> {
        // Read under the lock, as the floor reads under its shard guard.
        self.0.read().get(token).map(|e| e.handle)
    }
    fn update(&self, token: &str) -> bool {
        let e = self.0.read().get(token).map(Arc::clone);
        e.map(|e| *e.data.lock() += 1).is_some()
    }
    fn rotate(&self, token: &str) -> Option<String> {
        let t = new_token_text();
        let mut m = self.0.write();
        let e = m.remove(token)?;
        m.insert(t.clone(), e);
        Some(t)
    }
    fn login(&self, token: &str, user: u64) -> Option<String> {
        let t = new_token_text();
        let mut m = self.0.write();
        let e = m.remove(token)?;
        *e.user.lock() = Some(user);
        m.insert(t.clone(), e);
        Some(t)
    }
    fn logout(&self, token: &str) -> bool {
        self.0.write().remove(token).is_some()
    }
}

// ---------------------------------------------------------------- tower-sessions

/// tower-sessions' `MemoryStore` behind a current-thread tokio runtime.
///
/// Its futures complete on their first poll unless its mutex is contended,
/// so each call is polled once in place and handed to the runtime only if
/// it is pending: the runtime's overhead is not charged to the store.
pub struct TowerSessions {
    pub store: MemoryStore,
    rt: tokio::runtime::Runtime,
}

impl TowerSessions {
    fn run<F: Future>(&self, f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => self.rt.block_on(f),
        }
    }

    fn record() -> Record {
        Record {
            id: Id::default(),
            data: HashMap::new(),
            expiry_date: time::OffsetDateTime::now_utc() + IDLE,
        }
    }
}

fn parse_id(token: &str) -> Option<Id> {
    Id::from_str(token).ok()
}

impl Store for TowerSessions {
    const NAME: &'static str = "tower_sessions";
    fn with_capacity(_n: usize) -> Self {
        Self {
            store: MemoryStore::default(),
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
        }
    }
    fn create(&self) -> String {
        let mut r = Self::record();
        self.run(self.store.create(&mut r)).expect("memory store");
        r.id.to_string()
    }
    #[inline]
    fn validate(&self, token: &str) -> Option<u64> {
        let id = parse_id(token)?;
        // `load` clones the record out of the store's map.
        self.run(self.store.load(&id))
            .expect("memory store")
            .map(|r| r.expiry_date.unix_timestamp() as u64)
    }
    fn update(&self, token: &str) -> bool {
        let Some(id) = parse_id(token) else {
            return false;
        };
        self.run(async {
            let Some(mut r) = self.store.load(&id).await.expect("memory store") else {
                return false;
            };
            let n = r.data.get("n").and_then(|v| v.as_u64()).unwrap_or(0);
            r.data.insert("n".to_owned(), (n + 1).into());
            r.expiry_date = time::OffsetDateTime::now_utc() + IDLE;
            self.store.save(&r).await.expect("memory store");
            true
        })
    }
    fn rotate(&self, token: &str) -> Option<String> {
        self.login_inner(token, None)
    }
    fn login(&self, token: &str, user: u64) -> Option<String> {
        self.login_inner(token, Some(user))
    }
    fn logout(&self, token: &str) -> bool {
        let Some(id) = parse_id(token) else {
            return false;
        };
        // What `Session::delete` does: load to know it existed, then delete.
        self.run(async {
            let found = self.store.load(&id).await.expect("memory store").is_some();
            self.store.delete(&id).await.expect("memory store");
            found
        })
    }
}

impl TowerSessions {
    /// What `Session::cycle_id` + save do: delete the old record, create one
    /// under a fresh id with the same data.
    fn login_inner(&self, token: &str, user: Option<u64>) -> Option<String> {
        let id = parse_id(token)?;
        self.run(async {
            let mut r = self.store.load(&id).await.expect("memory store")?;
            self.store.delete(&id).await.expect("memory store");
            if let Some(u) = user {
                r.data.insert("user".to_owned(), u.into());
            }
            r.id = Id::default();
            self.store.create(&mut r).await.expect("memory store");
            Some(r.id.to_string())
        })
    }
}

/// Label of a size in bench ids: `10k`, `1M`, `10M`.
pub fn size_label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Resident set size in bytes, from `/proc/self/statm` (Linux).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
///
/// The bench machines are shared: wall time counts the time a thread waits
/// for a core, CPU time does not, so single-thread figures stay comparable
/// when other processes load the machine.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // every Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A criterion measurement in thread CPU time (see [`thread_cpu`]).
pub struct ThreadCpu;

impl criterion::measurement::Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, i: Duration) -> Duration {
        thread_cpu().saturating_sub(i)
    }
    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        static WALL: criterion::measurement::WallTime = criterion::measurement::WallTime;
        criterion::measurement::Measurement::formatter(&WALL)
    }
}

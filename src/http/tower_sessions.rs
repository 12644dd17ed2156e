//! [`SesameStore`]: sesame as a [tower-sessions] store, so a tower-sessions
//! app — and an [axum-login] app, which sits on tower-sessions — swaps
//! `MemoryStore` (or `MokaStore`) for sesame with one line:
//!
//! ```
//! use sesame::tower_sessions::SesameStore;
//! use tower_sessions::SessionManagerLayer;
//!
//! let store = SesameStore::default(); // was: MemoryStore::default()
//! let layer = SessionManagerLayer::new(store);
//! # let _ = layer;
//! ```
//!
//! An axum-login app adds `.with_axum_login()` to also get sesame's
//! principal index back: `SesameStore::default().with_axum_login()` (see
//! *Principals*).
//!
//! Built with the feature `tower-sessions` (tower-sessions 0.14,
//! axum-login 0.17).
//!
//! # What the store gives a tower-sessions app
//!
//! - **IDs hashed at rest.** The engine keeps a keyed blake3 digest of
//!   tower-sessions' 128-bit id under its secret key, never the id: a heap
//!   dump or a snapshot yields no cookie that works.
//! - **Bounded memory.** At most [`crate::Builder::max_sessions`] records; at
//!   capacity a new session first reclaims expired ones, then evicts
//!   approximately the least recently seen. `MemoryStore` grows without
//!   bound (and keeps every expired record: it has no deletion task).
//! - **Expiry that frees memory.** A record is never loaded after its
//!   deadline, and the timing wheel's reaper removes it when the deadline
//!   passes (see *Expiry*); [`ExpiredDeletion::delete_expired`] runs the same
//!   pass on demand, though the engine's own reaper thread already does it.
//! - **Snapshots** (feature `snapshot`): `store.sessions().save_snapshot(..)`
//!   and `load_snapshot(..)` keep users logged in across a restart
//!   ([`RecordData`] encodes its data as JSON inside the snapshot).
//! - **Stats and events** of [`crate::Sessions`]: `store.sessions().stats()`.
//!
//! # Principals
//!
//! tower-sessions has no notion of a user; axum-login keeps the user id
//! inside the session's data. [`SesameStore::with_axum_login`] (or
//! [`SesameStore::with_principal`] with your own reader) has the store read
//! it on every create and save and bind the session to it in the engine
//! ([`crate::Sessions::bind_by_id`]). Then:
//!
//! - logged-in sessions are never evicted for room: at capacity only
//!   anonymous ones are, as with sesame's own layer;
//! - a user holds at most [`crate::Builder::max_sessions_per_user`]
//!   sessions (a new login ends the one that logged in longest ago);
//! - [`SesameStore::revoke_user`] ends all of a user's sessions ("log out
//!   everywhere", after a password change) and [`SesameStore::sessions_of`]
//!   lists them (metadata, never ids).
//!
//! Without it, every session is anonymous to the engine: any can be evicted
//! at capacity (least recently seen first), and there is no per-user limit
//! and no "log out everywhere".
//!
//! # Expiry
//!
//! tower-sessions gives each record an `expiry_date` (with its default
//! `Expiry::OnSessionEnd`, two weeks from the last save). The engine also
//! has its own idle timeout (since the last load or save) and absolute
//! timeout (since the session's creation). **The earliest of the three
//! wins.** The engine's defaults (30 minutes idle, 12 hours absolute: NIST
//! SP 800-63B at AAL2) are shorter than tower-sessions' two weeks, so out
//! of the box a session ends after 30 minutes unused: build the
//! [`crate::Sessions`] with longer timeouts if tower-sessions' expiry alone
//! should decide (`Sessions::builder().idle_timeout(..).absolute_timeout(..)`).
//! Time comes from the engine's [`crate::Clock`].
//!
//! # What is kept and what is lost, compared with sesame's own layer
//!
//! | | `sesame::tower` layer | `SesameStore` under tower-sessions |
//! |---|---|---|
//! | IDs | 256 bits, sesame's `SessionToken` | 128 bits, tower-sessions' `Id` (still hashed at rest) |
//! | data | your typed `T`, no serialization | tower-sessions' `HashMap<String, serde_json::Value>`, each value serialized by tower-sessions on `insert` and deserialized on `get` |
//! | update | atomic per session (`update` closures) | last save wins: two concurrent requests of one session each save their whole copy |
//! | rotation on login | `login` rotates in one step; optional grace window for in-flight requests | axum-login's `cycle_id`: tower-sessions deletes the old id and creates a new one; no grace window |
//! | a new user on the same browser | `login` as another principal rotates and resets the data to `T::default()` | axum-login 0.17 cycles the id only when nobody was logged in: bob logging in over alice keeps the id and alice's other session data (have the login handler `logout` first, or `session.flush()`) |
//! | principal | bound by `login` (with rotation): per-user limit, `sessions_of`, `revoke_user` (log out everywhere) | with `with_axum_login`: bound in place whenever the record is created or saved (on login axum-login has cycled the id, so the new id's `create` binds it); per-user limit, `sessions_of`, `revoke_user`. Without: none |
//! | eviction at capacity | anonymous sessions only; logged-in ones are never evicted for room | the same with `with_axum_login`; without it every session is anonymous to the engine and any can be evicted (least recently seen first) |
//! | an ended session | stays ended | stays ended: `save` of a deleted or expired id stores nothing (as tower-sessions' Redis store, `SET .. XX`); the next request gets a new session |
//! | cookie | `__Host-id`, `Secure`, `HttpOnly`, `SameSite=Lax`, `no-store` | tower-sessions' cookie settings (`SessionManagerLayer::with_secure(..)`, …) |
//! | Redis | `sesame::redis::RedisSessions` | not supported: this store is in-process only |
//!
//! [tower-sessions]: https://docs.rs/tower-sessions
//! [axum-login]: https://docs.rs/axum-login

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};

use crate::{ErrorKind, SessionInfo, Sessions};

/// How many ids `create` draws before it gives up: with 128-bit random ids a
/// second draw is already a 2^-128 event, so reaching the limit means the
/// random source is broken.
const CREATE_ATTEMPTS: usize = 8;

/// What sesame keeps of a tower-sessions record: its data and its expiry
/// date, not its id (the engine holds only the id's keyed digest).
///
/// Its serde form (for snapshots) is the data as JSON text and the expiry
/// date as Unix nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordData {
    data: HashMap<String, serde_json::Value>,
    expiry_date: OffsetDateTime,
}

impl RecordData {
    fn of(record: &Record) -> Self {
        Self {
            data: record.data.clone(),
            expiry_date: record.expiry_date,
        }
    }

    /// The record's key-value data.
    pub fn data(&self) -> &HashMap<String, serde_json::Value> {
        &self.data
    }

    /// The record's expiry date, as tower-sessions last saved it.
    pub fn expiry_date(&self) -> OffsetDateTime {
        self.expiry_date
    }
}

impl serde::Serialize for RecordData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        // JSON text: `serde_json::Value` needs a self-describing format,
        // which the snapshot's is not.
        let json = serde_json::to_string(&self.data).map_err(S::Error::custom)?;
        (json, self.expiry_date.unix_timestamp_nanos()).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for RecordData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let (json, nanos): (String, i128) = serde::Deserialize::deserialize(d)?;
        Ok(Self {
            data: serde_json::from_str(&json).map_err(D::Error::custom)?,
            expiry_date: OffsetDateTime::from_unix_timestamp_nanos(nanos)
                .map_err(D::Error::custom)?,
        })
    }
}

/// A tower-sessions [`SessionStore`] on sesame's in-process engine.
///
/// Cloning is cheap; clones share one store. See the [module docs](self)
/// for what it gives and what differs from sesame's own layer.
///
/// ```
/// use std::time::Duration;
/// use sesame::Sessions;
/// use sesame::tower_sessions::SesameStore;
/// use tower_sessions::{Expiry, SessionManagerLayer};
///
/// // Let tower-sessions' expiry decide, within a day of inactivity.
/// let sessions = Sessions::builder()
///     .idle_timeout(Duration::from_secs(24 * 3600))
///     .absolute_timeout(Duration::from_secs(14 * 24 * 3600))
///     .max_sessions(100_000)
///     .build()?;
/// let layer = SessionManagerLayer::new(SesameStore::new(sessions))
///     .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct SesameStore {
    sessions: Sessions<RecordData>,
    principal_of: Option<PrincipalOf>,
}

/// Reads the principal a record's data names.
type PrincipalOf = Arc<dyn Fn(&HashMap<String, serde_json::Value>) -> Option<String> + Send + Sync>;

impl std::fmt::Debug for SesameStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SesameStore")
            .field("sessions", &self.sessions)
            .field("binds_principals", &self.principal_of.is_some())
            .finish()
    }
}

/// The key under which axum-login keeps its data in the session, unless
/// the app set another (`AuthManagerLayerBuilder::with_data_key`).
pub const AXUM_LOGIN_DATA_KEY: &str = "axum-login.data";

/// The principal of a record written by axum-login: the JSON text of the
/// `user_id` it keeps under [`AXUM_LOGIN_DATA_KEY`] (`1` for a numeric id,
/// `"alice"`, quotes included, for a string), or `None` when nobody is
/// logged in. For [`SesameStore::with_principal`];
/// [`SesameStore::with_axum_login`] uses it.
///
/// ```
/// use std::collections::HashMap;
/// use serde_json::json;
/// use sesame::tower_sessions::axum_login_principal;
///
/// let data = HashMap::from([("axum-login.data".to_string(), json!({"user_id": 42, "auth_hash": [1, 2]}))]);
/// assert_eq!(axum_login_principal(&data).as_deref(), Some("42"));
/// let anonymous = HashMap::from([("axum-login.data".to_string(), json!({"user_id": null, "auth_hash": null}))]);
/// assert_eq!(axum_login_principal(&anonymous), None);
/// assert_eq!(axum_login_principal(&HashMap::new()), None);
/// ```
pub fn axum_login_principal(data: &HashMap<String, serde_json::Value>) -> Option<String> {
    match data.get(AXUM_LOGIN_DATA_KEY)?.get("user_id")? {
        serde_json::Value::Null => None,
        id => Some(id.to_string()),
    }
}

impl SesameStore {
    /// A store on `sessions` (its timeouts, capacity, secret key and clock).
    pub fn new(sessions: Sessions<RecordData>) -> Self {
        Self {
            sessions,
            principal_of: None,
        }
    }

    /// Binds each record, whenever it is created or saved, to the principal
    /// `principal_of` reads from its data (`None`: anonymous). This gives a
    /// tower-sessions app back what the engine keeps per principal: logged-in
    /// sessions are never evicted for room (only anonymous ones are), a
    /// per-user limit ([`crate::Builder::max_sessions_per_user`]), the list
    /// of a user's sessions and "log out everywhere"
    /// ([`SesameStore::revoke_user`]). The closure runs on every create and
    /// save; keep it to a map lookup.
    ///
    /// ```
    /// use sesame::tower_sessions::SesameStore;
    /// let store = SesameStore::default()
    ///     .with_principal(|data| data.get("user").and_then(|u| u.as_str()).map(str::to_owned));
    /// # let _ = store;
    /// ```
    pub fn with_principal(
        mut self,
        principal_of: impl Fn(&HashMap<String, serde_json::Value>) -> Option<String>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.principal_of = Some(Arc::new(principal_of));
        self
    }

    /// [`SesameStore::with_principal`] with [`axum_login_principal`]: the
    /// user id axum-login keeps in the session (under the default data key)
    /// is the principal.
    ///
    /// ```
    /// use sesame::tower_sessions::SesameStore;
    /// let store = SesameStore::default().with_axum_login();
    /// // later, when user 42 changes their password:
    /// assert_eq!(store.revoke_user(&42u64), 0);
    /// ```
    pub fn with_axum_login(self) -> Self {
        self.with_principal(axum_login_principal)
    }

    /// Ends every session bound to the user (with [`SesameStore::with_principal`]):
    /// "log out everywhere". `user_id` is written as JSON, as axum-login
    /// stores it (`42u64` → `42`, `"alice"` → `"alice"` with quotes).
    /// Returns how many sessions ended; 0 if the id does not serialize.
    pub fn revoke_user<U: serde::Serialize + ?Sized>(&self, user_id: &U) -> usize {
        serde_json::to_string(user_id).map_or(0, |p| self.sessions.revoke_user(&p))
    }

    /// The live sessions bound to the user, oldest first: metadata, never
    /// ids. `user_id` as for [`SesameStore::revoke_user`].
    pub fn sessions_of<U: serde::Serialize + ?Sized>(
        &self,
        user_id: &U,
    ) -> Vec<SessionInfo<String>> {
        serde_json::to_string(user_id)
            .map_or_else(|_| Vec::new(), |p| self.sessions.sessions_of(&p))
    }

    /// The engine underneath: for stats, events, snapshots and `len`.
    pub fn sessions(&self) -> &Sessions<RecordData> {
        &self.sessions
    }

    /// Binds the session to the principal its data names, if the store
    /// reads principals. A session that ended in between stays ended.
    fn bind(&self, id: &[u8; 16], record: &Record) {
        if let Some(principal_of) = &self.principal_of {
            let _ = self.sessions.bind_by_id(id, principal_of(&record.data));
        }
    }
}

/// The engine's key bytes of a tower-sessions id: its 16 bytes, as in the
/// cookie.
fn id_bytes(id: &Id) -> [u8; 16] {
    id.0.to_le_bytes()
}

fn backend(e: crate::Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for SesameStore {
    /// Stores a new record, under a fresh id if `record.id` is taken.
    ///
    /// # Errors
    ///
    /// `Backend` when the store is full (no session to reclaim or evict).
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_ATTEMPTS {
            let expires = Some(SystemTime::from(record.expiry_date));
            match self.sessions.insert_with_id(
                &id_bytes(&record.id),
                RecordData::of(record),
                expires,
            ) {
                Ok(_) => {
                    self.bind(&id_bytes(&record.id), record);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::IdTaken => record.id = Id::default(),
                Err(e) => return Err(backend(e)),
            }
        }
        Err(backend(ErrorKind::IdTaken.into()))
    }

    /// Replaces the data and expiry date of a live record. A record that
    /// ended (deleted, expired, evicted) stays ended: nothing is stored.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let id = id_bytes(&record.id);
        let stored = self.sessions.update_by_id(&id, |d| {
            d.data.clone_from(&record.data);
            d.expiry_date = record.expiry_date;
        });
        if stored.is_ok() {
            // `NotFound` only if it ended in between: then nothing to do.
            let _ = self
                .sessions
                .set_expiry_by_id(&id, Some(SystemTime::from(record.expiry_date)));
            self.bind(&id, record);
        }
        Ok(())
    }

    /// The live record with this id, or `None` (unknown, ended, or past
    /// its expiry date or the engine's timeouts).
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.sessions.with_by_id(&id_bytes(id), |d| Record {
            id: *id,
            data: d.data.clone(),
            expiry_date: d.expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.sessions.remove_by_id(&id_bytes(id));
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for SesameStore {
    /// Reaps what is due now ([`Sessions::run_pending`]). The engine's
    /// reaper thread already does this every second unless it was built
    /// with `reaper_interval(None)`.
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.sessions.run_pending();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use serde_json::json;
    use std::time::Duration;

    fn store(clock: &ManualClock) -> SesameStore {
        SesameStore::new(
            Sessions::builder()
                .clock(clock.clone())
                .idle_timeout(Duration::from_secs(3600))
                .absolute_timeout(Duration::from_secs(24 * 3600))
                .max_sessions(1000)
                .reaper_interval(None)
                .build()
                .unwrap(),
        )
    }

    /// tower-sessions' expiry dates are wall time; the engine's clock is
    /// manual here, so dates are counted from the engine's wall time.
    fn at(s: &SesameStore, secs: i64) -> OffsetDateTime {
        OffsetDateTime::from(s.sessions.wall_now()) + time::Duration::seconds(secs)
    }

    fn record(id: Id, expiry_date: OffsetDateTime) -> Record {
        Record {
            id,
            data: HashMap::from([("user".to_string(), json!({"id": 1}))]),
            expiry_date,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn create_load_save_load_delete() {
        let clock = ManualClock::new();
        let s = store(&clock);
        block_on(async {
            let mut r = record(Id(42), at(&s, 600));
            s.create(&mut r).await.unwrap();
            assert_eq!(r.id, Id(42), "a free id is kept");
            let loaded = s.load(&r.id).await.unwrap().unwrap();
            assert_eq!(
                (loaded.id, &loaded.data, loaded.expiry_date),
                (r.id, &r.data, r.expiry_date)
            );
            r.data.insert("cart".into(), json!([1, 2]));
            r.expiry_date = at(&s, 1200);
            s.save(&r).await.unwrap();
            let loaded = s.load(&r.id).await.unwrap().unwrap();
            assert_eq!(loaded.data, r.data);
            assert_eq!(loaded.expiry_date, r.expiry_date);
            s.delete(&r.id).await.unwrap();
            assert!(s.load(&r.id).await.unwrap().is_none());
            // Stays ended: a save after the delete (a request in flight) stores nothing.
            s.save(&r).await.unwrap();
            assert!(s.load(&r.id).await.unwrap().is_none());
            assert!(s.sessions.is_empty());
            s.delete(&r.id).await.unwrap(); // deleting twice is fine
        });
    }

    #[test]
    fn an_expired_record_is_not_loaded_and_is_reaped() {
        let clock = ManualClock::new();
        let s = store(&clock);
        block_on(async {
            let mut r = record(Id(7), at(&s, 60));
            s.create(&mut r).await.unwrap();
            clock.advance(Duration::from_secs(59));
            assert!(s.load(&r.id).await.unwrap().is_some());
            clock.advance(Duration::from_secs(1));
            assert!(s.load(&r.id).await.unwrap().is_none(), "at its expiry date");
            // A save cannot bring it back.
            r.expiry_date = at(&s, 600);
            s.save(&r).await.unwrap();
            assert!(s.load(&r.id).await.unwrap().is_none());
            assert_eq!(s.sessions.len(), 1, "held until reaped");
            s.delete_expired().await.unwrap();
            assert_eq!(s.sessions.len(), 0);
        });
    }

    /// A save that moves the expiry date later keeps the record past the
    /// first date; one that moves it earlier ends it sooner.
    #[test]
    fn save_moves_the_expiry_date() {
        let clock = ManualClock::new();
        let s = store(&clock);
        block_on(async {
            let mut r = record(Id(8), at(&s, 60));
            s.create(&mut r).await.unwrap();
            r.expiry_date = at(&s, 120);
            s.save(&r).await.unwrap();
            clock.advance(Duration::from_secs(90));
            assert!(s.load(&r.id).await.unwrap().is_some(), "later date kept");
            r.expiry_date = at(&s, 10);
            s.save(&r).await.unwrap();
            clock.advance(Duration::from_secs(11));
            assert!(s.load(&r.id).await.unwrap().is_none(), "earlier date kept");
        });
    }

    /// `create` with an id a live record holds draws another id; the first
    /// record is untouched.
    #[test]
    fn create_draws_a_new_id_on_collision() {
        let clock = ManualClock::new();
        let s = store(&clock);
        block_on(async {
            let mut first = record(Id(5), at(&s, 600));
            s.create(&mut first).await.unwrap();
            let mut second = record(Id(5), at(&s, 600));
            second.data.insert("who".into(), json!("second"));
            s.create(&mut second).await.unwrap();
            assert_ne!(second.id, Id(5), "the store changed the id");
            assert_eq!(s.load(&Id(5)).await.unwrap().unwrap().data, first.data);
            assert_eq!(s.load(&second.id).await.unwrap().unwrap().data, second.data);
            assert_eq!(s.sessions.len(), 2);
        });
    }

    /// Every i128 is a well-formed id to the store; ids nobody created load
    /// nothing, and the store never panics on them.
    #[test]
    fn unknown_and_extreme_ids_load_nothing() {
        let clock = ManualClock::new();
        let s = store(&clock);
        block_on(async {
            for id in [Id(0), Id(-1), Id(i128::MIN), Id(i128::MAX), Id::default()] {
                assert!(s.load(&id).await.unwrap().is_none());
                s.delete(&id).await.unwrap();
                s.save(&record(id, at(&s, 60))).await.unwrap();
                assert!(s.load(&id).await.unwrap().is_none(), "save does not create");
            }
            let mut r = record(Id(i128::MIN), at(&s, 60));
            s.create(&mut r).await.unwrap();
            assert!(s.load(&Id(i128::MIN)).await.unwrap().is_some());
            // Extreme expiry dates: clamped, not a panic.
            let mut far = record(Id(1), time::PrimitiveDateTime::MAX.assume_utc());
            s.create(&mut far).await.unwrap();
            assert!(
                s.load(&Id(1)).await.unwrap().is_some(),
                "bounded by the engine's timeouts"
            );
            let mut past = record(Id(2), time::PrimitiveDateTime::MIN.assume_utc());
            s.create(&mut past).await.unwrap();
            assert!(s.load(&Id(2)).await.unwrap().is_none());
        });
    }

    /// With a principal reader, create and save keep the engine's binding
    /// in step with the record's data.
    #[test]
    fn records_are_bound_to_the_user_their_data_names() {
        let clock = ManualClock::new();
        let s = store(&clock).with_axum_login();
        let user = |id: serde_json::Value| {
            HashMap::from([(
                AXUM_LOGIN_DATA_KEY.to_string(),
                json!({"user_id": id, "auth_hash": [1, 2, 3]}),
            )])
        };
        block_on(async {
            let mut r = record(Id(1), at(&s, 600));
            r.data = user(json!(7));
            s.create(&mut r).await.unwrap();
            assert_eq!(s.sessions_of(&7u64).len(), 1, "bound on create");
            r.data = user(json!("bob"));
            s.save(&r).await.unwrap();
            assert!(s.sessions_of(&7u64).is_empty());
            assert_eq!(s.sessions_of("bob").len(), 1, "moved on save");
            r.data = user(serde_json::Value::Null);
            s.save(&r).await.unwrap();
            assert!(s.sessions_of("bob").is_empty(), "anonymous again");
            assert_eq!(s.sessions.stats().anonymous, 1);
            r.data = user(json!(7));
            s.save(&r).await.unwrap();
            assert_eq!(s.revoke_user(&7u64), 1);
            assert!(s.load(&Id(1)).await.unwrap().is_none());
            assert_eq!(s.revoke_user(&7u64), 0);
        });
    }

    /// The store holds digests: no id's bytes appear in a snapshot.
    #[cfg(feature = "snapshot")]
    #[test]
    fn a_snapshot_restores_records_and_holds_no_id() {
        let clock = ManualClock::new();
        let key = crate::SecretKey::from_bytes([3; 32]);
        let build = || {
            SesameStore::new(
                Sessions::builder()
                    .clock(clock.clone())
                    .secret_key(key.clone())
                    .reaper_interval(None)
                    .build()
                    .unwrap(),
            )
        };
        let (a, b) = (build(), build());
        block_on(async {
            let id = Id(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
            let mut r = record(id, at(&a, 600));
            a.create(&mut r).await.unwrap();
            let mut bytes = Vec::new();
            a.sessions.write_snapshot(&mut bytes).unwrap();
            assert!(
                !bytes.windows(16).any(|w| w == id_bytes(&id)),
                "no id at rest"
            );
            b.sessions.load_snapshot_bytes(&bytes).unwrap();
            let loaded = b.load(&id).await.unwrap().unwrap();
            assert_eq!((loaded.data, loaded.expiry_date), (r.data, r.expiry_date));
        });
    }
}

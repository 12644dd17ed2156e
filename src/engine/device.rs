//! Device lists: each session's recorded device, and "sign out of all
//! other devices".
//!
//! # Implementation
//!
//! Devices live in a side table beside the entries, sharded by handle like
//! the grace aliases, not in the entry: a session without a device pays
//! no memory for the feature, and an engine that never records one pays a
//! single pointer (the table is allocated by the first
//! [`Sessions::set_device`]). Keyed by the session's handle, which stays
//! across rotation and login, so a device recorded at creation is still
//! there after the login (which records a fresh one over it). Handles are
//! 64 random bits; two live sessions sharing one (as likely as for the
//! grace aliases, which make the same assumption) would share a device
//! entry, a listing detail, never a credential. A session ends once, and
//! its end drops its entry.
//!
//! # Ground rules
//!
//! - A table shard's lock is a leaf: nothing else is taken while it is held.
//! - Every path that ends a session goes through `retire` or
//!   `retire_expired`, which drop the session's device: logout, revocation,
//!   eviction (capacity and per-user), expiry, and the failed hand-over of
//!   a login. A `set_device` that races the end of its session re-checks
//!   liveness after inserting and takes its insert back: whichever of the
//!   two takes the shard lock last sees the other's work, so no device
//!   outlives its session.
//! - Devices are not written to snapshots (personal data; see
//!   [`crate::device`]): a restored session lists `device: None` until its
//!   next login records one.

use super::*;
use crate::Device;
use crate::error::{Error, ErrorKind};
use crate::events::EventKind;
use crate::token::TokenInput;

impl<T, P> Sessions<T, P>
where
    T: Send + 'static,
    P: Principal,
{
    /// The table shard of `handle`, if the table exists.
    fn device_shard(&self, handle: Handle) -> Option<&Mutex<HashMap<Handle, Device>>> {
        let table = self.inner.devices.get()?;
        Some(&table[(handle.as_u64() as usize) & (table.len() - 1)])
    }

    /// Records the device of the session `token` names (replacing one
    /// recorded before), for [`SessionInfo::device`] in
    /// [`Sessions::sessions_of`] and for [`Sessions::device`]. The tower layer
    /// calls this at creation and login when built with `record_devices`.
    ///
    /// The device is kept only beside its session and dropped when the
    /// session ends; it is never logged, sent in events or written to a
    /// snapshot (see [`crate::device`]). A user agent longer than
    /// [`crate::device::MAX_USER_AGENT_BYTES`], or with control characters,
    /// is cleaned as [`Device::with_user_agent`] does.
    ///
    /// **Locking:** one shard read lock, then one device-table leaf lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token.
    ///
    /// ```
    /// use sesame::Device;
    /// let sessions = sesame::Sessions::<()>::new();
    /// let (token, _) = sessions.create(())?;
    /// let token = sessions.login(&token, "alice".to_string())?;
    /// sessions.set_device(&token, Device::new().with_user_agent("curl/8.5.0", 256))?;
    /// let listed = sessions.sessions_of(&"alice".to_string());
    /// let agent = listed[0].device.as_ref().and_then(|d| d.user_agent.as_deref());
    /// assert_eq!(agent, Some("curl/8.5.0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_device(
        &self,
        token: &(impl TokenInput + ?Sized),
        device: Device,
    ) -> Result<(), Error> {
        let Some((entry, _)) = self.find_entry(token) else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let device = device.bounded();
        let handle = entry.handle;
        let table = self.inner.devices.get_or_init(|| {
            (0..self.inner.shards.len())
                .map(|_| CachePadded::new(Mutex::new(HashMap::new())))
                .collect()
        });
        let shard = &table[(handle.as_u64() as usize) & (table.len() - 1)];
        shard.lock().insert(handle, device);
        // The session may have ended since the lookup, its `retire` having
        // found nothing to drop yet: take the insert back (see the ground
        // rules).
        if !entry.is_alive() {
            shard.lock().remove(&handle);
            return Err(Error::new(ErrorKind::NotFound));
        }
        Ok(())
    }

    /// Validates a token and returns its session's recorded device, if any
    /// (the device list, [`Sessions::sessions_of`], has every session's).
    ///
    /// **Locking:** one shard read lock, then one device-table leaf lock.
    ///
    /// ```
    /// use sesame::Device;
    /// let sessions = sesame::Sessions::<()>::new();
    /// let (token, _) = sessions.create(())?;
    /// assert_eq!(sessions.device(&token), None);
    /// sessions.set_device(&token, Device::new().with_user_agent("curl/8.5.0", 256))?;
    /// let agent = sessions.device(&token).and_then(|d| d.user_agent);
    /// assert_eq!(agent.as_deref(), Some("curl/8.5.0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn device(&self, token: &(impl TokenInput + ?Sized)) -> Option<Device> {
        let handle = self.validate(token)?;
        self.device_of(handle)
    }

    /// The device recorded for `handle`, if any.
    pub(super) fn device_of(&self, handle: Handle) -> Option<Device> {
        self.device_shard(handle)?.lock().get(&handle).cloned()
    }

    /// Drops the device of a session that ended.
    pub(super) fn drop_device(&self, handle: Handle) {
        if let Some(shard) = self.device_shard(handle) {
            shard.lock().remove(&handle);
        }
    }

    /// Devices held: for tests of memory bounds; not a stable API.
    #[doc(hidden)]
    pub fn device_slots(&self) -> usize {
        self.inner
            .devices
            .get()
            .map_or(0, |t| t.iter().map(|s| s.lock().len()).sum())
    }

    /// Ends every session of the principal `token` is logged in as, except
    /// the one `token` names ("sign out of all other devices"). Returns how
    /// many ended; each is reported as [`EventKind::Revoked`].
    ///
    /// An anonymous session has no other sessions to end: `Ok(0)`.
    ///
    /// **Locking:** as [`Sessions::revoke`], once per session ended.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no live session answers to the token:
    /// a token that no longer works cannot end anything.
    ///
    /// ```
    /// let sessions = sesame::Sessions::<()>::new();
    /// let alice = "alice".to_string();
    /// let (phone, _) = sessions.create(())?;
    /// let phone = sessions.login(&phone, alice.clone())?;
    /// let (laptop, _) = sessions.create(())?;
    /// let laptop = sessions.login(&laptop, alice.clone())?;
    /// assert_eq!(sessions.logout_others(&laptop)?, 1);
    /// assert!(sessions.validate(&phone).is_none());
    /// assert!(sessions.validate(&laptop).is_some()); // the current one stays
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn logout_others(&self, token: &(impl TokenInput + ?Sized)) -> Result<usize, Error> {
        let Some((entry, _)) = self.find_entry(token) else {
            return Err(Error::new(ErrorKind::NotFound));
        };
        let Some(principal) = entry.principal.read().clone() else {
            return Ok(0);
        };
        let ended = self
            .inner
            .users
            .members(&principal)
            .iter()
            .filter(|e| !Arc::ptr_eq(e, &entry))
            .filter(|e| self.end_member(e, EventKind::Revoked))
            .count();
        Ok(ended)
    }
}

//! A reference model of the engine, for model-based tests and fuzzing.
//!
//! Not part of the public API: compiled only with the hidden `model`
//! feature, for `tests/model_based.rs` and the fuzz targets (which share
//! this code, so a fuzz target stays a few lines): `token_parse`
//! ([`check_token_parse`]), `engine_ops` ([`run_bytes`]) and, with the
//! `cookie` feature, `cookie_header` (`check_cookie_header`) and
//! `proxy_headers` (`check_proxy_headers`) and, with the
//! `snapshot` feature, `snapshot_load` (`check_snapshot_load`).
//!
//! - [`Model`] is the engine written the naive way: a `HashMap` from token
//!   text to session, plain fields for every deadline, a `Vec` per
//!   principal, and the eviction ring as a `VecDeque`. No locks, no wheel,
//!   no digests.
//! - [`Harness`] runs one [`Op`] at a time against a real [`Sessions`]
//!   (built with a [`ManualClock`] and no reaper thread) and against the
//!   model, and panics on the first observable difference: return values,
//!   data, principals, handles, metadata, `len()`, every [`Stats`] counter
//!   and the events emitted.
//!
//! # What is modelled exactly
//!
//! Everything a single thread can observe, including the engine's
//! deterministic choices: which anonymous session capacity eviction picks
//! (with one shard the eviction ring is a single queue, sampled eight at a
//! time), which of a principal's sessions the per-user limit ends (oldest
//! created first, ties in login order), which expired sessions a
//! [`Sessions::run_pending`] reaps (the wheel's one-second ticks: a
//! session's wheel entry fires at the first tick at or after the deadline it
//! was scheduled with, and is re-scheduled if the session was used since),
//! and when the engine reads its clock (its time is the highest reading so
//! far, so a clock moved back and forth between two reads is never seen).
//!
//! # Limits
//!
//! - Configurations with more than one shard must not reach `max_sessions`:
//!   which shard eviction visits first depends on the secret digests.
//!   [`HarnessConfig::check`] enforces it (`max_sessions` at least
//!   [`MAX_OPS`]).
//! - At most [`MAX_OPS`] operations per run: the engine purges stale keys
//!   from a shard's eviction ring only once it holds 1024 keys, which fewer
//!   than 1024 operations cannot reach, so the model need not copy that
//!   housekeeping.
//!
//! [`Sessions`]: crate::Sessions
//! [`Sessions::run_pending`]: crate::Sessions::run_pending
//! [`ManualClock`]: crate::ManualClock
//! [`Stats`]: crate::Stats

#[cfg(feature = "cookie")]
mod cookie;
#[cfg(feature = "cookie")]
mod device;
mod harness;
mod reference;
#[cfg(feature = "snapshot")]
mod snapshot;

#[cfg(feature = "cookie")]
pub use cookie::{KNOWN_TOKEN, check_cookie_header};
#[cfg(feature = "cookie")]
pub use device::check_proxy_headers;
#[cfg(feature = "snapshot")]
pub use snapshot::{check_snapshot_load, frame_snapshot, unframe_snapshot};

pub use harness::{Form, HandleRef, Harness, HarnessConfig, MAX_OPS, Op, TokenRef, run, run_bytes};
pub use reference::{Model, ModelConfig, ModelInfo, Sid, is_canonical_token_text};

use crate::token::{SessionToken, TOKEN_LEN, TOKEN_TEXT_LEN};

/// The `token_parse` fuzz target's checks: on any input, parsing never
/// panics, agrees with an independent reference ([`is_canonical_token_text`]),
/// and whatever parses formats back to the same text and bytes.
///
/// # Panics
///
/// On any disagreement (that is the point).
pub fn check_token_parse(data: &[u8]) {
    let parsed = SessionToken::parse_bytes(data);
    assert_eq!(
        parsed.is_ok(),
        is_canonical_token_text(data),
        "parser and reference disagree on a {}-byte input",
        data.len()
    );
    if let Ok(s) = std::str::from_utf8(data) {
        assert_eq!(SessionToken::parse(s).ok(), parsed.clone().ok());
    }
    match parsed {
        Ok(t) => {
            assert_eq!(t.as_str().as_bytes(), data, "one text form per token");
            let again = SessionToken::from_bytes(*t.as_bytes());
            assert_eq!(again, t);
            assert_eq!(again.as_str(), t.as_str());
            assert_eq!(format!("{t:?}"), "SessionToken(..)");
        }
        Err(e) => {
            // The error is a fixed message per rule: it cannot echo input.
            let other = SessionToken::parse_bytes(b"").err();
            if e.kind() == crate::token::TokenErrorKind::Length {
                assert_eq!(Some(e.to_string()), other.map(|o| o.to_string()));
            }
            let want = if data.len() == TOKEN_TEXT_LEN {
                crate::token::TokenErrorKind::Alphabet
            } else {
                crate::token::TokenErrorKind::Length
            };
            assert_eq!(e.kind(), want);
        }
    }
    // Any 32 bytes format to canonical text that parses back.
    if data.len() >= TOKEN_LEN {
        let mut bytes = [0u8; TOKEN_LEN];
        bytes.copy_from_slice(&data[..TOKEN_LEN]);
        let t = SessionToken::from_bytes(bytes);
        assert!(is_canonical_token_text(t.as_str().as_bytes()));
        assert_eq!(SessionToken::parse(t.as_str()).ok(), Some(t));
    }
}

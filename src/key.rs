//! Keys at rest: the engine stores a blake3 keyed digest of each token, never
//! the token.
//!
//! The stored key of a token (its digest) is
//! `blake3::keyed_hash(secret, token_bytes)`, where the secret is the
//! engine's 32-byte [`SecretKey`]. This is the practice Rack
//! adopted after CVE-2019-16782: a heap dump, a snapshot or a Redis `SCAN`
//! yields digests, and a digest is no use to present as a cookie.
//!
//! # What is and is not constant time
//!
//! The question is what the time of a lookup can tell a remote client about
//! tokens other than the one it presented.
//!
//! Constant time, in the data:
//! - Token and key equality (the digest's `PartialEq`, the token's, and
//!   [`SecretKey`]'s) go through [`subtle::ConstantTimeEq`]: the time does
//!   not depend on where two values first differ.
//! - The digest itself: blake3 is add-rotate-xor on 32-bit words, with no
//!   branch and no table lookup that depends on the token or the key.
//!
//! Not constant time, and why that is safe:
//! - The map lookup branches on the digest: its first eight bytes pick the
//!   bucket, the next eight the shard, probing compares digests. That timing
//!   depends only on the *digest* of the presented token, a keyed
//!   pseudo-random function of it: without the secret an attacker cannot
//!   choose tokens whose digests land near a live session's, and a token that
//!   shares a long prefix with a live token has an unrelated digest. So a
//!   lookup's timing tells them nothing about any other token.
//! - A hit does more work than a miss (it touches the session and returns
//!   it; a miss bumps a counter). That reveals only whether the presented
//!   token is valid, which the response says anyway.
//! - Parsing rejects malformed input early (length, alphabet) and the
//!   base64url codec looks up tables indexed by the characters. Remotely
//!   that reveals facts about the presented input only. A co-resident
//!   attacker who can watch this process's cache lines is out of scope (as
//!   for every base64 codec and hash map).
//!
//! `benches/ct_validate.rs` checks the first two claims the dudect way
//! (Welch's t-test on interleaved timings of 100,000-session lookups):
//! misses that differ from a live token in the first versus the last
//! character, near misses versus random tokens, and token equality that
//! fails on the first versus the last byte. Run it with
//! `cargo bench --bench ct_validate`; it fails if |t| reaches 4.5.

pub(crate) mod file;

use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use subtle::ConstantTimeEq as _;

use crate::token::TOKEN_LEN;

pub use file::{KeyFileError, KeyFileErrorKind};

/// The engine's 32-byte secret: the key of the digest that maps tokens to
/// stored sessions.
///
/// Random per engine unless the builder is given one. Give one when sessions
/// must outlive the process (snapshots) or be shared (several servers). Its
/// `Debug` output is redacted.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Draws a new random key straight from the operating system's random
    /// source (not from a user-space generator whose state a fork copies).
    ///
    /// # Panics
    ///
    /// If the operating system's random source fails.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        crate::rng::os_fill(&mut k);
        Self(k)
    }

    /// Wraps 32 secret bytes (for example read from a `0600` key file).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes, to persist the key. Treat them as a password.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A public fingerprint of this key: safe to store beside data the key
    /// protects, to check later that the same key is in use. It reveals
    /// nothing about the key (a blake3 derivation in its own context).
    pub fn fingerprint(&self) -> [u8; 32] {
        blake3::derive_key("sesame 2026 secret-key fingerprint v1", &self.0)
    }

    /// The stored key for a token under this secret.
    pub(crate) fn digest(&self, token: &[u8; TOKEN_LEN]) -> SessionKey {
        SessionKey(*blake3::keyed_hash(&self.0, token).as_bytes())
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0 = [0; 32];
        std::hint::black_box(&self.0);
    }
}

/// The keyed digest of a token: what the session map is keyed by.
///
/// Equality is constant time. Its hash is its first eight bytes (the digest
/// is already uniformly random, so there is nothing to gain from hashing it
/// again); the shard is picked from the next eight.
#[derive(Clone, Copy)]
pub(crate) struct SessionKey([u8; 32]);

// The bytes go in and out only for the backends that store digests.
#[cfg_attr(not(any(feature = "snapshot", feature = "redis")), allow(dead_code))]
impl SessionKey {
    /// The digest bytes.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a key from digest bytes (for snapshots and remote backends).
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Bits for the shard index, independent of the bits the map hashes on.
    pub(crate) fn shard_bits(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[8..16]);
        u64::from_le_bytes(b)
    }
}

impl PartialEq for SessionKey {
    /// Constant time: the four 64-bit words are XORed and ORed together with
    /// no early exit, and the result goes through an optimisation barrier.
    ///
    /// This runs on every probe of a map lookup, so it is written for speed
    /// as well: word-wise it costs a few cycles, where `subtle`'s byte-wise
    /// `ct_eq` (a barrier per byte) cost ~17% of a reaping pass.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let word = |b: &[u8; 32], i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        let diff = (0..4).fold(0u64, |d, i| d | (word(&self.0, i) ^ word(&other.0, i)));
        std::hint::black_box(diff) == 0
    }
}

impl Eq for SessionKey {}

impl Hash for SessionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(b));
    }
}

impl fmt::Debug for SessionKey {
    /// Prints a short prefix of the digest: enough to correlate log lines,
    /// useless for lookups (it is a digest, not a token).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SessionKey({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The first 16 bytes of a [`SessionKey`]: what the in-process session
/// table stores and compares (issue 15, the cache-line table).
///
/// 128 bits of a keyed PRF: forging a match takes 2^128 online guesses, and
/// two live sessions sharing a tag (odds ~n²/2^129) are ruled out where it
/// matters, at insertion: a tag already present is never overwritten (a
/// creation draws another token, an id is refused as taken). Equality is
/// constant time. The probe start is the first word, the shard the second
/// (the bits [`SessionKey::shard_bits`] uses), the fingerprint byte the top
/// byte of the first word (bits no probe start of a table below 2^56 lines
/// uses).
#[derive(Clone, Copy)]
pub(crate) struct Tag([u64; 2]);

impl Tag {
    /// Rebuilds a tag from its 16 bytes (for tests and snapshots).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn from_bytes(b: [u8; 16]) -> Self {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Self([word(0), word(1)])
    }

    /// The tag as the 32 bytes of a digest field (snapshots store 32): its
    /// 16 bytes, then zeros. A key rebuilt from them has this tag again.
    #[cfg_attr(not(feature = "snapshot"), allow(dead_code))]
    pub(crate) fn to_digest_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&self.0[0].to_le_bytes());
        b[8..16].copy_from_slice(&self.0[1].to_le_bytes());
        b
    }

    /// The two words (for an entry's atomic copy of its tag).
    pub(crate) fn words(self) -> [u64; 2] {
        self.0
    }

    /// A tag from its two words.
    pub(crate) fn from_words(w: [u64; 2]) -> Self {
        Self(w)
    }

    /// Bits for the shard index (bytes 8..16 of the digest).
    #[inline]
    pub(crate) fn shard_bits(self) -> u64 {
        self.0[1]
    }

    /// Where a table's probe for this tag starts (before masking).
    #[inline]
    pub(crate) fn probe_start(self) -> usize {
        self.0[0] as usize
    }

    /// The fingerprint byte kept beside the line: 2..=255.
    #[inline]
    pub(crate) fn fingerprint(self) -> u8 {
        let b = (self.0[0] >> 56) as u8;
        if b < 2 { b + 2 } else { b }
    }
}

impl SessionKey {
    /// The key's first 16 bytes.
    #[inline]
    pub(crate) fn tag(&self) -> Tag {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Tag([word(0), word(1)])
    }
}

impl PartialEq for Tag {
    /// Constant time: both words XORed and ORed, one optimisation barrier.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let diff = (self.0[0] ^ other.0[0]) | (self.0[1] ^ other.0[1]);
        std::hint::black_box(diff) == 0
    }
}

impl Eq for Tag {}

impl fmt::Debug for Tag {
    /// A short prefix, as [`SessionKey`]'s: a digest, never a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({:08x}..)", (self.0[0] as u32).swap_bytes())
    }
}

/// A hasher that passes a `u64` through: for keys that are already uniformly
/// random digests.
#[derive(Default, Clone, Copy)]
#[cfg_attr(not(feature = "snapshot"), allow(dead_code))]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if a key type hashes something other than one u64;
        // fold the bytes in so the hasher stays correct, if slower.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `BuildHasher` for [`IdentityHasher`].
#[cfg_attr(not(feature = "snapshot"), allow(dead_code))]
pub(crate) type BuildIdentity = BuildHasherDefault<IdentityHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_secret_and_token() {
        let a = SecretKey::generate();
        let b = SecretKey::generate();
        let t = [7u8; 32];
        assert_eq!(a.digest(&t), a.digest(&t));
        assert_ne!(a.digest(&t), b.digest(&t));
        assert_ne!(a.digest(&t), a.digest(&[8u8; 32]));
    }

    /// Known answer: the digest is blake3's keyed hash of the token under
    /// the secret, byte for byte. (The old check, digest != token, also
    /// passed for an unkeyed hash, which anyone holding a token list could
    /// compute.) The value is pinned: snapshots and Redis keys store
    /// digests, so changing the function would lose every stored session.
    #[test]
    fn digest_is_the_keyed_blake3_of_the_token() {
        let k = SecretKey::from_bytes([1; 32]);
        let t = [42u8; 32];
        let hex: String = k
            .digest(&t)
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "8935b8f883a0d983f24ec31f509186caf99f13c7b242a2c77f1efa9406a8c1a8"
        );
        assert_ne!(k.digest(&t).as_bytes(), &t);
        assert_ne!(k.digest(&t).as_bytes(), blake3::hash(&t).as_bytes());
    }

    /// A key's tag is its first 16 bytes; written as a digest field and
    /// read back, it is the same tag (what snapshots rely on).
    #[test]
    fn a_tag_is_the_first_sixteen_bytes_and_survives_a_digest_field() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8 * 7 + 1;
        }
        let key = SessionKey::from_bytes(bytes);
        let mut first = [0u8; 16];
        first.copy_from_slice(&bytes[..16]);
        assert_eq!(key.tag(), Tag::from_bytes(first));
        let field = key.tag().to_digest_bytes();
        assert_eq!(field[..16], bytes[..16]);
        assert_eq!(field[16..], [0u8; 16]);
        assert_eq!(SessionKey::from_bytes(field).tag(), key.tag());
        assert_eq!(
            key.tag().shard_bits(),
            key.shard_bits(),
            "same shard as before"
        );
        assert!((2..=255).contains(&key.tag().fingerprint()));
    }

    #[test]
    fn tag_equality_sees_every_byte() {
        let a = Tag::from_bytes([9; 16]);
        for i in 0..16 {
            let mut b = [9u8; 16];
            b[i] ^= 0x80;
            assert_ne!(a, Tag::from_bytes(b), "byte {i}");
        }
        assert!(
            !format!("{a:?}").contains("0909090909"),
            "short prefix only"
        );
    }

    #[test]
    fn session_key_equality_sees_every_byte() {
        let a = SessionKey::from_bytes([9; 32]);
        assert_eq!(a, SessionKey::from_bytes([9; 32]));
        for i in 0..32 {
            let mut b = [9u8; 32];
            b[i] ^= 0x80;
            assert_ne!(a, SessionKey::from_bytes(b), "byte {i} ignored");
        }
    }

    #[test]
    fn secret_debug_redacts() {
        let k = SecretKey::from_bytes([0xAB; 32]);
        let dbg = format!("{k:?}");
        assert_eq!(dbg, "SecretKey(..)");
    }

    #[test]
    fn fingerprint_differs_from_key_and_between_keys() {
        let k = SecretKey::from_bytes([1; 32]);
        assert_ne!(&k.fingerprint(), k.as_bytes());
        assert_ne!(
            k.fingerprint(),
            SecretKey::from_bytes([2; 32]).fingerprint()
        );
    }
}

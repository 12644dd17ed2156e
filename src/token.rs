//! Session tokens: 256 bits from a CSPRNG, carried as 43 characters of
//! unpadded base64url.
//!
//! A [`SessionToken`] is the bearer secret a client presents. It never
//! appears in `Debug` output, and its text is reachable only through the
//! explicit [`SessionToken::as_str`]. The engine never stores it: it keeps
//! only a keyed digest (see [`crate::key`]).
//!
//! Parsing is strict: exactly [`TOKEN_TEXT_LEN`] characters from the
//! base64url alphabet, with the two spare bits of the last character zero, so
//! each token has exactly one text form. Parsing allocates nothing and cannot
//! panic on any input.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

/// Length of a token in bytes (256 bits, as OWASP's session management cheat
/// sheet asks for at least 64 bits of entropy; we take four times that).
pub const TOKEN_LEN: usize = 32;

/// Length of a token's text form: `ceil(32 * 8 / 6)` base64url characters, no padding.
pub const TOKEN_TEXT_LEN: usize = 43;

const _: () = assert!(TOKEN_TEXT_LEN == (TOKEN_LEN * 8).div_ceil(6));

/// A session token: 32 random bytes and their base64url text.
///
/// # Examples
///
/// ```
/// use sesame::SessionToken;
///
/// let token = SessionToken::generate();
/// assert_eq!(token.as_str().len(), 43);
/// let parsed = SessionToken::parse(token.as_str())?;
/// assert_eq!(parsed, token);
/// assert_eq!(format!("{token:?}"), "SessionToken(..)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SessionToken {
    bytes: [u8; TOKEN_LEN],
    text: [u8; TOKEN_TEXT_LEN],
}

impl SessionToken {
    /// Draws a new token from the engine's thread-local CSPRNG: ChaCha12
    /// seeded from the operating system, reseeded after 64 KiB and in a
    /// forked child before its first draw, so a parent and its children
    /// never draw the same token.
    ///
    /// # Panics
    ///
    /// If the operating system's random source fails when a reseed is due
    /// (as `rand::rng()` does).
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_LEN];
        crate::rng::fill(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// A token with chosen bytes, for tests, benches and fuzzing only (hidden
    /// from the docs, not part of the API): a token that is not CSPRNG
    /// output can be guessed. Use [`SessionToken::generate`].
    #[doc(hidden)]
    pub fn from_bytes_for_tests(bytes: [u8; TOKEN_LEN]) -> Self {
        Self::from_bytes(bytes)
    }

    /// Builds a token from raw bytes: CSPRNG output or a parsed token.
    pub(crate) fn from_bytes(bytes: [u8; TOKEN_LEN]) -> Self {
        let mut text = [0u8; TOKEN_TEXT_LEN];
        let written = URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut text)
            .unwrap_or_default();
        debug_assert_eq!(written, TOKEN_TEXT_LEN, "32 bytes encode to 43 characters");
        Self { bytes, text }
    }

    /// Parses the text form strictly.
    ///
    /// # Errors
    ///
    /// [`TokenError`] when the input is not exactly 43 base64url characters
    /// in canonical form. The error says which rule failed, never the input.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        Self::parse_bytes(text.as_bytes())
    }

    /// Parses the text form from raw bytes (for example a header value that
    /// may not be UTF-8). Same rules as [`SessionToken::parse`].
    ///
    /// # Errors
    ///
    /// See [`SessionToken::parse`].
    pub fn parse_bytes(text: &[u8]) -> Result<Self, TokenError> {
        decode(text).map(Self::from_bytes)
    }

    /// The token's text form, for a `Set-Cookie` header or an API response.
    ///
    /// This is the only way to the text: treat what it returns as a password.
    pub fn as_str(&self) -> &str {
        // The text is base64url output: ASCII by construction.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.bytes
    }
}

/// The base64url alphabet's values by byte; `INVALID` elsewhere.
const DECODE: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};
/// Marks a byte outside the alphabet: any value with a bit above the low
/// six set.
const INVALID: u8 = 0xFF;

/// Decodes the strict text form into 32 bytes without allocating.
///
/// Exactly 43 base64url characters, no padding, and the last character's
/// two unused bits zero, so every token has one text form. Written for the
/// one length it accepts (the validate path's decode, measured at ~19 ns
/// of a 144 ns hit through the `base64` crate's general decoder): a table
/// lookup per character and no branch on the content, so it takes the
/// same time for every input of the right length. `tests::decode_agrees_
/// with_the_base64_crate` checks it against `base64`'s strict decoder,
/// which still encodes.
pub(crate) fn decode(text: &[u8]) -> Result<[u8; TOKEN_LEN], TokenError> {
    let Ok(text) = <&[u8; TOKEN_TEXT_LEN]>::try_from(text) else {
        return Err(TokenError {
            kind: TokenErrorKind::Length,
        });
    };
    let v = |i: usize| u32::from(DECODE[usize::from(text[i])]);
    let mut bytes = [0u8; TOKEN_LEN];
    let mut bad = 0u32;
    // Ten groups of four characters: 30 bytes.
    for g in 0..10 {
        let (a, b, c, d) = (v(4 * g), v(4 * g + 1), v(4 * g + 2), v(4 * g + 3));
        bad |= a | b | c | d;
        let n = (a << 18) | (b << 12) | (c << 6) | d;
        bytes[3 * g] = (n >> 16) as u8;
        bytes[3 * g + 1] = (n >> 8) as u8;
        bytes[3 * g + 2] = n as u8;
    }
    // Three characters: 18 bits, two bytes and two bits that must be zero.
    let (a, b, c) = (v(40), v(41), v(42));
    bad |= a | b | c;
    let n = (a << 12) | (b << 6) | c;
    bytes[30] = (n >> 10) as u8;
    bytes[31] = (n >> 2) as u8;
    if bad & !0x3F != 0 || n & 0b11 != 0 {
        return Err(TokenError {
            kind: TokenErrorKind::Alphabet,
        });
    }
    Ok(bytes)
}

impl PartialEq for SessionToken {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for SessionToken {}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

impl Drop for SessionToken {
    fn drop(&mut self) {
        // Best effort: do not leave the secret in freed memory.
        self.bytes = [0; TOKEN_LEN];
        self.text = [0; TOKEN_TEXT_LEN];
        std::hint::black_box(&self.bytes);
        std::hint::black_box(&self.text);
    }
}

/// Anything the engine accepts as a presented token: a `str`, a `String`, a
/// `[u8]` (raw header bytes) or a parsed [`SessionToken`].
///
/// This trait is sealed.
pub trait TokenInput: sealed::Sealed {
    /// The 32 token bytes, or `None` when the input is not a well-formed token.
    #[doc(hidden)]
    fn token_bytes(&self) -> Option<[u8; TOKEN_LEN]>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl Sealed for [u8] {}
    impl Sealed for super::SessionToken {}
    impl<T: Sealed + ?Sized> Sealed for &T {}
}

impl TokenInput for str {
    fn token_bytes(&self) -> Option<[u8; TOKEN_LEN]> {
        decode(self.as_bytes()).ok()
    }
}

impl TokenInput for String {
    fn token_bytes(&self) -> Option<[u8; TOKEN_LEN]> {
        decode(self.as_bytes()).ok()
    }
}

impl TokenInput for [u8] {
    fn token_bytes(&self) -> Option<[u8; TOKEN_LEN]> {
        decode(self).ok()
    }
}

impl TokenInput for SessionToken {
    fn token_bytes(&self) -> Option<[u8; TOKEN_LEN]> {
        Some(self.bytes)
    }
}

impl<T: TokenInput + ?Sized> TokenInput for &T {
    fn token_bytes(&self) -> Option<[u8; TOKEN_LEN]> {
        (**self).token_bytes()
    }
}

/// A presented token is not in the strict text form.
///
/// The error names the rule that failed and never carries the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenError {
    kind: TokenErrorKind,
}

impl TokenError {
    /// Which rule the input broke.
    pub fn kind(&self) -> TokenErrorKind {
        self.kind
    }
}

/// The rule a malformed token broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenErrorKind {
    /// Not exactly 43 bytes long.
    Length,
    /// A character outside the base64url alphabet, or non-canonical trailing bits.
    Alphabet,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TokenErrorKind::Length => write!(
                f,
                "malformed session token: expected {TOKEN_TEXT_LEN} characters"
            ),
            TokenErrorKind::Alphabet => {
                f.write_str("malformed session token: expected canonical unpadded base64url")
            }
        }
    }
}

impl std::error::Error for TokenError {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    fn crate_decode(text: &[u8]) -> Option<[u8; TOKEN_LEN]> {
        let mut out = [0u8; TOKEN_LEN];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
            Ok(TOKEN_LEN) if text.len() == TOKEN_TEXT_LEN => Some(out),
            _ => None,
        }
    }

    proptest! {
        /// The dedicated decoder accepts exactly what the `base64` crate's
        /// strict decoder accepts, with the same bytes: random tokens,
        /// random 43-byte strings over the alphabet and a few other bytes
        /// (padding, `+`, `/`, high bytes), each position's last bits.
        #[test]
        fn decode_agrees_with_the_base64_crate(
            bytes in proptest::array::uniform32(any::<u8>()),
            noise in proptest::collection::vec(
                prop_oneof![
                    8 => proptest::sample::select(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()
                    ),
                    1 => proptest::sample::select(b"=+/ .\0\xff\x80".to_vec()),
                ],
                TOKEN_TEXT_LEN,
            ),
        ) {
            let token = SessionToken::from_bytes(bytes);
            prop_assert_eq!(decode(token.as_str().as_bytes()).ok(), Some(bytes));
            prop_assert_eq!(decode(&noise).ok(), crate_decode(&noise));
        }
    }

    #[test]
    fn every_last_character_is_judged_as_the_base64_crate_does() {
        let mut text = *b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        for c in 0..=255u8 {
            text[42] = c;
            assert_eq!(decode(&text).ok(), crate_decode(&text), "last byte {c}");
            text[0] = c;
            assert_eq!(decode(&text).ok(), crate_decode(&text), "first byte {c}");
            text[0] = b'A';
        }
    }

    use super::*;

    #[test]
    fn round_trips_through_text() {
        for _ in 0..1000 {
            let t = SessionToken::generate();
            assert_eq!(SessionToken::parse(t.as_str()).unwrap(), t);
        }
    }

    #[test]
    fn rejects_wrong_length() {
        let t = SessionToken::generate();
        let s = t.as_str();
        assert_eq!(
            SessionToken::parse(&s[..42]).unwrap_err().kind(),
            TokenErrorKind::Length
        );
        assert_eq!(
            SessionToken::parse(&format!("{s}A")).unwrap_err().kind(),
            TokenErrorKind::Length
        );
        assert!(SessionToken::parse("").is_err());
    }

    #[test]
    fn rejects_foreign_alphabet_and_padding() {
        let good = SessionToken::generate().as_str().to_owned();
        for bad in ['+', '/', '=', ' ', '.', '\0'] {
            let mut s = good.clone().into_bytes();
            s[10] = bad as u8;
            assert_eq!(
                SessionToken::parse_bytes(&s).unwrap_err().kind(),
                TokenErrorKind::Alphabet
            );
        }
        // A multi-byte character of the right byte length.
        let s = format!("{}é", &good[..41]);
        assert_eq!(s.len(), 43);
        assert!(SessionToken::parse(&s).is_err());
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // 'A' encodes 000000; the last char carries 4 data bits and 2 spare bits.
        let zero = SessionToken::from_bytes([0; 32]);
        assert!(zero.as_str().ends_with('A'));
        let mut s = zero.as_str().to_owned().into_bytes();
        *s.last_mut().unwrap() = b'B'; // 000001: a spare bit set
        assert!(SessionToken::parse_bytes(&s).is_err());
    }

    #[test]
    fn debug_redacts() {
        let t = SessionToken::generate();
        let dbg = format!("{t:?} {t:#?}");
        assert!(!dbg.contains(t.as_str()));
        assert_eq!(format!("{t:?}"), "SessionToken(..)");
    }

    #[test]
    fn error_display_never_echoes_input() {
        let input = "x".repeat(43);
        let e = SessionToken::parse(&input).unwrap_err();
        assert!(!e.to_string().contains(&input));
        assert!(!format!("{e:?}").contains(&input));
    }
}

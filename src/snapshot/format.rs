//! The file format, byte by byte: pure encoding and decoding, no engine, no
//! files. See the [module docs](super) for the layout.

use std::io::{self, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{SnapshotError, SnapshotErrorKind as K};
use crate::key::SecretKey;

/// First eight bytes of every snapshot.
pub(crate) const MAGIC: [u8; 8] = *b"SESAMEsn";
/// Eight bytes just before the checksum: a file cut short lacks them.
pub(crate) const END_MARKER: [u8; 8] = *b"SESAMEnd";
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Magic 8, version 4, flags 4, fingerprint 32, saved-at 8, idle 8, absolute 8.
pub(crate) const HEADER_LEN: usize = 72;
/// Count 8, end marker 8, checksum 32.
pub(crate) const FOOTER_LEN: usize = 48;
/// Digest 32, handle 8, five times 8, flags 1, two lengths 4 each.
pub(crate) const ENTRY_FIXED_LEN: usize = 32 + 8 + 5 * 8 + 1 + 4 + 4;
/// Context of the blake3 key derivation that turns the secret key into the
/// checksum key.
pub(crate) const MAC_CONTEXT: &str = "sesame 2026 snapshot v1 checksum key";
/// Entry flag: a principal follows.
const HAS_PRINCIPAL: u8 = 1;

const _: () = assert!(ENTRY_FIXED_LEN == 89);
const _: () = assert!(HEADER_LEN == 8 + 4 + 4 + 32 + 3 * 8);

/// The key of the snapshot checksum: derived from the secret, so only a
/// holder of the secret can write a file that loads.
pub(crate) fn mac_key(secret: &SecretKey) -> [u8; 32] {
    blake3::derive_key(MAC_CONTEXT, secret.as_bytes())
}

/// What the header says besides magic, version and fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Unix ms when the save started.
    pub(crate) saved_at: u64,
    /// The saving engine's idle timeout, ms.
    pub(crate) idle_ms: u64,
    /// The saving engine's absolute timeout, ms.
    pub(crate) absolute_ms: u64,
}

pub(crate) fn encode_header(fingerprint: &[u8; 32], h: &Header) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    // 12..16: flags, zero in version 1.
    out[16..48].copy_from_slice(fingerprint);
    out[48..56].copy_from_slice(&h.saved_at.to_le_bytes());
    out[56..64].copy_from_slice(&h.idle_ms.to_le_bytes());
    out[64..72].copy_from_slice(&h.absolute_ms.to_le_bytes());
    out
}

/// One session's times, all in unix ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Times {
    pub(crate) created: u64,
    pub(crate) last_seen: u64,
    pub(crate) issued: u64,
    pub(crate) idle_deadline: u64,
    pub(crate) abs_deadline: u64,
}

/// Appends one entry to `buf`. On error `buf` may hold a partial entry; the
/// caller abandons the save.
pub(crate) fn encode_entry<T, P>(
    buf: &mut Vec<u8>,
    digest: &[u8; 32],
    handle: u64,
    times: &Times,
    principal: Option<&P>,
    data: &T,
) -> Result<(), SnapshotError>
where
    T: Serialize + ?Sized,
    P: Serialize,
{
    buf.extend_from_slice(digest);
    for v in [
        handle,
        times.created,
        times.last_seen,
        times.issued,
        times.idle_deadline,
        times.abs_deadline,
    ] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    match principal {
        Some(p) => {
            buf.push(HAS_PRINCIPAL);
            encode_field(buf, p)?;
        }
        None => {
            buf.push(0);
            buf.extend_from_slice(&0u32.to_le_bytes());
        }
    }
    encode_field(buf, data)
}

/// A `u32` little-endian length, then the postcard encoding of `value`.
fn encode_field<V: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &V) -> Result<(), SnapshotError> {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    postcard::to_io(value, &mut *buf).map_err(|_| SnapshotError::new(K::Encode))?;
    let len = u32::try_from(buf.len() - at - 4).map_err(|_| SnapshotError::new(K::Encode))?;
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// A writer that feeds everything it writes to the keyed checksum.
pub(crate) struct MacWriter<W> {
    inner: W,
    mac: blake3::Hasher,
}

impl<W: Write> MacWriter<W> {
    pub(crate) fn new(inner: W, key: &[u8; 32]) -> Self {
        Self {
            inner,
            mac: blake3::Hasher::new_keyed(key),
        }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.mac.update(bytes);
        self.inner.write_all(bytes)
    }

    /// Writes the footer (count, end marker, checksum) and returns the inner writer.
    pub(crate) fn finish(mut self, count: u64) -> io::Result<W> {
        self.put(&count.to_le_bytes())?;
        self.put(&END_MARKER)?;
        let sum = self.mac.finalize();
        self.inner.write_all(sum.as_bytes())?;
        Ok(self.inner)
    }
}

/// A verified snapshot, ready to be decoded entry by entry.
pub(crate) struct Opened<'a> {
    pub(crate) header: Header,
    /// Entries the footer announces (bounded by what fits in the body).
    pub(crate) count: u64,
    body: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Checks a whole file before anything in it is decoded: magic, version,
/// completeness, key fingerprint, keyed checksum, then the header's flags
/// and the entry count against the body's size.
///
/// # Errors
///
/// One [`SnapshotError`] kind per failed check, in that order.
pub(crate) fn open<'a>(bytes: &'a [u8], secret: &SecretKey) -> Result<Opened<'a>, SnapshotError> {
    let err = |k| Err(SnapshotError::new(k));
    if bytes.len() < MAGIC.len() {
        return if MAGIC.starts_with(bytes) {
            err(K::Truncated)
        } else {
            err(K::BadMagic)
        };
    }
    if bytes[..8] != MAGIC {
        return err(K::BadMagic);
    }
    if bytes.len() < 12 {
        return err(K::Truncated);
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(SnapshotError::version(version));
    }
    if bytes.len() < HEADER_LEN + FOOTER_LEN {
        return err(K::Truncated);
    }
    let mac_at = bytes.len() - 32;
    if bytes[mac_at - 8..mac_at] != END_MARKER {
        return err(K::Truncated);
    }
    let fingerprint: &[u8] = &bytes[16..48];
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        fingerprint,
        &secret.fingerprint()[..],
    )) {
        return err(K::ForeignKey);
    }
    let sum = blake3::keyed_hash(&mac_key(secret), &bytes[..mac_at]);
    // `blake3::Hash` compares in constant time.
    let stored =
        <[u8; 32]>::try_from(&bytes[mac_at..]).map_err(|_| SnapshotError::new(K::Truncated))?;
    if sum != blake3::Hash::from_bytes(stored) {
        return err(K::Checksum);
    }
    if u32_at(bytes, 12) != 0 {
        return err(K::Corrupt);
    }
    let header = Header {
        saved_at: u64_at(bytes, 48),
        idle_ms: u64_at(bytes, 56),
        absolute_ms: u64_at(bytes, 64),
    };
    let count_at = bytes.len() - FOOTER_LEN;
    let count = u64_at(bytes, count_at);
    let body = &bytes[HEADER_LEN..count_at];
    // Every entry takes at least its fixed part: a count that cannot fit is
    // forged, whatever it claims (2^60 included). Nothing is allocated by it.
    if count > (body.len() / ENTRY_FIXED_LEN) as u64 {
        return err(K::Corrupt);
    }
    Ok(Opened {
        header,
        count,
        body,
    })
}

/// One entry as stored, its principal and data still encoded.
#[derive(Debug)]
pub(crate) struct RawEntry<'a> {
    pub(crate) digest: [u8; 32],
    pub(crate) handle: u64,
    pub(crate) times: Times,
    pub(crate) principal: Option<&'a [u8]>,
    pub(crate) data: &'a [u8],
}

impl<'a> Opened<'a> {
    /// Splits the body into exactly `count` entries, handing each to `f` in
    /// file order. Stops at the first error, `f`'s or the format's.
    ///
    /// # Errors
    ///
    /// [`K::Corrupt`] when a length runs past the body, a flag is unknown,
    /// or bytes remain after the last entry; or what `f` returns.
    pub(crate) fn for_each_entry(
        &self,
        mut f: impl FnMut(RawEntry<'a>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let corrupt = || SnapshotError::new(K::Corrupt);
        let mut rest: &'a [u8] = self.body;
        for _ in 0..self.count {
            if rest.len() < ENTRY_FIXED_LEN {
                return Err(corrupt());
            }
            let mut digest = [0u8; 32];
            digest.copy_from_slice(&rest[..32]);
            let handle = u64_at(rest, 32);
            let times = Times {
                created: u64_at(rest, 40),
                last_seen: u64_at(rest, 48),
                issued: u64_at(rest, 56),
                idle_deadline: u64_at(rest, 64),
                abs_deadline: u64_at(rest, 72),
            };
            let flags = rest[80];
            if flags & !HAS_PRINCIPAL != 0 {
                return Err(corrupt());
            }
            rest = &rest[81..];
            let principal = take_field(&mut rest)?;
            let principal = if flags & HAS_PRINCIPAL != 0 {
                Some(principal)
            } else if principal.is_empty() {
                None
            } else {
                return Err(corrupt());
            };
            let data = take_field(&mut rest)?;
            f(RawEntry {
                digest,
                handle,
                times,
                principal,
                data,
            })?;
        }
        if !rest.is_empty() {
            return Err(corrupt());
        }
        Ok(())
    }
}

/// A `u32` length then that many bytes, checked against what remains
/// before anything is taken.
fn take_field<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], SnapshotError> {
    let corrupt = || SnapshotError::new(K::Corrupt);
    if rest.len() < 4 {
        return Err(corrupt());
    }
    let len = usize::try_from(u32_at(rest, 0)).map_err(|_| corrupt())?;
    let after = &rest[4..];
    if len > after.len() {
        return Err(corrupt());
    }
    let (field, tail) = after.split_at(len);
    *rest = tail;
    Ok(field)
}

/// Decodes one field; all its bytes must be used.
///
/// postcard bounds every length it reads by the bytes left in `bytes`, so a
/// hostile field allocates at most serde's cautious pre-allocation.
pub(crate) fn decode_field<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, SnapshotError> {
    match postcard::take_from_bytes::<V>(bytes) {
        Ok((v, [])) => Ok(v),
        _ => Err(SnapshotError::new(K::Decode)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secret: &SecretKey, entries: &[(u64, Option<&str>, u32)]) -> Vec<u8> {
        let h = Header {
            saved_at: 1,
            idle_ms: 2,
            absolute_ms: 3,
        };
        let mut w = MacWriter::new(Vec::new(), &mac_key(secret));
        w.put(&encode_header(&secret.fingerprint(), &h)).unwrap();
        let mut buf = Vec::new();
        for (i, (handle, p, d)) in entries.iter().enumerate() {
            let t = Times {
                created: 10,
                last_seen: 11,
                issued: 12,
                idle_deadline: 13,
                abs_deadline: 14,
            };
            encode_entry(&mut buf, &[i as u8; 32], *handle, &t, p.as_ref(), d).unwrap();
        }
        w.put(&buf).unwrap();
        w.finish(entries.len() as u64).unwrap()
    }

    #[test]
    fn encoded_file_opens_and_splits_back() {
        let k = SecretKey::from_bytes([9; 32]);
        let bytes = sample(&k, &[(5, Some("alice"), 7), (6, None, 8)]);
        let o = open(&bytes, &k).unwrap();
        assert_eq!(o.header.idle_ms, 2);
        let mut e = Vec::new();
        o.for_each_entry(|r| {
            e.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].handle, 5);
        assert_eq!(e[1].digest, [1; 32]);
        assert_eq!(e[0].times.abs_deadline, 14);
        assert_eq!(
            decode_field::<String>(e[0].principal.unwrap()).unwrap(),
            "alice"
        );
        assert!(e[1].principal.is_none());
        assert_eq!(decode_field::<u32>(e[1].data).unwrap(), 8);
    }

    #[test]
    fn empty_snapshot_is_header_and_footer() {
        let k = SecretKey::from_bytes([9; 32]);
        let bytes = sample(&k, &[]);
        assert_eq!(bytes.len(), HEADER_LEN + FOOTER_LEN);
        let mut n = 0;
        open(&bytes, &k)
            .unwrap()
            .for_each_entry(|_| {
                n += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn field_with_trailing_bytes_does_not_decode() {
        assert_eq!(decode_field::<u8>(&[1, 2]).unwrap_err().kind(), K::Decode);
    }

    #[test]
    fn length_beyond_rest_is_corrupt_not_a_panic() {
        let mut rest: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2];
        assert_eq!(take_field(&mut rest).unwrap_err().kind(), K::Corrupt);
    }
}

//! The file format, byte by byte: pure encoding and decoding, no engine, no
//! files. See the [module docs](super) for the layout.

use std::io::{self, Write};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{SnapshotError, SnapshotErrorKind as K};
use crate::key::SecretKey;

/// First eight bytes of every snapshot.
pub(crate) const MAGIC: [u8; 8] = *b"SESAMEsn";
/// Eight bytes closing the plaintext, after the entry count.
pub(crate) const END_MARKER: [u8; 8] = *b"SESAMEnd";
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 2;
/// Magic 8, version 4, flags 4, fingerprint 32, generation 8, saved-at 8,
/// idle 8, absolute 8, nonce prefix 16.
pub(crate) const HEADER_LEN: usize = 96;
/// Count 8, end marker 8: the plaintext's last bytes.
pub(crate) const TRAILER_LEN: usize = 16;
/// The Poly1305 tag after each chunk.
pub(crate) const TAG_LEN: usize = 16;
/// Plaintext bytes per encrypted chunk (the last one may be shorter): the
/// most a save buffers, and the unit a damaged file is refused in.
pub(crate) const CHUNK: usize = 64 << 10; // 64 KiB
/// Digest 32, handle 8, five times 8, flags 1, two lengths 4 each.
pub(crate) const ENTRY_FIXED_LEN: usize = 32 + 8 + 5 * 8 + 1 + 4 + 4;
/// Context of the blake3 key derivation that turns the secret key into the
/// snapshot's encryption key (distinct from every other derived key).
pub(crate) const ENCRYPTION_CONTEXT: &str = "sesame 2026 snapshot v2 encryption key";
/// Entry flag: a principal follows.
const HAS_PRINCIPAL: u8 = 1;

const _: () = assert!(ENTRY_FIXED_LEN == 89);
const _: () = assert!(HEADER_LEN == 8 + 4 + 4 + 32 + 4 * 8 + 16);
const _: () = assert!(CHUNK <= u32::MAX as usize);

/// The snapshot cipher: XChaCha20-Poly1305 under a key derived from the
/// secret, so only a holder of the secret can read or write a file that
/// loads.
pub(crate) fn cipher(secret: &SecretKey) -> XChaCha20Poly1305 {
    let key = blake3::derive_key(ENCRYPTION_CONTEXT, secret.as_bytes());
    XChaCha20Poly1305::new(&key.into())
}

/// Chunk `index`'s nonce: the file's random 16-byte prefix, then the index
/// (little-endian). Prefixes are random per file: 2^64 files before a
/// repeat is likely, and each chunk of a file has its own index.
fn nonce(prefix: &[u8; 16], index: u64) -> XNonce {
    let mut n = [0u8; 24];
    n[..16].copy_from_slice(prefix);
    n[16..].copy_from_slice(&index.to_le_bytes());
    n.into()
}

/// Associated data of a chunk: the whole header, then 1 for the last chunk
/// and 0 for the others (so a file cut at a chunk boundary is refused).
fn aad(header: &[u8; HEADER_LEN], last: bool) -> [u8; HEADER_LEN + 1] {
    let mut a = [0u8; HEADER_LEN + 1];
    a[..HEADER_LEN].copy_from_slice(header);
    a[HEADER_LEN] = u8::from(last);
    a
}

/// What the header says besides magic, version, fingerprint and nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The save's generation: a store refuses a file older than it recorded.
    pub(crate) generation: u64,
    /// Unix ms when the save started.
    pub(crate) saved_at: u64,
    /// The saving engine's idle timeout, ms.
    pub(crate) idle_ms: u64,
    /// The saving engine's absolute timeout, ms.
    pub(crate) absolute_ms: u64,
}

pub(crate) fn encode_header(
    fingerprint: &[u8; 32],
    h: &Header,
    nonce_prefix: &[u8; 16],
) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    // 12..16: flags, zero in version 2.
    out[16..48].copy_from_slice(fingerprint);
    out[48..56].copy_from_slice(&h.generation.to_le_bytes());
    out[56..64].copy_from_slice(&h.saved_at.to_le_bytes());
    out[64..72].copy_from_slice(&h.idle_ms.to_le_bytes());
    out[72..80].copy_from_slice(&h.absolute_ms.to_le_bytes());
    out[80..96].copy_from_slice(nonce_prefix);
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

/// A writer that encrypts what it is given in chunks of [`CHUNK`] bytes,
/// each sealed with its tag. Holds one chunk back so that the last one can
/// be marked last.
pub(crate) struct SealWriter<W> {
    inner: W,
    cipher: XChaCha20Poly1305,
    header: [u8; HEADER_LEN],
    prefix: [u8; 16],
    index: u64,
    buf: Vec<u8>,
}

impl<W: Write> SealWriter<W> {
    /// Writes `header` in clear and returns the writer of the body.
    pub(crate) fn new(
        mut inner: W,
        cipher: XChaCha20Poly1305,
        header: [u8; HEADER_LEN],
    ) -> io::Result<Self> {
        inner.write_all(&header)?;
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&header[80..96]);
        Ok(Self {
            inner,
            cipher,
            header,
            prefix,
            index: 0,
            buf: Vec::with_capacity(CHUNK),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &nonce(&self.prefix, self.index),
                &aad(&self.header, last),
                self.buf.as_mut_slice().into(),
            )
            .map_err(|_| io::Error::other("snapshot chunk too long to encrypt"))?;
        self.inner.write_all(&self.buf)?;
        self.inner.write_all(tag.as_slice())?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    pub(crate) fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.buf.len() == CHUNK {
                // More follows: this chunk is not the last.
                self.seal(false)?;
            }
            let n = (CHUNK - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Writes the trailer (count, end marker), seals the last chunk and
    /// returns the inner writer.
    pub(crate) fn finish(mut self, count: u64) -> io::Result<W> {
        self.put(&count.to_le_bytes())?;
        self.put(&END_MARKER)?;
        self.seal(true)?;
        Ok(self.inner)
    }
}

/// The size of a file whose plaintext is `plain` bytes.
pub(crate) fn sealed_len(plain: u64) -> u64 {
    let chunks = plain.div_ceil(CHUNK as u64).max(1);
    HEADER_LEN as u64 + plain + chunks * TAG_LEN as u64
}

/// A verified, decrypted snapshot, ready to be decoded entry by entry.
pub(crate) struct Opened {
    pub(crate) header: Header,
    /// Entries the trailer announces (bounded by what fits in the body).
    pub(crate) count: u64,
    /// The plaintext entries.
    body: Vec<u8>,
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

/// Checks the start of a file (at most [`HEADER_LEN`] bytes of it, `len`
/// its whole length) before anything more is read: magic, version,
/// completeness, key fingerprint. Returns the header's fields; nothing in
/// them is authenticated until the body decrypts.
///
/// # Errors
///
/// `Truncated`, `BadMagic`, `UnsupportedVersion` or `ForeignKey`, in that
/// order.
pub(crate) fn check_header(
    head: &[u8],
    len: u64,
    secret: &SecretKey,
) -> Result<Header, SnapshotError> {
    let err = |k| Err(SnapshotError::new(k));
    if head.len() < MAGIC.len() {
        return if MAGIC.starts_with(head) {
            err(K::Truncated)
        } else {
            err(K::BadMagic)
        };
    }
    if head[..8] != MAGIC {
        return err(K::BadMagic);
    }
    if head.len() < 12 {
        return err(K::Truncated);
    }
    let version = u32_at(head, 8);
    if version != VERSION {
        return Err(SnapshotError::version(version));
    }
    if head.len() < HEADER_LEN || len < sealed_len(TRAILER_LEN as u64) {
        return err(K::Truncated);
    }
    let fingerprint: &[u8] = &head[16..48];
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        fingerprint,
        &secret.fingerprint()[..],
    )) {
        return err(K::ForeignKey);
    }
    Ok(Header {
        generation: u64_at(head, 48),
        saved_at: u64_at(head, 56),
        idle_ms: u64_at(head, 64),
        absolute_ms: u64_at(head, 72),
    })
}

/// The generation in a file's header, if it is a snapshot under `secret`
/// (unauthenticated: a hint, never a check).
pub(crate) fn peek_generation(head: &[u8], secret: &SecretKey) -> Option<u64> {
    check_header(head, u64::MAX, secret)
        .ok()
        .map(|h| h.generation)
}

/// Checks and decrypts a whole file: the header as [`check_header`] does,
/// then every chunk's tag, then the trailer and the entry count against the
/// plaintext's size. `file` is decrypted in place and becomes the
/// plaintext: nothing beyond the file's size is allocated.
///
/// # Errors
///
/// One [`SnapshotError`] kind per failed check: those of [`check_header`],
/// then `Checksum` when a chunk does not authenticate (damaged, edited,
/// cut at a chunk boundary, or sealed under another key), then `Corrupt`.
pub(crate) fn open(mut file: Vec<u8>, secret: &SecretKey) -> Result<Opened, SnapshotError> {
    let err = |k| Err(SnapshotError::new(k));
    let head = &file[..file.len().min(HEADER_LEN)];
    let header = check_header(head, file.len() as u64, secret)?;
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&file[..HEADER_LEN]);
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&h[80..96]);
    let cipher = cipher(secret);
    // Decrypt chunk by chunk, sliding each plaintext down over the header
    // and the tags before it.
    let mut read = HEADER_LEN;
    let mut plain = 0usize;
    let mut index = 0u64;
    loop {
        let rest = file.len() - read;
        let take = rest.min(CHUNK + TAG_LEN);
        if take < TAG_LEN {
            return err(K::Checksum);
        }
        let last = take == rest;
        let (ct_end, tag_end) = (read + take - TAG_LEN, read + take);
        let tag =
            Tag::try_from(&file[ct_end..tag_end]).map_err(|_| SnapshotError::new(K::Checksum))?;
        cipher
            .decrypt_inout_detached(
                &nonce(&prefix, index),
                &aad(&h, last),
                file[read..ct_end].as_mut().into(),
                &tag,
            )
            .map_err(|_| SnapshotError::new(K::Checksum))?;
        file.copy_within(read..ct_end, plain);
        plain += ct_end - read;
        read = tag_end;
        index += 1;
        if last {
            break;
        }
    }
    file.truncate(plain);
    if u32_at(&h, 12) != 0 || plain < TRAILER_LEN {
        return err(K::Corrupt);
    }
    let count_at = plain - TRAILER_LEN;
    if file[count_at + 8..] != END_MARKER {
        return err(K::Corrupt);
    }
    let count = u64_at(&file, count_at);
    file.truncate(count_at);
    // Every entry takes at least its fixed part: a count that cannot fit is
    // forged, whatever it claims (2^60 included). Nothing is allocated by it.
    if count > (file.len() / ENTRY_FIXED_LEN) as u64 {
        return err(K::Corrupt);
    }
    Ok(Opened {
        header,
        count,
        body: file,
    })
}

/// Seals `body` (plaintext entries) and `count` into a whole file under
/// `secret`: for tests and fuzzing, which frame arbitrary bodies.
#[cfg(feature = "model")]
pub(crate) fn seal_file(secret: &SecretKey, header: &Header, body: &[u8], count: u64) -> Vec<u8> {
    let h = encode_header(&secret.fingerprint(), header, &rand::random());
    let mut w = match SealWriter::new(Vec::new(), cipher(secret), h) {
        Ok(w) => w,
        Err(e) => unreachable!("writing to memory: {e}"),
    };
    match w.put(body).and_then(|()| w.finish(count)) {
        Ok(v) => v,
        Err(e) => unreachable!("writing to memory: {e}"),
    }
}

impl Opened {
    /// The plaintext entries.
    #[cfg(feature = "model")]
    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body
    }
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

impl Opened {
    /// Splits the body into exactly `count` entries, handing each to `f` in
    /// file order. Stops at the first error, `f`'s or the format's.
    ///
    /// # Errors
    ///
    /// [`K::Corrupt`] when a length runs past the body, a flag is unknown,
    /// or bytes remain after the last entry; or what `f` returns.
    pub(crate) fn for_each_entry<'a>(
        &'a self,
        mut f: impl FnMut(RawEntry<'a>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let corrupt = || SnapshotError::new(K::Corrupt);
        let mut rest: &'a [u8] = &self.body;
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

    fn sample(secret: &SecretKey, entries: &[(u64, Option<&str>, u32)], pad: usize) -> Vec<u8> {
        let h = Header {
            generation: 4,
            saved_at: 1,
            idle_ms: 2,
            absolute_ms: 3,
        };
        let header = encode_header(&secret.fingerprint(), &h, &[7; 16]);
        let mut w = SealWriter::new(Vec::new(), cipher(secret), header).unwrap();
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
        // A padding entry with `pad` bytes of data, to cross chunks.
        if pad > 0 {
            let t = Times {
                created: 0,
                last_seen: 0,
                issued: 0,
                idle_deadline: 0,
                abs_deadline: 0,
            };
            encode_entry::<Vec<u8>, String>(&mut buf, &[0xee; 32], 99, &t, None, &vec![5; pad])
                .unwrap();
        }
        w.put(&buf).unwrap();
        w.finish((entries.len() + usize::from(pad > 0)) as u64)
            .unwrap()
    }

    fn entries(o: &Opened) -> Vec<RawEntry<'_>> {
        let mut e = Vec::new();
        o.for_each_entry(|r| {
            e.push(r);
            Ok(())
        })
        .unwrap();
        e
    }

    #[test]
    fn encoded_file_opens_and_splits_back() {
        let k = SecretKey::from_bytes([9; 32]);
        let bytes = sample(&k, &[(5, Some("alice"), 7), (6, None, 8)], 0);
        let o = open(bytes, &k).unwrap();
        assert_eq!((o.header.idle_ms, o.header.generation), (2, 4));
        let e = entries(&o);
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
    fn empty_snapshot_is_header_trailer_and_one_tag() {
        let k = SecretKey::from_bytes([9; 32]);
        let bytes = sample(&k, &[], 0);
        assert_eq!(bytes.len() as u64, sealed_len(TRAILER_LEN as u64));
        assert_eq!(bytes.len(), HEADER_LEN + TRAILER_LEN + TAG_LEN);
        assert_eq!(entries(&open(bytes, &k).unwrap()).len(), 0);
    }

    /// Bodies around chunk boundaries (one byte short, exact, one over)
    /// decrypt back, and a file cut at a chunk boundary is refused.
    #[test]
    fn chunk_boundaries_round_trip_and_a_cut_at_one_is_refused() {
        let k = SecretKey::from_bytes([9; 32]);
        // Plaintext = entry (89 + 1 postcard length byte..) + trailer; aim
        // around 2 * CHUNK.
        for pad in (2 * CHUNK - 140)..(2 * CHUNK - 100) {
            let bytes = sample(&k, &[], pad);
            let plain = bytes.len() - HEADER_LEN;
            let o = open(bytes.clone(), &k).unwrap();
            assert_eq!(entries(&o)[0].data.len(), pad + 3, "pad {pad}");
            assert_eq!(bytes.len() as u64, sealed_len(o.body.len() as u64 + 16));
            if plain > CHUNK + TAG_LEN {
                let cut = bytes[..HEADER_LEN + CHUNK + TAG_LEN].to_vec();
                assert_eq!(open(cut, &k).err().map(|e| e.kind()), Some(K::Checksum));
            }
        }
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

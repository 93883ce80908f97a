//! The sealed file, format version 1 (described for humans in `docs/vault.md`):
//!
//! ```text
//! offset  size  field
//!      0     8  magic "SWYVAULT"
//!      8     2  format version, big-endian (1)
//!     10     1  key derivation id (1 = PBKDF2-HMAC-SHA256)
//!     11     1  cipher id (1 = AES-256-GCM)
//!     12     4  PBKDF2 iteration count, big-endian
//!     16    16  salt
//!     32    12  nonce
//!     44     n  ciphertext of the JSON contents
//!   44+n    16  GCM authentication tag
//! ```
//!
//! The whole 44-byte header is the associated data, so changing any header byte fails
//! authentication just as changing the ciphertext does. This module only turns bytes into
//! bytes; the file system is `store`'s business.

use std::num::NonZeroU32;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::Passphrase;

/// The first bytes of every vault file.
pub(crate) const MAGIC: [u8; 8] = *b"SWYVAULT";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
const KDF_PBKDF2_HMAC_SHA256: u8 = 1;
const CIPHER_AES_256_GCM: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = aead::NONCE_LEN;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
/// Length of the header, which is also the associated data.
pub(crate) const HEADER_LEN: usize = 8 + 2 + 1 + 1 + 4 + SALT_LEN + NONCE_LEN;
/// The shortest possible sealed file: a header and the tag of empty contents.
pub(crate) const MIN_FILE_LEN: usize = HEADER_LEN + TAG_LEN;

/// Why bytes are not a vault this build can open. The store adds the path and the backup.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Damage {
    Empty,
    NotAVault,
    UnsupportedVersion(u16),
    UnknownAlgorithm { kdf: u8, cipher: u8 },
    Truncated { len: usize },
    IterationsOutOfRange(u32),
    Unseal,
}

/// The parts of a header that key derivation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KdfParams {
    pub(crate) iterations: NonZeroU32,
    pub(crate) salt: [u8; SALT_LEN],
}

impl KdfParams {
    /// Fresh parameters with a random salt.
    pub(crate) fn generate(iterations: NonZeroU32, rng: &SystemRandom) -> Option<Self> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt).ok()?;
        Some(Self { iterations, salt })
    }
}

/// An AES-256-GCM key derived from a passphrase, with the parameters that derived it.
pub(crate) struct SealingKey {
    key: LessSafeKey,
    params: KdfParams,
}

impl SealingKey {
    /// Runs PBKDF2-HMAC-SHA256. Costs `params.iterations` HMAC rounds: call once per open.
    pub(crate) fn derive(passphrase: &Passphrase, params: KdfParams) -> Self {
        let mut key_bytes = Zeroizing::new([0u8; KEY_LEN]);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            params.iterations,
            &params.salt,
            passphrase.bytes(),
            &mut key_bytes[..],
        );
        let unbound = UnboundKey::new(&aead::AES_256_GCM, &key_bytes[..])
            .expect("invariant: a 32-byte key fits AES-256-GCM");
        Self { key: LessSafeKey::new(unbound), params }
    }

    pub(crate) fn params(&self) -> KdfParams {
        self.params
    }

    /// Seals `plaintext` under a fresh random nonce. `None` when the system's random number
    /// generator fails.
    pub(crate) fn seal(&self, plaintext: &[u8], rng: &SystemRandom) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).ok()?;
        // Sized up front so the buffer never reallocates and leaves a plaintext copy behind.
        let mut sealed = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(&MAGIC);
        sealed.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        sealed.push(KDF_PBKDF2_HMAC_SHA256);
        sealed.push(CIPHER_AES_256_GCM);
        sealed.extend_from_slice(&self.params.iterations.get().to_be_bytes());
        sealed.extend_from_slice(&self.params.salt);
        sealed.extend_from_slice(&nonce);
        debug_assert_eq!(sealed.len(), HEADER_LEN);
        sealed.extend_from_slice(plaintext);
        let (header, body) = sealed.split_at_mut(HEADER_LEN);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header[..]),
                body,
            )
            .expect("invariant: AES-GCM seals any input under 64 GiB");
        sealed.extend_from_slice(tag.as_ref());
        Some(sealed)
    }

    /// Authenticates and decrypts a whole file whose header [`parse_header`] accepted.
    pub(crate) fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Damage> {
        if sealed.len() < MIN_FILE_LEN {
            return Err(Damage::Truncated { len: sealed.len() });
        }
        let (header, body) = sealed.split_at(HEADER_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[HEADER_LEN - NONCE_LEN..]);
        let mut buffer = Zeroizing::new(body.to_vec());
        let plaintext_len = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(header), &mut buffer[..])
            .map_err(|_| Damage::Unseal)?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }
}

/// Reads and checks the header, in an order that names the most useful problem: nothing at
/// all, not a vault, a version we do not know, too short, unknown algorithms, an iteration
/// count above `max_iterations` (refused before any derivation).
pub(crate) fn parse_header(sealed: &[u8], max_iterations: NonZeroU32) -> Result<KdfParams, Damage> {
    if sealed.is_empty() {
        return Err(Damage::Empty);
    }
    let magic_len = sealed.len().min(MAGIC.len());
    if sealed[..magic_len] != MAGIC[..magic_len] {
        return Err(Damage::NotAVault);
    }
    if sealed.len() < MAGIC.len() + 2 {
        return Err(Damage::Truncated { len: sealed.len() });
    }
    let version = u16::from_be_bytes([sealed[8], sealed[9]]);
    if version != FORMAT_VERSION {
        return Err(Damage::UnsupportedVersion(version));
    }
    if sealed.len() < MIN_FILE_LEN {
        return Err(Damage::Truncated { len: sealed.len() });
    }
    let (kdf, cipher) = (sealed[10], sealed[11]);
    if kdf != KDF_PBKDF2_HMAC_SHA256 || cipher != CIPHER_AES_256_GCM {
        return Err(Damage::UnknownAlgorithm { kdf, cipher });
    }
    let iterations = u32::from_be_bytes([sealed[12], sealed[13], sealed[14], sealed[15]]);
    let iterations = NonZeroU32::new(iterations)
        .filter(|count| *count <= max_iterations)
        .ok_or(Damage::IterationsOutOfRange(iterations))?;
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&sealed[16..16 + SALT_LEN]);
    Ok(KdfParams { iterations, salt })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(iterations: u32) -> SealingKey {
        let passphrase = Passphrase::try_new("correct horse battery staple").expect("non-empty");
        let rng = SystemRandom::new();
        let params = KdfParams::generate(NonZeroU32::new(iterations).expect("non-zero"), &rng)
            .expect("rng works");
        SealingKey::derive(&passphrase, params)
    }

    fn max() -> NonZeroU32 {
        NonZeroU32::new(1_000_000).expect("non-zero")
    }

    #[test]
    fn seal_then_open_round_trips_and_every_seal_uses_a_fresh_nonce() {
        let key = key(10);
        let rng = SystemRandom::new();
        let first = key.seal(b"{\"keys\":[]}", &rng).expect("seals");
        let second = key.seal(b"{\"keys\":[]}", &rng).expect("seals");
        assert_ne!(first[32..44], second[32..44], "nonce reused");
        assert_ne!(first[HEADER_LEN..], second[HEADER_LEN..]);
        assert_eq!(parse_header(&first, max()), Ok(key.params()));
        assert_eq!(&key.open(&first).expect("opens")[..], b"{\"keys\":[]}");
        assert_eq!(first.len(), MIN_FILE_LEN + 11);
    }

    #[test]
    fn another_passphrase_cannot_open() {
        let sealed = key(10).seal(b"hello", &SystemRandom::new()).expect("seals");
        let params = parse_header(&sealed, max()).expect("header ok");
        let other = SealingKey::derive(&Passphrase::try_new("wrong").expect("non-empty"), params);
        assert_eq!(other.open(&sealed).map(|_| ()), Err(Damage::Unseal));
    }

    #[test]
    fn header_problems_are_named_in_order() {
        let sealed = key(10).seal(b"hello", &SystemRandom::new()).expect("seals");
        assert_eq!(parse_header(b"", max()), Err(Damage::Empty));
        assert_eq!(parse_header(b"{\"keys\":[]}", max()), Err(Damage::NotAVault));
        assert_eq!(parse_header(b"SWY", max()), Err(Damage::Truncated { len: 3 }));
        assert_eq!(parse_header(&sealed[..30], max()), Err(Damage::Truncated { len: 30 }));
        let mut newer = sealed.clone();
        newer[9] = 2;
        assert_eq!(parse_header(&newer, max()), Err(Damage::UnsupportedVersion(2)));
        let mut cipher = sealed.clone();
        cipher[11] = 9;
        assert_eq!(
            parse_header(&cipher, max()),
            Err(Damage::UnknownAlgorithm { kdf: 1, cipher: 9 })
        );
        let mut huge = sealed.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(parse_header(&huge, max()), Err(Damage::IterationsOutOfRange(u32::MAX)));
        let mut zero = sealed;
        zero[12..16].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(parse_header(&zero, max()), Err(Damage::IterationsOutOfRange(0)));
    }
}

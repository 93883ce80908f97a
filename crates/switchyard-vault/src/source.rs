//! [`KeySource`]: where credentials come from. Two sources live here, the [`Vault`] and the
//! environment ([`EnvSource`](crate::EnvSource)); [`merge`] joins several and counts a key
//! found twice once.

use std::collections::HashMap;

use switchyard_core::{Credential, Fingerprint, ProviderId};

use crate::{Vault, VaultError};

/// One usable key and where it was found.
#[derive(Clone, Debug)]
pub struct SourcedKey {
    /// The provider it is for.
    pub provider: ProviderId,
    /// The key (its `Debug` and `Display` show id and fingerprint only).
    pub credential: Credential,
    /// Where it came from, safe to print: `vault`, `GROQ_API_KEY_2`, `GEMINI_KEYS[3] (.env)`.
    pub origin: String,
}

/// A source of credentials.
pub trait KeySource: Send + Sync {
    /// A short name for messages: `vault /home/me/.local/share/switchyard/keys.vault`.
    fn describe(&self) -> String;

    /// The enabled keys this source offers, each secret once.
    ///
    /// # Errors
    /// What reading the source can fail with (a `.env` file that does not parse).
    fn keys(&self) -> Result<Vec<SourcedKey>, VaultError>;
}

fn _object_safe(_: &dyn KeySource) {} // the facade may hold `Box<dyn KeySource>`; keep that possible

impl KeySource for Vault {
    fn describe(&self) -> String {
        format!("vault {}", self.path().display())
    }

    /// The enabled keys as of the last read or write of this handle.
    fn keys(&self) -> Result<Vec<SourcedKey>, VaultError> {
        Ok(self
            .enabled_credentials()
            .map(|(info, credential)| SourcedKey {
                provider: info.provider.clone(),
                credential,
                origin: "vault".to_owned(),
            })
            .collect())
    }
}

/// A key found again after it was already taken from an earlier place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// Where the repeat was found.
    pub origin: String,
    /// Where the key was first found.
    pub first_seen: String,
    /// The key's fingerprint.
    pub fingerprint: Fingerprint,
}

/// Keys from several sources, each secret once.
#[derive(Clone, Debug, Default)]
pub struct Merged {
    /// The distinct keys, in source order.
    pub keys: Vec<SourcedKey>,
    /// The repeats that were dropped.
    pub duplicates: Vec<Duplicate>,
}

/// Joins the keys of `sources`, in order. A secret seen before is dropped and reported as a
/// [`Duplicate`], so a key in both the vault and the environment is counted (and
/// rate-limited) once.
///
/// # Errors
/// The first error of any source.
pub fn merge(sources: &[&dyn KeySource]) -> Result<Merged, VaultError> {
    let mut merged = Merged::default();
    let mut seen = Seen::default();
    for source in sources {
        for key in source.keys()? {
            seen.offer(key, &mut merged);
        }
    }
    Ok(merged)
}

/// Secrets seen so far, compared in full (two keys may share a 32-bit fingerprint).
#[derive(Default)]
pub(crate) struct Seen {
    by_fingerprint: HashMap<Fingerprint, Vec<usize>>,
}

impl Seen {
    /// Pushes `key` onto `merged.keys` unless its secret is already there.
    pub(crate) fn offer(&mut self, key: SourcedKey, merged: &mut Merged) {
        let fingerprint = key.credential.fingerprint();
        let same = self.by_fingerprint.get(&fingerprint).and_then(|indexes| {
            indexes.iter().map(|&index| &merged.keys[index]).find(|earlier| {
                earlier.credential.expose_secret() == key.credential.expose_secret()
            })
        });
        if let Some(earlier) = same {
            merged.duplicates.push(Duplicate {
                origin: key.origin,
                first_seen: earlier.origin.clone(),
                fingerprint,
            });
            return;
        }
        self.by_fingerprint.entry(fingerprint).or_default().push(merged.keys.len());
        merged.keys.push(key);
    }
}

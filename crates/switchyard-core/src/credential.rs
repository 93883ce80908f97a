//! A secret and the only ways it may be shown. [`Credential`] derives no `Serialize`; its
//! `Debug` and `Display` print the key id and a [`Fingerprint`], never the secret, and the
//! secret's memory is zeroed when the credential is dropped.

use std::fmt;
use std::sync::Arc;

use ring::digest;
use zeroize::Zeroizing;

use crate::KeyId;

/// A short, stable, non-reversible name for a secret: the first 8 hex digits of its SHA-256.
///
/// Two keys with the same fingerprint are almost surely the same key, so it serves to spot
/// duplicates and to tell an operator which key is meant, without revealing any character of
/// the key itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 4]);

impl Fingerprint {
    /// Computes the fingerprint of a secret.
    pub fn of(secret: &str) -> Self {
        let hash = digest::digest(&digest::SHA256, secret.as_bytes());
        let mut head = [0u8; 4];
        head.copy_from_slice(&hash.as_ref()[..4]);
        Self(head)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One API key for one provider. Cloning shares the one zeroized buffer (a reference count,
/// no copy of the secret: every attempt clones the credential it labels its errors with); the
/// buffer is zeroed when the last clone is dropped.
#[derive(Clone)]
pub struct Credential {
    id: KeyId,
    fingerprint: Fingerprint,
    secret: Arc<Zeroizing<String>>,
}

impl Credential {
    /// Wraps a secret under an id.
    pub fn new(id: impl Into<KeyId>, secret: impl Into<String>) -> Self {
        let secret = Zeroizing::new(secret.into());
        let fingerprint = Fingerprint::of(&secret);
        Self { id: id.into(), fingerprint, secret: Arc::new(secret) }
    }

    /// The key's id, safe to log.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The key's fingerprint, safe to log.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The secret itself, for the one place that needs it: the header of an upstream call.
    /// Never format it, log it or put it in an error.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }

    /// Replaces every occurrence of the secret in `text` with `[key <id>]`, for upstream
    /// messages that echo the key they were sent (some servers do).
    pub fn redact(&self, text: &str) -> String {
        if self.secret.len() < 4 || !text.contains(self.secret.as_str()) {
            return text.to_owned();
        }
        text.replace(self.secret.as_str(), &format!("[key {}]", self.id))
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {} ({})", self.id, self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "gsk_live_0123456789abcdefSECRET";

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let credential = Credential::new("groq-1", SECRET);
        for text in [format!("{credential:?}"), format!("{credential}"), format!("{credential:#?}")]
        {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains("SECRET"), "{text}");
            assert!(text.contains("groq-1"), "{text}");
            assert!(text.contains(&credential.fingerprint().to_string()), "{text}");
        }
    }

    #[test]
    fn fingerprint_is_stable_and_distinguishes_keys() {
        assert_eq!(Fingerprint::of(SECRET), Fingerprint::of(SECRET));
        assert_ne!(Fingerprint::of(SECRET), Fingerprint::of("gsk_other"));
        assert_eq!(Fingerprint::of(SECRET).to_string().len(), 8);
    }

    #[test]
    fn clones_share_the_secret_instead_of_copying_it() {
        let credential = Credential::new("groq-1", SECRET);
        let clone = credential.clone();
        assert!(std::ptr::eq(credential.expose_secret(), clone.expose_secret()));
        assert_eq!(format!("{clone:?}"), format!("{credential:?}"));
    }

    #[test]
    fn redact_replaces_an_echoed_secret() {
        let credential = Credential::new("groq-1", SECRET);
        let message = format!("Invalid API Key: {SECRET}.");
        assert_eq!(credential.redact(&message), "Invalid API Key: [key groq-1].");
    }
}

//! [`Passphrase`]: the secret a vault key is derived from. Its bytes are zeroed on drop and
//! its `Debug` shows only its length.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::VaultError;

/// A vault passphrase. Never comes from a command-line argument: the CLI reads it from
/// `SWITCHYARD_VAULT_PASSPHRASE`, a key file or a no-echo prompt.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Wraps passphrase bytes.
    ///
    /// # Errors
    /// [`VaultError::EmptyPassphrase`] when `bytes` is empty.
    pub fn try_new(bytes: impl Into<Vec<u8>>) -> Result<Self, VaultError> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.is_empty() {
            return Err(VaultError::EmptyPassphrase);
        }
        Ok(Self(bytes))
    }

    /// Reads a passphrase from a key file: its whole content, less one trailing line end
    /// (`\n` or `\r\n`), so a file written by `echo` works.
    ///
    /// # Errors
    /// [`VaultError::Keyfile`] when the file cannot be read, [`VaultError::EmptyPassphrase`]
    /// when it holds nothing but a line end.
    pub fn from_keyfile(path: &Path) -> Result<Self, VaultError> {
        let mut bytes = Zeroizing::new(
            std::fs::read(path)
                .map_err(|source| VaultError::Keyfile { path: path.to_owned(), source })?,
        );
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        Self::try_new(std::mem::take(&mut *bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Passphrase({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_passphrase_is_refused() {
        assert!(matches!(Passphrase::try_new(""), Err(VaultError::EmptyPassphrase)));
    }

    #[test]
    fn debug_shows_only_the_length() {
        let passphrase = Passphrase::try_new("correct horse").expect("non-empty");
        assert_eq!(format!("{passphrase:?}"), "Passphrase(13 bytes)");
    }

    #[test]
    fn a_keyfile_loses_one_trailing_line_end_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases: [(&[u8], &[u8]); 4] = [
            (b"secret\n", b"secret"),
            (b"secret\r\n", b"secret"),
            (b"secret", b"secret"),
            (b"two words \n\n", b"two words \n"),
        ];
        for (content, expected) in cases {
            let path = dir.path().join("keyfile");
            std::fs::write(&path, content).expect("write keyfile");
            let passphrase = Passphrase::from_keyfile(&path).expect("reads");
            assert_eq!(passphrase.bytes(), expected);
        }
        let path = dir.path().join("blank");
        std::fs::write(&path, b"\n").expect("write keyfile");
        assert!(matches!(Passphrase::from_keyfile(&path), Err(VaultError::EmptyPassphrase)));
        let missing = dir.path().join("missing");
        let error = Passphrase::from_keyfile(&missing).expect_err("no such file");
        assert!(error.to_string().contains("cannot read key file"), "{error}");
    }
}

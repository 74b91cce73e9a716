//! Secret values that never leak through `Debug`, `Display` or serialization: thin newtypes over
//! `secrecy`'s zeroizing, `Debug`-redacting boxes.

use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// A secret string (client secret, access/refresh token, PEM bundle with a private key).
///
/// Invariants: the value is zeroed on drop; `Debug` prints `[REDACTED]`; there is no
/// `Display` or `Serialize` implementation, so a secret can only reach a log or a file through an
/// explicit call to [`Secret::expose`].
#[derive(Clone, Debug)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret value. Call only where the value must leave the process (an HTTP request, the
    /// OS keyring).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

/// Secret binary data (a PKCS#8 private key). Zeroed on drop, redacted in `Debug`.
#[derive(Clone, Debug)]
pub struct SecretBytes(SecretSlice<u8>);

impl SecretBytes {
    /// Wraps secret bytes.
    pub fn new(value: Vec<u8>) -> Self {
        SecretBytes(SecretSlice::from(value))
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("s3cr3t-value");
        let debug = format!("{secret:?}");
        assert!(
            !debug.contains("s3cr3t") && debug.contains("REDACTED"),
            "{debug}"
        );
        assert_eq!(secret.expose(), "s3cr3t-value");
        let bytes = SecretBytes::new(vec![101, 102, 103]);
        let debug = format!("{bytes:?}");
        assert!(
            !debug.contains("101") && debug.contains("REDACTED"),
            "{debug}"
        );
        assert_eq!(bytes.expose(), &[101, 102, 103]);
    }
}

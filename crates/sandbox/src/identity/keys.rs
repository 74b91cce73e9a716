//! The sandbox's token-signing key and certificate helpers (thumbprints, RSA components).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::PublicKeyData;
use serde::Serialize;
use sha1::Digest as _;

use super::IdentityError;

/// RSA signing key of the emulated identity platform (generated at start, never persisted).
pub struct SigningKey {
    pub(crate) kid: String,
    encoding: EncodingKey,
    pub(crate) n_b64: String,
    pub(crate) e_b64: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("private", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key.
    pub fn generate() -> Result<Self, IdentityError> {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .map_err(|e| IdentityError::Crypto(format!("generating the signing key: {e}")))?;
        let encoding = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes())
            .map_err(|e| IdentityError::Crypto(format!("loading the signing key: {e}")))?;
        let (n, e) = rsa_components_from_spki(&kp.subject_public_key_info())?;
        let kid = URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(kp.subject_public_key_info())[..20]);
        Ok(Self {
            kid,
            encoding,
            n_b64: URL_SAFE_NO_PAD.encode(n),
            e_b64: URL_SAFE_NO_PAD.encode(e),
        })
    }

    /// Signs claims as an RS256 JWT with this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, IdentityError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| IdentityError::Crypto(format!("signing a token: {e}")))
    }

    /// The JWKS document advertised at `jwks_uri`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "RSA", "use": "sig", "alg": "RS256",
                "kid": self.kid, "n": self.n_b64, "e": self.e_b64,
            }]
        })
    }
}

/// RSA modulus and exponent (big-endian, no leading zeros) from a SubjectPublicKeyInfo DER.
pub fn rsa_components_from_spki(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), IdentityError> {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| IdentityError::Crypto(format!("parsing a public key: {e}")))?;
    rsa_components(&spki)
}

fn rsa_components(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<(Vec<u8>, Vec<u8>), IdentityError> {
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => Ok((
            strip_zeros(rsa.modulus).to_vec(),
            strip_zeros(rsa.exponent).to_vec(),
        )),
        _ => Err(IdentityError::Crypto(
            "the public key is not an RSA key (Entra certificate credentials are RSA)".into(),
        )),
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

/// A registered app certificate (public part).
#[derive(Clone)]
pub struct AppCertificate {
    /// Base64url SHA-1 thumbprint (the `x5t` header value, unpadded).
    pub x5t: String,
    /// Base64url SHA-256 thumbprint (the `x5t#S256` header value, unpadded).
    pub x5t_s256: String,
    /// Upper-case hex SHA-1 thumbprint, as the Entra portal shows it.
    pub thumbprint_hex: String,
    pub(crate) n: Vec<u8>,
    pub(crate) e: Vec<u8>,
    /// End of validity.
    pub not_after: chrono::DateTime<chrono::Utc>,
    /// The PEM as registered.
    pub pem: String,
}

impl std::fmt::Debug for AppCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCertificate")
            .field("thumbprint_hex", &self.thumbprint_hex)
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl AppCertificate {
    /// Parses a PEM (or several; the first CERTIFICATE block is used).
    pub fn from_pem(pem_text: &str) -> Result<Self, IdentityError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).map_err(|e| {
            IdentityError::InvalidCertificate(format!("not a PEM certificate: {e}"))
        })?;
        let cert = pem.parse_x509().map_err(|e| {
            IdentityError::InvalidCertificate(format!("not an X.509 certificate: {e}"))
        })?;
        let (n, e) = rsa_components(cert.public_key())
            .map_err(|e| IdentityError::InvalidCertificate(e.to_string()))?;
        let sha1 = sha1::Sha1::digest(&pem.contents);
        let sha256 = sha2::Sha256::digest(&pem.contents);
        let not_after = chrono::DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
            .unwrap_or_default();
        Ok(Self {
            x5t: URL_SAFE_NO_PAD.encode(sha1),
            x5t_s256: URL_SAFE_NO_PAD.encode(sha256),
            thumbprint_hex: sha1.iter().map(|b| format!("{b:02X}")).collect(),
            n,
            e,
            not_after,
            pem: pem_text.to_owned(),
        })
    }

    /// The decoding key for assertion signatures.
    pub(crate) fn decoding_key(&self) -> jsonwebtoken::DecodingKey {
        jsonwebtoken::DecodingKey::from_rsa_raw_components(&self.n, &self.e)
    }

    /// Whether a header thumbprint (`x5t` or `x5t#S256`, padded or not) names this certificate.
    pub fn matches(&self, x5t: Option<&str>, x5t_s256: Option<&str>) -> bool {
        let norm = |s: &str| s.trim_end_matches('=').replace('+', "-").replace('/', "_");
        x5t.is_some_and(|t| norm(t) == self.x5t)
            || x5t_s256.is_some_and(|t| norm(t) == self.x5t_s256)
    }
}

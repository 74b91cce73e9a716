//! Certificate credentials: PKCS#12 (PFX) import, PEM bundles for the keyring, and client
//! assertion JWTs for the token endpoint.
//!
//! PFX files are parsed with `p12-keystore`, which reads both modern files (PBES2: PBKDF2 +
//! AES-256-CBC, the OpenSSL 3 default) and legacy ones (`openssl pkcs12 -legacy`: 3DES / RC2-40
//! with SHA-1 MAC). Only RSA keys are accepted, because Entra client assertions are RS256/PS256.
//!
//! Assertions are signed with `ring` (already in the tree through rustls), whose RSA signing is
//! constant-time and blinded. The `rsa` crate is not used here: its private-key operations are
//! subject to the Marvin timing attack (RUSTSEC-2023-0071), and signing happens with the
//! tenant's long-lived secret key.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, TimeZone, Utc};
use ring::signature::{KeyPair as _, RsaKeyPair};
use serde::{Deserialize, Serialize};
use sha1::Digest as _;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::secret::{Secret, SecretBytes};

/// Lifetime of a client assertion (`exp - nbf`); the reference asks for 5–10 minutes.
pub const ASSERTION_LIFETIME_MINUTES: i64 = 10;

/// Why a certificate could not be imported or used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The PFX password is wrong (MAC check or decryption failed).
    #[error("the PFX password is wrong: re-enter the password the file was exported with")]
    WrongPassword,
    /// The file is not a PKCS#12/PFX file or is damaged.
    #[error("the file is not a readable PKCS#12 (.pfx/.p12) file ({0}); export the certificate with its private key again")]
    InvalidPfx(String),
    /// The file has no private key.
    #[error(
        "the file contains no private key; export the certificate *with* its private key (PFX)"
    )]
    NoPrivateKey,
    /// The file has no certificate for its private key.
    #[error("the file contains a private key but no matching certificate")]
    NoCertificate,
    /// The certificate could not be parsed.
    #[error("the certificate could not be parsed: {0}")]
    InvalidCertificate(String),
    /// The private key is not RSA (or not readable).
    #[error("the private key is not a usable RSA key ({0}); Entra client assertions need an RSA certificate")]
    UnsupportedKey(String),
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// A PEM bundle is malformed.
    #[error("the stored certificate bundle is malformed: {0}")]
    InvalidPem(String),
    /// Signing the assertion failed.
    #[error("signing the client assertion failed: {0}")]
    Signing(String),
}

/// Algorithm and thumbprint header used for client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AssertionAlgorithm {
    /// `alg: PS256` with `x5t#S256` (the current Microsoft documentation; default).
    #[default]
    Ps256X5tS256,
    /// `alg: RS256` with `x5t` (SHA-1), as older docs and MSAL Python do.
    Rs256X5t,
}

/// A certificate with its private key, ready to sign client assertions.
///
/// Invariant: the key is RSA and matches the certificate; the key never appears in `Debug`.
#[derive(Clone)]
pub struct CertificateCredential {
    subject: String,
    issuer: String,
    thumbprint_sha1: [u8; 20],
    thumbprint_sha256: [u8; 32],
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    cert_der: Vec<u8>,
    private_key: SecretBytes,
    algorithm: AssertionAlgorithm,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("subject", &self.subject)
            .field("thumbprint_sha1", &self.thumbprint_sha1_hex())
            .field("not_after", &self.not_after)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

/// Claims of a client assertion (public so tests and the sandbox can decode them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssertionClaims {
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub nbf: i64,
    pub iat: i64,
    pub exp: i64,
}

fn asn1_to_utc(t: x509_parser::time::ASN1Time) -> DateTime<Utc> {
    Utc.timestamp_opt(t.timestamp(), 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl CertificateCredential {
    /// Builds a credential from a DER certificate and a PKCS#8 DER private key, checking that the
    /// key is RSA and belongs to the certificate.
    pub fn from_der(cert_der: Vec<u8>, pkcs8_key: SecretBytes) -> Result<Self, CertificateError> {
        let (_, cert) = X509Certificate::from_der(&cert_der)
            .map_err(|e| CertificateError::InvalidCertificate(e.to_string()))?;
        if let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = cert.public_key().parsed() {
            let bits = rsa.key_size();
            if bits < 2048 {
                return Err(CertificateError::UnsupportedKey(format!(
                    "a {bits}-bit key; Entra and the signer need at least 2048 bits"
                )));
            }
        }
        let key = rsa_key_pair(&pkcs8_key)?;
        // ring gives the public key as a PKCS#1 `RSAPublicKey`, which is what the certificate's
        // SubjectPublicKeyInfo carries in its bit string (for an rsaEncryption key).
        let spki = cert.public_key();
        if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
            || key.public_key().as_ref() != spki.subject_public_key.data.as_ref()
        {
            return Err(CertificateError::KeyMismatch);
        }
        let thumbprint_sha1: [u8; 20] = sha1::Sha1::digest(&cert_der).into();
        let thumbprint_sha256: [u8; 32] = sha2::Sha256::digest(&cert_der).into();
        Ok(CertificateCredential {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            thumbprint_sha1,
            thumbprint_sha256,
            not_before: asn1_to_utc(cert.validity().not_before),
            not_after: asn1_to_utc(cert.validity().not_after),
            cert_der,
            private_key: pkcs8_key,
            algorithm: AssertionAlgorithm::default(),
        })
    }

    /// Imports a PKCS#12 (.pfx/.p12) file, modern (AES-256/PBKDF2) or legacy (3DES/RC2-40).
    /// A wrong password gives [`CertificateError::WrongPassword`].
    pub fn from_pfx(bytes: &[u8], password: &str) -> Result<Self, CertificateError> {
        use p12_keystore::error::Error as P12Error;
        use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
        let store = KeyStore::from_pkcs12(bytes, password, Pkcs12ImportPolicy::Relaxed).map_err(
            |e| match e {
                P12Error::MacError(_) | P12Error::UnpadError => CertificateError::WrongPassword,
                other => CertificateError::InvalidPfx(other.to_string()),
            },
        )?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or(CertificateError::NoPrivateKey)?;
        let cert = chain
            .certs()
            .first()
            .ok_or(CertificateError::NoCertificate)?;
        Self::from_der(
            cert.as_der().to_vec(),
            SecretBytes::new(chain.key().as_der().to_vec()),
        )
    }

    /// Writes certificate + private key as a password-protected PKCS#12 (.pfx) file: PBES2
    /// (PBKDF2 + AES-256-CBC) with an HMAC-SHA256 MAC, which Windows, .NET and OpenSSL 3 read.
    /// The friendly name is `alias`; the local key id is the SHA-1 thumbprint.
    pub fn to_pfx(&self, alias: &str, password: &str) -> Result<Vec<u8>, CertificateError> {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let cert = Certificate::from_der(&self.cert_der)
            .map_err(|e| CertificateError::InvalidCertificate(e.to_string()))?;
        let key = PrivateKey::from_der(self.private_key.expose())
            .map_err(|e| CertificateError::UnsupportedKey(e.to_string()))?;
        let mut store = KeyStore::new();
        store.add_entry(
            alias,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
                self.thumbprint_sha1.to_vec(),
                key,
                [cert],
            )),
        );
        store
            .writer(password)
            .write()
            .map_err(|e| CertificateError::InvalidPfx(e.to_string()))
    }

    /// Serializes certificate + private key as PEM (`CERTIFICATE` then `PRIVATE KEY`), for the
    /// OS keyring. The result contains the private key, hence a [`Secret`].
    pub fn to_pem_bundle(&self) -> Secret {
        let cert = pem::Pem::new("CERTIFICATE", self.cert_der.clone());
        let key = pem::Pem::new("PRIVATE KEY", self.private_key.expose().to_vec());
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        Secret::new(pem::encode_many_config(&[cert, key], config))
    }

    /// Reads a bundle written by [`CertificateCredential::to_pem_bundle`] (any order).
    pub fn from_pem_bundle(bundle: &str) -> Result<Self, CertificateError> {
        let blocks =
            pem::parse_many(bundle).map_err(|e| CertificateError::InvalidPem(e.to_string()))?;
        let cert = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or(CertificateError::NoCertificate)?;
        let key = blocks
            .iter()
            .find(|b| b.tag() == "PRIVATE KEY")
            .ok_or(CertificateError::NoPrivateKey)?;
        Self::from_der(
            cert.contents().to_vec(),
            SecretBytes::new(key.contents().to_vec()),
        )
    }

    /// Chooses the assertion algorithm (default PS256 + `x5t#S256`).
    pub fn with_algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The assertion algorithm in use.
    pub fn algorithm(&self) -> AssertionAlgorithm {
        self.algorithm
    }

    /// Subject distinguished name, e.g. `CN=Mailroom Daemon`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Issuer distinguished name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// SHA-1 thumbprint (what the Entra portal shows).
    pub fn thumbprint_sha1(&self) -> [u8; 20] {
        self.thumbprint_sha1
    }

    /// SHA-1 thumbprint as upper-case hex, as the Entra portal prints it.
    pub fn thumbprint_sha1_hex(&self) -> String {
        hex::encode_upper(self.thumbprint_sha1)
    }

    /// SHA-256 thumbprint.
    pub fn thumbprint_sha256(&self) -> [u8; 32] {
        self.thumbprint_sha256
    }

    /// SHA-256 thumbprint as upper-case hex.
    pub fn thumbprint_sha256_hex(&self) -> String {
        hex::encode_upper(self.thumbprint_sha256)
    }

    /// Start of validity.
    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// The certificate, DER-encoded (what gets uploaded to the app registration).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The PKCS#8 DER private key.
    pub fn private_key_pkcs8(&self) -> &SecretBytes {
        &self.private_key
    }

    /// Builds and signs a client assertion: `aud` = token endpoint, `iss` = `sub` = client id,
    /// a fresh `jti`, `nbf` = `iat` = now, `exp` = now + 10 minutes.
    pub fn client_assertion(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now: DateTime<Utc>,
    ) -> Result<Secret, CertificateError> {
        let mut header = match self.algorithm {
            AssertionAlgorithm::Ps256X5tS256 => {
                let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
                h.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(self.thumbprint_sha256));
                h
            }
            AssertionAlgorithm::Rs256X5t => {
                let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                h.x5t = Some(URL_SAFE_NO_PAD.encode(self.thumbprint_sha1));
                h
            }
        };
        header.typ = Some("JWT".into());
        let claims = AssertionClaims {
            aud: token_endpoint.to_string(),
            iss: client_id.to_string(),
            sub: client_id.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now.timestamp(),
            iat: now.timestamp(),
            exp: (now + Duration::minutes(ASSERTION_LIFETIME_MINUTES)).timestamp(),
        };
        let padding: &'static dyn ring::signature::RsaEncoding = match self.algorithm {
            AssertionAlgorithm::Ps256X5tS256 => &ring::signature::RSA_PSS_SHA256,
            AssertionAlgorithm::Rs256X5t => &ring::signature::RSA_PKCS1_SHA256,
        };
        // JWS compact serialization (RFC 7515 §7.1): BASE64URL(header).BASE64URL(claims), signed.
        let signing_input = format!("{}.{}", jws_part(&header)?, jws_part(&claims)?);
        let key = rsa_key_pair(&self.private_key)?;
        let mut signature = vec![0u8; key.public().modulus_len()];
        key.sign(
            padding,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| CertificateError::Signing("the RSA signature could not be computed".into()))?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// Parses a PKCS#8 RSA private key with ring (which also checks the key's consistency and
/// accepts 2048–8192-bit moduli, what Entra requires anyway).
fn rsa_key_pair(pkcs8: &SecretBytes) -> Result<RsaKeyPair, CertificateError> {
    RsaKeyPair::from_pkcs8(pkcs8.expose())
        .map_err(|e| CertificateError::UnsupportedKey(e.to_string()))
}

/// One JSON part of a compact JWS, base64url-encoded without padding.
fn jws_part(value: &impl Serialize) -> Result<String, CertificateError> {
    serde_json::to_vec(value)
        .map(|json| URL_SAFE_NO_PAD.encode(json))
        .map_err(|e| CertificateError::Signing(e.to_string()))
}

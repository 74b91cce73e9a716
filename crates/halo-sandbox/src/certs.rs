//! Certificates uploaded to the PSA (PFX + password, or PEM in a seed) and webhook signing.

use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer as _};
use sha1::Digest as _;

use crate::seed::{SignatureEncoding as Enc, SignaturePadding};

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The PFX could not be opened (wrong password, corrupt file, or not PKCS#12).
    #[error("the PFX file could not be opened ({0}); check the file and its password")]
    Pkcs12(String),
    /// The PFX holds no private key with a certificate.
    #[error(
        "the PFX file holds no private key and certificate pair; export it with its private key"
    )]
    NoKeyPair,
    /// The key is not an RSA key or the PEM is malformed.
    #[error("the private key is not a readable RSA key ({0}); webhook signing needs RSA")]
    Key(String),
    /// The certificate PEM/DER is malformed.
    #[error("the certificate could not be parsed ({0}); supply an X.509 certificate in PEM")]
    Certificate(String),
}

/// A certificate with its private key, able to sign webhook bodies.
#[derive(Clone)]
pub(crate) struct SigningCert {
    key: rsa::RsaPrivateKey,
    pub subject: String,
    pub issuer: String,
    /// SHA-1 of the DER certificate, upper-case hex (Windows' thumbprint convention).
    pub thumbprint: String,
}

impl std::fmt::Debug for SigningCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCert")
            .field("subject", &self.subject)
            .field("thumbprint", &self.thumbprint)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn describe_cert(der: &[u8]) -> Result<(String, String), CertificateError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertificateError::Certificate(e.to_string()))?;
    Ok((cert.subject().to_string(), cert.issuer().to_string()))
}

fn thumbprint(der: &[u8]) -> String {
    sha1::Sha1::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

impl SigningCert {
    /// Loads a PKCS#12 (PFX) file protected by `password`.
    pub fn from_pkcs12(data: &[u8], password: &str) -> Result<Self, CertificateError> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            data,
            password,
            p12_keystore::Pkcs12ImportPolicy::default(),
        )
        .map_err(|e| CertificateError::Pkcs12(e.to_string()))?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or(CertificateError::NoKeyPair)?;
        let cert = chain.certs().first().ok_or(CertificateError::NoKeyPair)?;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(chain.key().as_der())
            .map_err(|e| CertificateError::Key(e.to_string()))?;
        let cert_der = cert.as_der().to_vec();
        let (subject, issuer) = describe_cert(&cert_der)?;
        Ok(Self {
            key,
            thumbprint: thumbprint(&cert_der),
            subject,
            issuer,
        })
    }

    /// Loads a PEM certificate and its PEM RSA key (PKCS#8 or PKCS#1).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertificateError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| CertificateError::Certificate(e.to_string()))?;
        let cert_der = pem.contents;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|e| CertificateError::Key(e.to_string()))?;
        let (subject, issuer) = describe_cert(&cert_der)?;
        Ok(Self {
            key,
            thumbprint: thumbprint(&cert_der),
            subject,
            issuer,
        })
    }

    /// Signs `body` and encodes the signature for a header.
    pub fn sign(&self, body: &[u8], padding: SignaturePadding, encoding: Enc) -> String {
        let sig: Vec<u8> = match padding {
            SignaturePadding::Pkcs1v15Sha256 => {
                rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone())
                    .sign(body)
                    .to_vec()
            }
            SignaturePadding::PssSha256 => {
                rsa::pss::BlindedSigningKey::<sha2::Sha256>::new(self.key.clone())
                    .sign_with_rng(&mut rand::thread_rng(), body)
                    .to_vec()
            }
        };
        match encoding {
            Enc::Base64 => base64::engine::general_purpose::STANDARD.encode(sig),
            Enc::Hex => sig.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

//! Verifying HaloPSA's "Sign Request Body with a X.509 Certificate".
//!
//! How HaloPSA signs is not documented (`../shared/reference/halopsa-api.md` §4.3, [U]): the
//! header's name, the padding (PKCS#1 v1.5 or PSS, SHA-256), the encoding (base64 or hex) are
//! unknown; the signed content is taken to be the exact body bytes. A [`SignatureScheme`] pins
//! any of them; what it leaves open is detected: every header that could carry a signature is
//! tried with each padding and encoding, and the one that verifies is named in the delivery's
//! record, so an admin can pin exactly what their instance sends. Trying a few combinations
//! does not weaken the check: each is a full RSA verification against Mailroom's public key.

use base64::Engine as _;
use mailroom_store::psa_webhooks::Verification;
use serde::{Deserialize, Serialize};

/// The RSA padding of the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Pkcs1v15Sha256,
    /// RSASSA-PSS with SHA-256.
    PssSha256,
}

impl Padding {
    fn label(self) -> &'static str {
        match self {
            Padding::Pkcs1v15Sha256 => "RSA PKCS#1 v1.5 SHA-256",
            Padding::PssSha256 => "RSA-PSS SHA-256",
        }
    }

    fn algorithm(self) -> &'static dyn ring::signature::VerificationAlgorithm {
        match self {
            Padding::Pkcs1v15Sha256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            Padding::PssSha256 => &ring::signature::RSA_PSS_2048_8192_SHA256,
        }
    }
}

/// The text encoding of the signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Base64,
    Hex,
}

/// What the receiver expects of a signature; `None` = detect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SignatureScheme {
    /// The header carrying the signature (any header when `None`).
    pub header: Option<String>,
    pub padding: Option<Padding>,
    pub encoding: Option<Encoding>,
}

/// Mailroom's certificate as the verifier needs it.
#[derive(Debug, Clone)]
pub struct PublicCertificate {
    /// SHA-1 thumbprint, upper-case hex.
    pub thumbprint: String,
    /// The RSA public key (PKCS#1 `RSAPublicKey`, DER).
    rsa_public_key: Vec<u8>,
    /// The modulus length in bytes (the signature's length).
    signature_len: usize,
}

impl PublicCertificate {
    /// Reads a PEM certificate; `None` when it is not an RSA certificate.
    pub fn from_pem(pem_text: &str, thumbprint: &str) -> Option<PublicCertificate> {
        let block = pem::parse(pem_text).ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).ok()?;
        let spki = cert.public_key();
        let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = spki.parsed() else {
            return None;
        };
        Some(PublicCertificate {
            thumbprint: thumbprint.to_string(),
            rsa_public_key: spki.subject_public_key.data.to_vec(),
            signature_len: rsa.key_size().div_ceil(8),
        })
    }
}

/// Headers that never carry a signature.
const ORDINARY_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "authorization",
    "date",
    "expect",
    "traceparent",
    "tracestate",
    "request-id",
    "cookie",
];

/// The signature bytes a header value may hold, with the encoding: the value as it is, and
/// after a short scheme prefix (`sha256=…`, `RSA-SHA256 …`, `v1:…`).
fn decodings(value: &str, encoding: Option<Encoding>) -> Vec<(Vec<u8>, Encoding)> {
    let value = value.trim();
    let mut texts = vec![value];
    if let Some(pos) = value.find(['=', ' ', ':']) {
        let rest = &value[pos + 1..];
        if pos <= 16 && rest.len() >= 16 {
            texts.push(rest.trim());
        }
    }
    let mut out = Vec::new();
    for text in texts {
        if encoding != Some(Encoding::Base64) {
            if let Ok(bytes) = hex::decode(text) {
                out.push((bytes, Encoding::Hex));
                continue;
            }
        }
        if encoding != Some(Encoding::Hex) {
            for engine in [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ] {
                if let Ok(bytes) = engine.decode(text) {
                    out.push((bytes, Encoding::Base64));
                    break;
                }
            }
        }
    }
    out
}

fn looks_like_thumbprint(value: &str) -> bool {
    let v = value.trim();
    v.len() == 40 && v.chars().all(|c| c.is_ascii_hexdigit())
}

/// Verifies `body` against the signature headers. Returns the result and what was found, in
/// words (the header, padding and encoding that verified; or why nothing did).
pub fn verify(
    scheme: &SignatureScheme,
    certificate: Option<&PublicCertificate>,
    headers: &[(String, String)],
    body: &[u8],
) -> (Verification, String) {
    let Some(cert) = certificate else {
        return (
            Verification::NoCertificate,
            "Mailroom has no webhook certificate to verify with: generate or import it in the Integration area".into(),
        );
    };
    let candidates: Vec<&(String, String)> = headers
        .iter()
        .filter(|(name, value)| match &scheme.header {
            Some(h) => name.eq_ignore_ascii_case(h),
            None => {
                !ORDINARY_HEADERS
                    .iter()
                    .any(|o| name.eq_ignore_ascii_case(o))
                    && (16..=4096).contains(&value.len())
            }
        })
        .collect();
    let paddings: Vec<Padding> = match scheme.padding {
        Some(p) => vec![p],
        None => vec![Padding::Pkcs1v15Sha256, Padding::PssSha256],
    };
    let mut signature_like: Option<&str> = None;
    for (name, value) in &candidates {
        for (bytes, encoding) in decodings(value, scheme.encoding) {
            if bytes.len() != cert.signature_len {
                continue;
            }
            signature_like.get_or_insert(name.as_str());
            for padding in &paddings {
                let key = ring::signature::UnparsedPublicKey::new(
                    padding.algorithm(),
                    &cert.rsa_public_key,
                );
                if key.verify(body, &bytes).is_ok() {
                    return (
                        Verification::Verified,
                        format!(
                            "Signature in {name} verified ({}, {}) with certificate {}",
                            padding.label(),
                            match encoding {
                                Encoding::Base64 => "base64",
                                Encoding::Hex => "hex",
                            },
                            cert.thumbprint
                        ),
                    );
                }
            }
        }
    }
    let other_thumbprint = headers.iter().find(|(_, v)| {
        looks_like_thumbprint(v) && !crate::integration::same_thumbprint(v, &cert.thumbprint)
    });
    if let Some((name, value)) = other_thumbprint {
        return (
            Verification::WrongCertificate,
            format!(
                "Signed with another certificate ({name}: {}); Mailroom's is {}. Select the \"Mailroom\" certificate on the webhook in HaloPSA, or upload Mailroom's again",
                value.trim(),
                cert.thumbprint
            ),
        );
    }
    let named = candidates
        .iter()
        .find(|(n, _)| n.to_ascii_lowercase().contains("signature"))
        .map(|(n, _)| n.as_str());
    match signature_like.or(named) {
        Some(name) => (
            Verification::Forged,
            format!(
                "The signature in {name} does not verify with Mailroom's certificate {}: the body was changed or not signed by HaloPSA",
                cert.thumbprint
            ),
        ),
        None => {
            let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            (
                Verification::Unsigned,
                match &scheme.header {
                    Some(h) => format!("No {h} header; the request carried: {}", names.join(", ")),
                    None => format!(
                        "No signature header; the request carried: {}. Set the webhook's Authentication to \"Sign Request Body with a X.509 Certificate\"",
                        names.join(", ")
                    ),
                },
            )
        }
    }
}

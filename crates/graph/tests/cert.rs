//! PFX import (OpenSSL modern + legacy, rcgen + p12-keystore writer), PEM bundles and client
//! assertion JWTs verified with the certificate's public key.

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use mailroom_graph::{
    AssertionAlgorithm, AssertionClaims, CertificateCredential, CertificateError,
};
use sha2::Digest;
use x509_parser::prelude::{FromDer, X509Certificate};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl CLI present");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Key + self-signed cert made by openssl; returns (dir, cert DER).
fn key_and_cert() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=Mailroom Daemon Test",
            "-days",
            "30",
        ],
    );
    openssl(
        dir.path(),
        &[
            "x509", "-in", "cert.pem", "-outform", "der", "-out", "cert.der",
        ],
    );
    let der = std::fs::read(dir.path().join("cert.der")).unwrap();
    (dir, der)
}

#[test]
fn modern_and_legacy_openssl_pfx_import() {
    let (dir, der) = key_and_cert();
    openssl(
        dir.path(),
        &[
            "pkcs12",
            "-export",
            "-in",
            "cert.pem",
            "-inkey",
            "key.pem",
            "-out",
            "modern.pfx",
            "-passout",
            "pass:correct horse",
        ],
    );
    openssl(
        dir.path(),
        &[
            "pkcs12",
            "-export",
            "-legacy",
            "-in",
            "cert.pem",
            "-inkey",
            "key.pem",
            "-out",
            "legacy.pfx",
            "-passout",
            "pass:correct horse",
        ],
    );
    // Prove the two files really use different schemes.
    let info = |file: &str, legacy: bool| {
        let mut args = vec![
            "pkcs12",
            "-info",
            "-in",
            file,
            "-noout",
            "-passin",
            "pass:correct horse",
        ];
        if legacy {
            args.push("-legacy");
        }
        let out = Command::new("openssl")
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(info("modern.pfx", false).contains("AES-256-CBC"));
    let legacy_info = info("legacy.pfx", true);
    assert!(
        legacy_info.contains("RC2") || legacy_info.contains("3-key Triple DES"),
        "{legacy_info}"
    );

    let expected_sha1 = hex::encode_upper(sha1::Sha1::digest(&der));
    let expected_sha256: [u8; 32] = sha2::Sha256::digest(&der).into();
    for file in ["modern.pfx", "legacy.pfx"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap();
        let cred = CertificateCredential::from_pfx(&bytes, "correct horse").unwrap();
        assert_eq!(cred.subject(), "CN=Mailroom Daemon Test", "{file}");
        assert_eq!(cred.cert_der(), der.as_slice());
        assert_eq!(cred.thumbprint_sha1_hex(), expected_sha1);
        assert_eq!(cred.thumbprint_sha256(), expected_sha256);
        let days = (cred.not_after() - cred.not_before()).num_days();
        assert_eq!(days, 30);
        assert!(!format!("{cred:?}").contains("PRIVATE"));

        match CertificateCredential::from_pfx(&bytes, "wrong") {
            Err(CertificateError::WrongPassword) => {}
            other => panic!("{file}: expected WrongPassword, got {other:?}"),
        }
    }
    match CertificateCredential::from_pfx(b"not a pfx at all", "x") {
        Err(CertificateError::InvalidPfx(_)) => {}
        other => panic!("expected InvalidPfx, got {other:?}"),
    }
}

#[test]
fn rcgen_certificate_through_p12_keystore_writer() {
    let (dir, _) = key_and_cert();
    let key_pem = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    let key_pair =
        rcgen::KeyPair::from_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mailroom.test".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Mailroom rcgen");
    let cert = params.self_signed(&key_pair).unwrap();

    let pkcs8 = key_pair.serialize_der();
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![1u8, 2, 3, 4],
        p12_keystore::PrivateKey::from_der(&pkcs8).unwrap(),
        [p12_keystore::Certificate::from_der(cert.der()).unwrap()],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "mailroom",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    let pfx = store.writer("s3cret").write().unwrap();

    // OpenSSL can read what the writer produced …
    std::fs::write(dir.path().join("rcgen.pfx"), &pfx).unwrap();
    openssl(
        dir.path(),
        &[
            "pkcs12",
            "-in",
            "rcgen.pfx",
            "-passin",
            "pass:s3cret",
            "-nokeys",
            "-out",
            "rcgen.pem",
        ],
    );
    // … and so can we.
    let cred = CertificateCredential::from_pfx(&pfx, "s3cret").unwrap();
    assert_eq!(cred.subject(), "CN=Mailroom rcgen");
    assert_eq!(cred.cert_der(), cert.der().as_ref());
    assert!(matches!(
        CertificateCredential::from_pfx(&pfx, "S3cret"),
        Err(CertificateError::WrongPassword)
    ));

    // PEM bundle round trip (what the app keeps in the keyring).
    let bundle = cred.to_pem_bundle();
    assert!(bundle.expose().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(bundle.expose().contains("-----BEGIN PRIVATE KEY-----"));
    let back = CertificateCredential::from_pem_bundle(bundle.expose()).unwrap();
    assert_eq!(back.thumbprint_sha256(), cred.thumbprint_sha256());
    assert_eq!(back.private_key_pkcs8(), cred.private_key_pkcs8());

    // A key from another certificate is refused.
    let (other_dir, other_der) = key_and_cert();
    // `openssl req -newkey` writes PKCS#8 ("BEGIN PRIVATE KEY").
    let other_key = std::fs::read_to_string(other_dir.path().join("key.pem")).unwrap();
    let other_key = pem::parse(other_key).unwrap();
    assert_eq!(other_key.tag(), "PRIVATE KEY");
    assert!(matches!(
        CertificateCredential::from_der(
            cert.der().to_vec(),
            mailroom_graph::SecretBytes::new(other_key.contents().to_vec())
        ),
        Err(CertificateError::KeyMismatch)
    ));
    let _ = other_der;
}

fn verify_assertion(cred: &CertificateCredential, alg: jsonwebtoken::Algorithm) {
    let endpoint = "http://127.0.0.1:1/6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab/oauth2/v2.0/token";
    let now = Utc::now();
    let jwt = cred
        .client_assertion("c0ffee00-0000-4000-8000-000000000003", endpoint, now)
        .unwrap();
    let header = jsonwebtoken::decode_header(jwt.expose()).unwrap();
    assert_eq!(header.alg, alg);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    match alg {
        jsonwebtoken::Algorithm::PS256 => {
            assert_eq!(
                header.x5t_s256.as_deref(),
                Some(
                    URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(cred.cert_der()))
                        .as_str()
                )
            );
            assert!(header.x5t.is_none());
        }
        _ => {
            assert_eq!(
                header.x5t.as_deref(),
                Some(
                    URL_SAFE_NO_PAD
                        .encode(sha1::Sha1::digest(cred.cert_der()))
                        .as_str()
                )
            );
        }
    }
    // The public key from the certificate (PKCS#1 `RSAPublicKey` inside the SPKI bit string).
    let (_, cert) = X509Certificate::from_der(cred.cert_der()).unwrap();
    let decoding =
        jsonwebtoken::DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_audience(&[endpoint]);
    validation.set_issuer(&["c0ffee00-0000-4000-8000-000000000003"]);
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<AssertionClaims>(jwt.expose(), &decoding, &validation)
        .expect("signature verifies with the certificate's key");
    let c = data.claims;
    assert_eq!(c.sub, c.iss);
    assert_eq!(c.nbf, now.timestamp());
    assert_eq!(c.exp - c.nbf, 600);
    assert_eq!(uuid::Uuid::parse_str(&c.jti).unwrap().get_version_num(), 4);
    // A second assertion has a fresh jti.
    let again = cred
        .client_assertion("c0ffee00-0000-4000-8000-000000000003", endpoint, now)
        .unwrap();
    let again =
        jsonwebtoken::decode::<AssertionClaims>(again.expose(), &decoding, &validation).unwrap();
    assert_ne!(again.claims.jti, c.jti);
}

#[test]
fn client_assertions_verify_with_the_public_key() {
    let (dir, _) = key_and_cert();
    openssl(
        dir.path(),
        &[
            "pkcs12", "-export", "-in", "cert.pem", "-inkey", "key.pem", "-out", "a.pfx",
            "-passout", "pass:",
        ],
    );
    let bytes = std::fs::read(dir.path().join("a.pfx")).unwrap();
    let cred = CertificateCredential::from_pfx(&bytes, "").unwrap();
    assert_eq!(cred.algorithm(), AssertionAlgorithm::Ps256X5tS256);
    verify_assertion(&cred, jsonwebtoken::Algorithm::PS256);
    let rs = cred.with_algorithm(AssertionAlgorithm::Rs256X5t);
    verify_assertion(&rs, jsonwebtoken::Algorithm::RS256);
}

/// Entra needs RSA keys of at least 2048 bits; ring (the signer) refuses smaller ones, and the
/// import says so instead of failing later at sign-in.
#[test]
fn a_1024_bit_key_is_refused_at_import() {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=Too Small",
            "-days",
            "30",
        ],
    );
    openssl(
        dir.path(),
        &[
            "pkcs12",
            "-export",
            "-in",
            "cert.pem",
            "-inkey",
            "key.pem",
            "-out",
            "small.pfx",
            "-passout",
            "pass:pw",
        ],
    );
    let pfx = std::fs::read(dir.path().join("small.pfx")).unwrap();
    match CertificateCredential::from_pfx(&pfx, "pw") {
        Err(CertificateError::UnsupportedKey(why)) => assert!(why.contains("1024-bit"), "{why}"),
        other => panic!("expected UnsupportedKey, got {other:?}"),
    }
}

#[test]
fn to_pfx_writes_a_file_openssl_and_the_importer_read() {
    let (dir, _) = key_and_cert();
    openssl(
        dir.path(),
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "key.pem",
            "-in",
            "cert.pem",
            "-passout",
            "pass:first",
            "-out",
            "first.pfx",
        ],
    );
    let original = CertificateCredential::from_pfx(
        &std::fs::read(dir.path().join("first.pfx")).unwrap(),
        "first",
    )
    .unwrap();
    let pfx = original.to_pfx("Mailroom", "second").unwrap();
    std::fs::write(dir.path().join("second.pfx"), &pfx).unwrap();
    openssl(
        dir.path(),
        &[
            "pkcs12",
            "-in",
            "second.pfx",
            "-passin",
            "pass:second",
            "-nodes",
            "-out",
            "second.pem",
        ],
    );
    let pem = std::fs::read_to_string(dir.path().join("second.pem")).unwrap();
    assert!(pem.contains("friendlyName: Mailroom"), "{pem}");
    assert!(pem.contains("-----BEGIN PRIVATE KEY-----"));
    let back = CertificateCredential::from_pfx(&pfx, "second").unwrap();
    assert_eq!(back.thumbprint_sha1(), original.thumbprint_sha1());
    assert_eq!(back.private_key_pkcs8(), original.private_key_pkcs8());
    assert!(matches!(
        CertificateCredential::from_pfx(&pfx, "first"),
        Err(CertificateError::WrongPassword)
    ));
}

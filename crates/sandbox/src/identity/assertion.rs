//! Client assertion (certificate credential) validation (reference §1.10).

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, Validation};

use super::errors::AadError;
use super::{App, AppCertificate};

/// Validates a `client_assertion` JWT for `app`; returns the certificate used.
///
/// Accepts RS256 and PS256, `x5t` (SHA-1) or `x5t#S256` headers, `aud` equal to one of
/// `audiences`, `iss` = `sub` = client id, `exp` in the future and `nbf` not in the future
/// (checked against `now`, with five minutes of skew like Entra).
pub(crate) fn validate(
    app: &App,
    assertion: &str,
    audiences: &[String],
    now: i64,
) -> Result<AppCertificate, AadError> {
    let fail = |msg: String| AadError::client(700027, msg);
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| fail(format!("Client assertion contains an invalid signature. [Reason - The assertion is not a valid JWT: {e}., Thumbprint of key used by client: 'unknown']")))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(fail(format!(
            "Client assertion contains an invalid signature. [Reason - The key algorithm {:?} is not supported; use PS256 or RS256.]",
            header.alg
        )));
    }
    if header.x5t.is_none() && header.x5t_s256.is_none() {
        return Err(fail("Client assertion contains an invalid signature. [Reason - The header has neither 'x5t' nor 'x5t#S256'.]".into()));
    }
    let thumb = header
        .x5t_s256
        .clone()
        .or_else(|| header.x5t.clone())
        .unwrap_or_default();
    let Some(cert) = app
        .certificates
        .iter()
        .find(|c| c.matches(header.x5t.as_deref(), header.x5t_s256.as_deref()))
    else {
        return Err(fail(format!(
            "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}'. Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
            app.client_id
        )));
    };
    // Entra checks the registered key's validity first: an expired key fails every assertion.
    if cert.not_after.timestamp() <= now {
        return Err(fail(format!(
            "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{thumb}', Found key 'Start=..., End={}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
            cert.not_after.format("%m/%d/%Y %H:%M:%S"),
            app.client_id
        )));
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let data = jsonwebtoken::decode::<serde_json::Value>(assertion, &cert.decoding_key(), &validation)
        .map_err(|e| fail(format!(
            "Client assertion failed signature validation. [Reason - {e}, Thumbprint of key used by client: '{thumb}', Found key 'Start=..., End={}']",
            cert.not_after.format("%m/%d/%Y %H:%M:%S")
        )))?;
    let c = data.claims;
    let s = |k: &str| {
        c.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let aud_ok = match c.get("aud") {
        Some(serde_json::Value::String(a)) => audiences.iter().any(|x| x == a),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str())
            .any(|a| audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if !aud_ok {
        return Err(fail(format!(
            "The audience claim in the client assertion is not valid. Expected '{}' (the token endpoint) but found '{}'.",
            audiences.first().cloned().unwrap_or_default(),
            c.get("aud").map(|v| v.to_string()).unwrap_or_default()
        )));
    }
    if !s("iss").eq_ignore_ascii_case(&app.client_id)
        || !s("sub").eq_ignore_ascii_case(&app.client_id)
    {
        return Err(fail(format!(
            "The issuer and subject of the client assertion must both be the client id '{}'.",
            app.client_id
        )));
    }
    let skew = 300;
    let Some(exp) = c.get("exp").and_then(|v| v.as_f64()).map(|f| f as i64) else {
        return Err(fail("The client assertion has no 'exp' claim.".into()));
    };
    if exp + skew <= now {
        return Err(AadError::client(
            700024,
            "Client assertion is not within its valid time range. Ensure that the 'exp' claim is in the future.",
        ));
    }
    if let Some(nbf) = c.get("nbf").and_then(|v| v.as_f64()).map(|f| f as i64) {
        if nbf - skew > now {
            return Err(AadError::client(
                700024,
                "Client assertion is not within its valid time range. Ensure that the 'nbf' claim is not in the future.",
            ));
        }
    }
    Ok(cert.clone())
}

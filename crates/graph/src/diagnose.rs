//! Turning identity-platform errors into admin-facing causes and fixes, and checking granted
//! permissions against what a method needs.
//!
//! AADSTS numbers are used for hints only (Microsoft warns they can change, reference §1.5);
//! control flow keys off the OAuth `error` value and HTTP status.

use crate::identity::{AadError, IdentityError, TokenSet};
use crate::loopback::SignInError;

/// What kind of problem an identity error is (closed set; `Unknown` for everything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DiagnosisKind {
    WrongSecret,
    ExpiredSecret,
    ConsentMissing,
    RedirectUriNotRegistered,
    WrongTenantOrCloud,
    PublicClientSentSecret,
    ConfidentialClientNoSecret,
    /// The refresh token is expired or revoked: re-authorize interactively.
    GrantRevoked,
    InvalidCertificate,
    CodeExpiredOrUsed,
    PkceMismatch,
    /// The requested scope is malformed or spans several resources (AADSTS70011/700022).
    InvalidScope,
    ConditionalAccess,
    MfaRequired,
    Throttled,
    Unknown,
}

/// An admin-facing explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub kind: DiagnosisKind,
    /// What went wrong, in plain words (includes the AADSTS number when known).
    pub cause: String,
    /// What to do about it.
    pub fix: String,
}

struct Entry {
    codes: &'static [u64],
    kind: DiagnosisKind,
    cause: &'static str,
    fix: &'static str,
}

use DiagnosisKind::*;

/// Every AADSTS code of the reference's §1.6 table, plus a few close relatives.
const TABLE: &[Entry] = &[
    Entry { codes: &[70008, 700082], kind: GrantRevoked, cause: "the refresh token expired (unused for too long)", fix: "Sign in again (Authorize) to reconnect the mailbox." },
    Entry { codes: &[50173], kind: GrantRevoked, cause: "the grant was revoked (password reset or token revocation by an admin or the user)", fix: "Sign in again (Authorize) to reconnect the mailbox." },
    Entry { codes: &[700084], kind: GrantRevoked, cause: "the refresh token passed the fixed lifetime of single-page-app (SPA) redirects", fix: "Register http://localhost under 'Mobile and desktop applications', not 'Single-page application', then sign in again." },
    Entry { codes: &[65001], kind: ConsentMissing, cause: "nobody has consented to the app's permissions for this user or tenant", fix: "Grant admin consent for the app's API permissions in Entra (App registrations > API permissions > Grant admin consent), or sign in interactively and accept." },
    Entry { codes: &[90094, 90099], kind: ConsentMissing, cause: "the permissions need an administrator's consent", fix: "Ask a Global/Privileged Role administrator to grant admin consent for the app." },
    Entry { codes: &[7000215], kind: WrongSecret, cause: "the client secret is wrong", fix: "Paste the client secret VALUE (shown once when it is created), not the secret ID; create a new secret if the value is lost." },
    Entry { codes: &[7000222], kind: ExpiredSecret, cause: "the client secret has expired", fix: "Create a new client secret under Certificates & secrets and enter its value; note the new expiry date." },
    Entry { codes: &[7000218], kind: ConfidentialClientNoSecret, cause: "the app is confidential (its redirect URI is on the 'Web' platform) but no secret or certificate was sent", fix: "Either enter the app's client secret, or move http://localhost to the 'Mobile and desktop applications' platform so the app is a public client." },
    Entry { codes: &[700025], kind: PublicClientSentSecret, cause: "the app is a public client ('Mobile and desktop' redirect) but a secret or certificate was sent", fix: "Remove the client secret from Mailroom's settings for this app, or register the redirect under the 'Web' platform." },
    Entry { codes: &[700027, 700023, 700024, 7000274, 7000277], kind: InvalidCertificate, cause: "the client assertion was rejected (signature, certificate not registered, or expired/not yet valid assertion)", fix: "Upload the certificate's public part (.cer) under Certificates & secrets, check it is not expired, and check the machine clock." },
    Entry { codes: &[50011], kind: RedirectUriNotRegistered, cause: "the redirect URI sent by Mailroom is not registered for the app", fix: "Add http://localhost under 'Mobile and desktop applications' (the port is ignored for localhost)." },
    Entry { codes: &[90002], kind: WrongTenantOrCloud, cause: "the tenant was not found (often the wrong cloud or a typo in the tenant)", fix: "Check the Directory (tenant) ID and the selected cloud (Global, US Gov, China)." },
    Entry { codes: &[700016], kind: WrongTenantOrCloud, cause: "the application ID was not found in this tenant", fix: "Check the Application (client) ID and the tenant; the app must be registered in this tenant and cloud." },
    Entry { codes: &[500011], kind: WrongTenantOrCloud, cause: "the resource (Microsoft Graph) principal was not found in the tenant", fix: "Check the tenant and cloud, and that consent was granted in this tenant." },
    Entry { codes: &[50020, 50034, 51004], kind: WrongTenantOrCloud, cause: "the user account does not exist in this tenant", fix: "Sign in with an account of this tenant, or use the right tenant ID." },
    Entry { codes: &[50194], kind: WrongTenantOrCloud, cause: "a single-tenant app was used with the /common authority", fix: "Use the tenant-specific authority (enter the Directory (tenant) ID)." },
    Entry { codes: &[9001023], kind: WrongTenantOrCloud, cause: "client credentials are not supported on /common or /consumers", fix: "Enter the Directory (tenant) ID instead of 'common'." },
    Entry { codes: &[90038, 900432], kind: WrongTenantOrCloud, cause: "the tenant lives in another national cloud", fix: "Select the tenant's cloud (e.g. US Government or China) in Mailroom." },
    Entry { codes: &[70011, 700022], kind: InvalidScope, cause: "the requested scope is invalid or names more than one resource", fix: "This is a Mailroom configuration problem; check the cloud setting and report it." },
    Entry { codes: &[54005, 70000, 9002313], kind: CodeExpiredOrUsed, cause: "the authorization code was already redeemed or has expired", fix: "Start the sign-in again." },
    Entry { codes: &[501481], kind: PkceMismatch, cause: "the PKCE code verifier did not match the challenge", fix: "Start the sign-in again; if it repeats, report it as a Mailroom bug." },
    Entry { codes: &[53003], kind: ConditionalAccess, cause: "a Conditional Access policy blocked the sign-in", fix: "Ask an Entra administrator to check the sign-in logs and the Conditional Access policies for this app and user." },
    Entry { codes: &[50076, 50079], kind: MfaRequired, cause: "multi-factor authentication is required (or must be registered)", fix: "Sign in interactively again and complete MFA." },
    Entry { codes: &[50196, 50053], kind: Throttled, cause: "too many sign-in requests in a short time", fix: "Wait a few minutes and try again." },
];

/// Diagnoses an Entra error body (status is used for throttling).
pub fn diagnose_aad(error: &AadError, status: Option<u16>) -> Diagnosis {
    let code = error.aadsts();
    let with_code = |cause: &str| match code {
        Some(c) => format!("AADSTS{c}: {cause}"),
        None => cause.to_string(),
    };
    if let Some(c) = code {
        if let Some(entry) = TABLE.iter().find(|e| e.codes.contains(&c)) {
            return Diagnosis {
                kind: entry.kind,
                cause: with_code(entry.cause),
                fix: entry.fix.to_string(),
            };
        }
    }
    if status == Some(429) {
        return Diagnosis {
            kind: Throttled,
            cause: with_code("the identity platform is throttling this app"),
            fix: "Wait a few minutes and try again.".into(),
        };
    }
    let detail = error
        .error_description
        .as_deref()
        .and_then(|d| d.lines().next())
        .unwrap_or("");
    let (kind, cause, fix) = match (error.error.as_str(), error.suberror.as_deref()) {
        (_, Some("consent_required")) | ("consent_required", _) => (
            ConsentMissing,
            "consent is required for the requested permissions",
            "Grant admin consent for the app's API permissions in Entra.",
        ),
        ("interaction_required", _) => (
            MfaRequired,
            "an interactive sign-in is required",
            "Sign in interactively again.",
        ),
        ("invalid_grant", _) => (
            GrantRevoked,
            "the grant is no longer valid",
            "Sign in again (Authorize) to reconnect the mailbox.",
        ),
        ("temporarily_unavailable", _) => (
            Throttled,
            "the identity platform is temporarily unavailable",
            "Wait a few minutes and try again.",
        ),
        _ => (
            Unknown,
            "the identity platform returned an error Mailroom does not recognise",
            "Check the error text and the Entra sign-in logs (search by the correlation id).",
        ),
    };
    let mut cause = with_code(cause);
    if !detail.is_empty() && kind == Unknown {
        cause = format!("{cause} ({}: {detail})", error.error);
    }
    Diagnosis {
        kind,
        cause,
        fix: fix.to_string(),
    }
}

/// Diagnoses a token request failure.
pub fn diagnose(error: &IdentityError) -> Diagnosis {
    match error {
        IdentityError::Rejected { status, error } => diagnose_aad(error, Some(*status)),
        IdentityError::Certificate(e) => Diagnosis {
            kind: InvalidCertificate,
            cause: e.to_string(),
            fix: "Import the certificate (PFX with private key) again.".into(),
        },
        IdentityError::Transport(e) => Diagnosis {
            kind: Unknown,
            cause: format!("the identity platform could not be reached: {e}"),
            fix: "Check the network/proxy and the selected cloud.".into(),
        },
        other => Diagnosis {
            kind: Unknown,
            cause: other.to_string(),
            fix: "Check the app registration settings in Mailroom.".into(),
        },
    }
}

/// Diagnoses an interactive sign-in failure.
pub fn diagnose_sign_in(error: &SignInError) -> Diagnosis {
    match error {
        SignInError::Token(e) => diagnose(e),
        SignInError::Denied(e) => diagnose_aad(e, None),
        SignInError::TimedOut(_) => Diagnosis {
            kind: Unknown,
            cause: "the browser never came back to Mailroom. If the Microsoft page showed AADSTS50011, the redirect URI is not registered".into(),
            fix: "Register http://localhost under 'Mobile and desktop applications' and try again.".into(),
        },
        other => Diagnosis {
            kind: Unknown,
            cause: other.to_string(),
            fix: "Try the sign-in again.".into(),
        },
    }
}

/// How the mailbox is connected (decides the permissions needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMethod {
    /// Delegated mailbox scan (auth code + refresh token).
    MailboxScan {
        /// A shared mailbox is processed through the signed-in user.
        shared_mailbox: bool,
        /// Outlook contacts are imported.
        contacts: bool,
    },
    /// App-only webhooks (client credentials).
    Webhooks {
        /// Outlook contacts are imported.
        contacts: bool,
    },
}

/// Scopes to request in the delegated sign-in: `openid profile offline_access User.Read
/// Mail.ReadWrite Mail.Send`, plus the `.Shared` variants for a shared mailbox and
/// `Contacts.Read` for contact import. (`openid profile` give the id_token with the account.)
pub fn delegated_scopes(shared_mailbox: bool, contacts: bool) -> Vec<String> {
    let mut scopes: Vec<String> = [
        "openid",
        "profile",
        "offline_access",
        "User.Read",
        "Mail.ReadWrite",
        "Mail.Send",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if shared_mailbox {
        scopes.push("Mail.ReadWrite.Shared".into());
        scopes.push("Mail.Send.Shared".into());
    }
    if contacts {
        scopes.push("Contacts.Read".into());
    }
    scopes
}

/// Graph permissions a method needs (delegated scopes or application roles).
pub fn required_permissions(method: AccessMethod) -> Vec<String> {
    match method {
        AccessMethod::MailboxScan {
            shared_mailbox,
            contacts,
        } => delegated_scopes(shared_mailbox, contacts)
            .into_iter()
            .filter(|s| !matches!(s.as_str(), "openid" | "profile" | "offline_access"))
            .collect(),
        AccessMethod::Webhooks { contacts } => {
            let mut v = vec!["Mail.ReadWrite".to_string(), "Mail.Send".to_string()];
            if contacts {
                v.push("Contacts.Read".into());
            }
            v
        }
    }
}

/// Strips a resource prefix: `https://graph.microsoft.com/Mail.Send` → `Mail.Send`.
pub fn normalize_permission(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

/// What a token grants: the token response's `scope` (delegated) or the `roles` claim decoded
/// from the access token (app-only), normalised without resource prefixes.
pub fn granted_permissions(tokens: &TokenSet) -> Vec<String> {
    let mut out: Vec<String> = tokens
        .scopes
        .iter()
        .map(|s| normalize_permission(s))
        .collect();
    if out.is_empty() {
        if let Some(p) = crate::identity::access_token_permissions(tokens.access_token.expose()) {
            out = p.iter().map(|s| normalize_permission(s)).collect();
        }
    }
    out
}

/// The required permissions that are not granted (case-insensitive; `X.ReadWrite` satisfies
/// `X.Read`).
pub fn missing_permissions(granted: &[String], required: &[String]) -> Vec<String> {
    let granted: Vec<String> = granted
        .iter()
        .map(|g| normalize_permission(g).to_ascii_lowercase())
        .collect();
    required
        .iter()
        .filter(|r| {
            let r = normalize_permission(r).to_ascii_lowercase();
            let upgraded = r.replace(".read", ".readwrite");
            !granted.iter().any(|g| *g == r || *g == upgraded)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(error: &str, code: u64) -> AadError {
        AadError {
            error: error.into(),
            error_description: Some(format!("AADSTS{code}: text")),
            error_codes: vec![code],
            ..Default::default()
        }
    }

    #[test]
    fn every_reference_code_has_a_specific_kind() {
        let cases: &[(u64, DiagnosisKind)] = &[
            (70008, GrantRevoked),
            (700082, GrantRevoked),
            (50173, GrantRevoked),
            (700084, GrantRevoked),
            (65001, ConsentMissing),
            (90094, ConsentMissing),
            (7000215, WrongSecret),
            (7000222, ExpiredSecret),
            (7000218, ConfidentialClientNoSecret),
            (700025, PublicClientSentSecret),
            (700027, InvalidCertificate),
            (50011, RedirectUriNotRegistered),
            (90002, WrongTenantOrCloud),
            (700016, WrongTenantOrCloud),
            (500011, WrongTenantOrCloud),
            (50020, WrongTenantOrCloud),
            (50034, WrongTenantOrCloud),
            (51004, WrongTenantOrCloud),
            (50194, WrongTenantOrCloud),
            (9001023, WrongTenantOrCloud),
            (70011, InvalidScope),
            (700022, InvalidScope),
            (54005, CodeExpiredOrUsed),
            (501481, PkceMismatch),
            (53003, ConditionalAccess),
            (50076, MfaRequired),
            (50079, MfaRequired),
            (90038, WrongTenantOrCloud),
            (900432, WrongTenantOrCloud),
        ];
        for (code, kind) in cases {
            let diag = diagnose_aad(&err("invalid_grant", *code), Some(400));
            assert_eq!(diag.kind, *kind, "AADSTS{code}");
            assert!(diag.cause.contains(&format!("AADSTS{code}")));
            assert!(!diag.fix.is_empty());
        }
    }

    #[test]
    fn falls_back_on_error_and_status() {
        let throttled = AadError {
            error: "temporarily_unavailable".into(),
            ..Default::default()
        };
        assert_eq!(diagnose_aad(&throttled, Some(429)).kind, Throttled);
        let consent = AadError {
            error: "invalid_grant".into(),
            suberror: Some("consent_required".into()),
            ..Default::default()
        };
        assert_eq!(diagnose_aad(&consent, Some(400)).kind, ConsentMissing);
        let odd = AadError {
            error: "server_error".into(),
            error_description: Some("AADSTS1: odd".into()),
            ..Default::default()
        };
        let diag = diagnose_aad(&odd, Some(400));
        assert_eq!(diag.kind, Unknown);
        assert!(diag.cause.contains("AADSTS1"));
    }

    #[test]
    fn scope_sets_and_missing_permissions() {
        assert_eq!(
            delegated_scopes(false, false),
            vec![
                "openid",
                "profile",
                "offline_access",
                "User.Read",
                "Mail.ReadWrite",
                "Mail.Send"
            ]
        );
        let shared = delegated_scopes(true, true);
        assert!(shared.contains(&"Mail.ReadWrite.Shared".to_string()));
        assert!(shared.contains(&"Mail.Send.Shared".to_string()));
        assert!(shared.contains(&"Contacts.Read".to_string()));

        let granted = vec![
            "https://graph.microsoft.com/Mail.ReadWrite".to_string(),
            "https://graph.microsoft.com/User.Read".to_string(),
            "https://graph.microsoft.com/Contacts.ReadWrite".to_string(),
        ];
        let required = required_permissions(AccessMethod::MailboxScan {
            shared_mailbox: false,
            contacts: true,
        });
        assert_eq!(missing_permissions(&granted, &required), vec!["Mail.Send"]);
        let roles = vec!["Mail.ReadWrite".to_string(), "Mail.Send".to_string()];
        assert!(missing_permissions(
            &roles,
            &required_permissions(AccessMethod::Webhooks { contacts: false })
        )
        .is_empty());
        assert_eq!(
            missing_permissions(
                &roles,
                &required_permissions(AccessMethod::Webhooks { contacts: true })
            ),
            vec!["Contacts.Read"]
        );
    }
}

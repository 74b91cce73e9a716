//! What went wrong, for an admin: identity, sign-in, certificate and Graph failures
//! mapped to a stable code, a cause and a fix (`DiagnosisReport`), and error text pasted from
//! elsewhere diagnosed the same way.

use chrono::{DateTime, Utc};
use mailroom_graph::{
    diagnose, diagnose_sign_in, CertificateError, Diagnosis, DiagnosisKind, GraphError,
    GraphErrorKind, IdentityError, SignInError,
};
use mailroom_store::MailboxMethod;
use serde::Serialize;

use crate::{CoreError, ErrorCode};

/// An admin-facing diagnosis with a stable code the UI can switch on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiagnosisReport {
    /// Stable snake_case code, e.g. `wrong_secret`, `consent_missing`, `access_denied`.
    pub code: String,
    /// What went wrong, in plain words (with the AADSTS number when known).
    pub cause: String,
    /// What to do about it.
    pub fix: String,
}

pub(super) fn snake(kind: DiagnosisKind) -> String {
    let name = format!("{kind:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl DiagnosisReport {
    /// From the Graph crate's diagnosis.
    pub fn from_diagnosis(d: &Diagnosis) -> Self {
        DiagnosisReport {
            code: snake(d.kind),
            cause: d.cause.clone(),
            fix: d.fix.clone(),
        }
    }

    /// The Graph crate's kind, when the code is one of its kinds.
    pub fn is(&self, kind: DiagnosisKind) -> bool {
        self.code == snake(kind)
    }
}

/// Why connecting or using a mailbox's Microsoft 365 connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No usable credential/token is stored: authorize (delegated) or re-enter the credential.
    #[error("{0}")]
    NotConnected(String),
    /// The identity platform refused (or the sign-in did not complete); see the diagnosis.
    #[error("{}. {}", diagnosis.cause, diagnosis.fix)]
    Identity {
        code: ErrorCode,
        diagnosis: DiagnosisReport,
    },
    /// The PFX could not be imported.
    #[error("{message}")]
    Certificate {
        wrong_password: bool,
        message: String,
    },
    /// The certificate's validity has ended: Entra refuses assertions signed with it
    /// (AADSTS700027, "The key used is expired").
    #[error(
        "the certificate {thumbprint} of mailbox '{mailbox}' expired on {}. Create a new \
         certificate, upload its public part (.cer) to the app registration in Entra \
         (Certificates & secrets), and import the new PFX",
        not_after.format("%Y-%m-%d %H:%M UTC")
    )]
    CertificateExpired {
        mailbox: String,
        thumbprint: String,
        not_after: DateTime<Utc>,
    },
    /// A Graph call failed.
    #[error("{}. {}", diagnosis.cause, diagnosis.fix)]
    Graph { diagnosis: DiagnosisReport },
    /// Cancel/finish was called but no sign-in is running for the mailbox.
    #[error("no sign-in is in progress for this mailbox; click Authorize to start one")]
    NoSignInPending,
}

impl ConnectError {
    /// The stable code for front ends.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConnectError::NotConnected(_) => ErrorCode::NotConnected,
            ConnectError::Identity { code, .. } => *code,
            ConnectError::Certificate {
                wrong_password: true,
                ..
            } => ErrorCode::PfxPasswordWrong,
            ConnectError::Certificate { .. } => ErrorCode::CertificateInvalid,
            ConnectError::CertificateExpired { .. } => ErrorCode::CertificateExpired,
            ConnectError::Graph { .. } => ErrorCode::GraphFailed,
            ConnectError::NoSignInPending => ErrorCode::SignInNotPending,
        }
    }

    /// The diagnosis, for identity and Graph failures.
    pub fn diagnosis(&self) -> Option<&DiagnosisReport> {
        match self {
            ConnectError::Identity { diagnosis, .. } | ConnectError::Graph { diagnosis } => {
                Some(diagnosis)
            }
            _ => None,
        }
    }

    pub(super) fn identity(error: &IdentityError) -> Self {
        ConnectError::Identity {
            code: ErrorCode::AuthFailed,
            diagnosis: DiagnosisReport::from_diagnosis(&diagnose(error)),
        }
    }

    pub(super) fn sign_in(error: &SignInError) -> Self {
        let code = match error {
            SignInError::Cancelled => ErrorCode::SignInCancelled,
            SignInError::TimedOut(_) => ErrorCode::SignInTimedOut,
            _ => ErrorCode::AuthFailed,
        };
        let diagnosis = match error {
            SignInError::Cancelled => DiagnosisReport {
                code: "cancelled".into(),
                cause: "the sign-in was cancelled".into(),
                fix: "Click Authorize to start it again.".into(),
            },
            other => DiagnosisReport::from_diagnosis(&diagnose_sign_in(other)),
        };
        ConnectError::Identity { code, diagnosis }
    }

    pub(super) fn certificate(error: CertificateError) -> Self {
        ConnectError::Certificate {
            wrong_password: matches!(error, CertificateError::WrongPassword),
            message: error.to_string(),
        }
    }

    pub(crate) fn graph(error: &GraphError, mailbox: &str) -> Self {
        if let Some(identity) = &error.identity {
            return ConnectError::identity(identity);
        }
        let diagnosis = match error.kind {
            GraphErrorKind::AccessDenied => DiagnosisReport {
                code: "access_denied".into(),
                cause: format!(
                    "Microsoft Graph refused access to {mailbox} ({}): a permission is missing or \
                     of the wrong type (delegated vs application), the signed-in user has no \
                     access to the shared mailbox, or an application access policy excludes this \
                     mailbox",
                    error.message
                ),
                fix: "Check the app's API permissions and admin consent in Entra; for webhooks, \
                      add the mailbox to the application access policy; for a shared mailbox, \
                      give the signed-in user Full Access."
                    .into(),
            },
            GraphErrorKind::NotFound => DiagnosisReport {
                code: "mailbox_not_found".into(),
                cause: format!("the mailbox {mailbox} was not found ({})", error.message),
                fix: "Check the mailbox address: its UPN must match the address, and the \
                      mailbox must be licensed or shared."
                    .into(),
            },
            GraphErrorKind::Unauthorized => DiagnosisReport {
                code: "token_rejected".into(),
                cause: format!(
                    "Microsoft Graph rejected the access token ({})",
                    error.message
                ),
                fix: "Check that the selected cloud matches the tenant, then connect again.".into(),
            },
            GraphErrorKind::Throttled => DiagnosisReport {
                code: "throttled".into(),
                cause: "Microsoft Graph is throttling requests for this mailbox".into(),
                fix: "Wait a few minutes and try again.".into(),
            },
            _ => DiagnosisReport {
                code: "graph_error".into(),
                cause: format!("the Microsoft Graph call failed: {error}"),
                fix: "Check the network and the Graph URL of the selected cloud, then try again."
                    .into(),
            },
        };
        ConnectError::Graph { diagnosis }
    }
}

/// Diagnoses an error text an admin saw (the Microsoft sign-in page, a log line, a CLI
/// message) by the AADSTS code it contains.
pub fn diagnose_text(text: &str) -> Option<DiagnosisReport> {
    let error = mailroom_graph::AadError::from_text(text)?;
    Some(DiagnosisReport::from_diagnosis(
        &mailroom_graph::diagnose_aad(&error, None),
    ))
}

/// Graph refused access and the token lacks needed permissions: consent is missing.
pub(super) fn consent_missing(missing: &[String], method: MailboxMethod) -> ConnectError {
    let kind = match method {
        MailboxMethod::Scan => "delegated",
        MailboxMethod::Webhook => "application",
    };
    ConnectError::Graph {
        diagnosis: DiagnosisReport {
            code: snake(DiagnosisKind::ConsentMissing),
            cause: format!(
                "the access token does not grant {} ({kind} permissions): admin consent is missing or was withdrawn",
                missing.join(", ")
            ),
            fix: format!(
                "In Entra, App registrations > API permissions: add {} as {kind} permissions of Microsoft Graph and click 'Grant admin consent'.",
                missing.join(", ")
            ),
        },
    }
}

impl CoreError {
    /// The diagnosis behind a connection failure, if any.
    pub fn diagnosis(&self) -> Option<&DiagnosisReport> {
        match self {
            CoreError::Connect(e) => e.diagnosis(),
            _ => None,
        }
    }
}

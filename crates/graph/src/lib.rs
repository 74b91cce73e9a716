//! mailroom-graph: the Microsoft identity platform and Microsoft Graph client used by the engine
//! and the app (GUI-free).
//!
//! * [`cloud`]: national clouds and app registrations ([`Cloud`], [`AppRegistration`],
//!   [`ClientCredential`]).
//! * [`loopback`]: delegated sign-in (authorization code + PKCE S256 via `oauth2` v5) through a
//!   `127.0.0.1` loopback listener.
//! * [`identity`]: token endpoint (code redemption, refresh with rotation, client credentials
//!   with a secret or a certificate assertion), Entra error bodies ([`AadError`]).
//! * [`cert`]: PKCS#12 import (modern and legacy), PEM bundles, client assertion JWTs.
//! * [`tokens`]: [`TokenProvider`] with [`DelegatedTokens`] and [`AppOnlyTokens`].
//! * [`diagnose`]: AADSTS codes → admin-facing cause/fix; scope sets and permission checks.
//! * [`client`]: [`GraphClient`] for one mailbox (mail, delta, attachments, folders, send,
//!   contacts, subscriptions, batch) with per-mailbox throttling ([`throttle`]).
//!
//! Invariants:
//! * Secrets (client secrets, tokens, private keys) live in [`Secret`]/[`SecretBytes`], which
//!   never print their value; every HTTP exchange is recorded through `mailroom_trace`, which
//!   redacts credentials.
//! * HTTP redirects are never followed, and Graph paging links are only followed on the
//!   configured Graph origin, so a token is never sent to another host.
//! * Refreshing a delegated token returns the rotated refresh token; [`DelegatedTokens`] calls its
//!   persistence callback before using a new token.
//! * id_tokens and access tokens are decoded **without** signature verification, for display and
//!   diagnostics only (which account signed in, which roles were granted).

pub mod cert;
pub mod client;
pub mod cloud;
pub mod diagnose;
mod http;
pub mod identity;
pub mod loopback;
pub mod models;
pub mod secret;
pub mod throttle;
pub mod tokens;

pub use cert::{AssertionAlgorithm, AssertionClaims, CertificateCredential, CertificateError};
pub use client::{graph_root, GraphClient, GraphError, GraphErrorKind, MailboxRef};
pub use cloud::{AppRegistration, ClientCredential, Cloud};
pub use diagnose::{
    delegated_scopes, diagnose, diagnose_aad, diagnose_sign_in, granted_permissions,
    missing_permissions, required_permissions, AccessMethod, Diagnosis, DiagnosisKind,
};
pub use http::TransportError;
pub use identity::{AadError, Account, IdentityClient, IdentityError, TokenSet};
pub use loopback::{LoopbackSignIn, PendingSignIn, RedirectHost, SignInError, SignInOptions};
pub use models::*;
pub use secret::{Secret, SecretBytes};
pub use throttle::{parse_retry_after, MailboxThrottle, ThrottleConfig};
pub use tokens::{AppOnlyTokens, DelegatedTokens, StaticToken, TokenProvider};
pub use tokio_util::sync::CancellationToken;

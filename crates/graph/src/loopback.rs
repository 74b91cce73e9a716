//! Delegated sign-in: authorization code + PKCE (S256) through a loopback redirect.
//!
//! The listener binds `127.0.0.1:0` only; the redirect URI is `http://localhost:<port>` (or
//! `http://127.0.0.1:<port>`, see [`RedirectHost`]), which Entra matches port-insensitively
//! against a registered `http://localhost` (reference §1.8). The listener accepts any number
//! of connections (favicon, preconnects), ignores responses whose `state` does not match,
//! answers the browser with a small HTML page, and stops when [`PendingSignIn::wait`] returns.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use mailroom_clock::SharedClock;
use oauth2::{CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::cloud::AppRegistration;
use crate::identity::{AadError, IdentityClient, IdentityError, TokenSet};

/// Host name used in the redirect URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectHost {
    /// `http://localhost:<port>` (what the Entra portal can register; default).
    #[default]
    Localhost,
    /// `http://127.0.0.1:<port>` (must be registered through the app manifest).
    Loopback,
}

/// Options of an interactive sign-in.
#[derive(Debug, Clone)]
pub struct SignInOptions {
    /// Adds `prompt=select_account` so the browser does not silently reuse a session.
    pub select_account: bool,
    /// Pre-fills the user name (`login_hint`).
    pub login_hint: Option<String>,
    /// Host form of the redirect URI.
    pub redirect_host: RedirectHost,
    /// Clock for token expiry times.
    pub clock: SharedClock,
    /// Extra PEM CA certificates to trust for the token request (private CA / sandbox TLS).
    pub root_certificates: Vec<String>,
}

impl Default for SignInOptions {
    fn default() -> Self {
        SignInOptions {
            select_account: true,
            login_hint: None,
            redirect_host: RedirectHost::Localhost,
            clock: mailroom_clock::system(),
            root_certificates: Vec::new(),
        }
    }
}

/// Why an interactive sign-in did not produce tokens.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Nobody completed the sign-in in time.
    #[error(
        "the sign-in was not completed within {0:?}; start it again and finish it in the browser"
    )]
    TimedOut(Duration),
    /// The caller cancelled the sign-in.
    #[error("the sign-in was cancelled")]
    Cancelled,
    /// The authorize endpoint redirected back with an error (e.g. `access_denied`).
    #[error("the sign-in was refused: {0}")]
    Denied(AadError),
    /// The loopback listener could not be started.
    #[error("could not open the local sign-in listener on 127.0.0.1: {0}")]
    Listener(String),
    /// Redeeming the code failed.
    #[error(transparent)]
    Token(#[from] IdentityError),
}

impl SignInError {
    /// The Entra error, if the sign-in failed with one.
    pub fn aad(&self) -> Option<&AadError> {
        match self {
            SignInError::Denied(e) => Some(e),
            SignInError::Token(e) => e.aad(),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Callback {
    Code(String),
    Error(AadError),
}

struct ListenerState {
    expected_state: String,
    tx: mpsc::UnboundedSender<Callback>,
}

/// Entry point of the loopback flow.
#[derive(Debug)]
pub struct LoopbackSignIn;

/// A started sign-in: the listener is running; hand the URL to the system browser, then call
/// [`PendingSignIn::wait`].
pub struct PendingSignIn {
    app: AppRegistration,
    scopes: Vec<String>,
    redirect_uri: String,
    verifier: Option<PkceCodeVerifier>,
    rx: mpsc::UnboundedReceiver<Callback>,
    shutdown: CancellationToken,
    identity: IdentityClient,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

const SUCCESS_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Mailroom</title></head><body style=\"font-family:sans-serif\"><h1>Signed in</h1><p>Mailroom is connected. You can close this window now.</p></body></html>";

fn failure_page(error: &AadError) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Mailroom</title></head><body style=\"font-family:sans-serif\"><h1>Sign-in failed</h1><p><b>{}</b></p><p>{}</p><p>Return to Mailroom for details.</p></body></html>",
        html_escape::encode_quoted_attribute(&error.error),
        html_escape::encode_quoted_attribute(error.error_description.as_deref().unwrap_or(""))
    )
}

async fn callback(
    State(state): State<Arc<ListenerState>>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(got_state) = params.get("state") else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    // Constant time, as for every secret comparison (the state is the sign-in's CSRF token).
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        got_state.as_bytes(),
        state.expected_state.as_bytes(),
    )) {
        return (
            StatusCode::BAD_REQUEST,
            Html("<!doctype html><p>This response does not belong to the pending Mailroom sign-in and was ignored.</p>".to_string()),
        )
            .into_response();
    }
    if let Some(code) = params.get("code") {
        let _ = state.tx.send(Callback::Code(code.clone()));
        return Html(SUCCESS_PAGE.to_string()).into_response();
    }
    let error = AadError {
        error: params
            .get("error")
            .cloned()
            .unwrap_or_else(|| "invalid_response".into()),
        error_description: params.get("error_description").cloned(),
        error_codes: params
            .get("error_description")
            .and_then(|d| crate::identity::find_aadsts(d))
            .into_iter()
            .collect(),
        error_uri: params.get("error_uri").cloned(),
        ..Default::default()
    };
    let page = failure_page(&error);
    let _ = state.tx.send(Callback::Error(error));
    (StatusCode::OK, Html(page)).into_response()
}

impl LoopbackSignIn {
    /// Binds the loopback listener and builds the authorize URL (PKCE S256, random `state`).
    pub async fn start(
        app: &AppRegistration,
        scopes: &[String],
        options: SignInOptions,
    ) -> Result<(Url, PendingSignIn), SignInError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| SignInError::Listener(e.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|e| SignInError::Listener(e.to_string()))?
            .port();
        let host = match options.redirect_host {
            RedirectHost::Localhost => "localhost",
            RedirectHost::Loopback => "127.0.0.1",
        };
        let redirect_uri = format!("http://{host}:{port}");
        let client = IdentityClient::with_auth(app)?.set_redirect_uri(
            RedirectUrl::new(redirect_uri.clone())
                .map_err(|e| SignInError::Listener(e.to_string()))?,
        );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(challenge);
        if options.select_account {
            request = request.add_extra_param("prompt", "select_account");
        }
        if let Some(hint) = &options.login_hint {
            request = request.add_extra_param("login_hint", hint.clone());
        }
        let (url, csrf) = request.url();

        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(ListenerState {
            expected_state: csrf.secret().clone(),
            tx,
        });
        let router = axum::Router::new().fallback(callback).with_state(state);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok((
            url,
            PendingSignIn {
                app: app.clone(),
                scopes: scopes.to_vec(),
                redirect_uri,
                verifier: Some(verifier),
                rx,
                shutdown,
                identity: IdentityClient::new(options.clock)
                    .with_root_certificates(&options.root_certificates)?,
            },
        ))
    }
}

impl Drop for PendingSignIn {
    /// Stops the listener when the sign-in is abandoned without [`PendingSignIn::wait`].
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl PendingSignIn {
    /// The redirect URI in use (`http://localhost:<port>`).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits for the browser to come back (or `timeout` / `cancel`), then redeems the code.
    pub async fn wait(
        mut self,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> Result<TokenSet, SignInError> {
        let outcome = tokio::select! {
            got = self.rx.recv() => got,
            _ = tokio::time::sleep(timeout) => {
                self.shutdown.cancel();
                return Err(SignInError::TimedOut(timeout));
            }
            _ = cancel.cancelled() => {
                self.shutdown.cancel();
                return Err(SignInError::Cancelled);
            }
        };
        // Give the browser's page a moment to be flushed before shutting down gracefully.
        self.shutdown.cancel();
        match outcome {
            Some(Callback::Code(code)) => {
                let verifier = self
                    .verifier
                    .take()
                    .ok_or_else(|| SignInError::Listener("the sign-in was already used".into()))?;
                Ok(self
                    .identity
                    .redeem_code(&self.app, &code, verifier, &self.redirect_uri, &self.scopes)
                    .await?)
            }
            Some(Callback::Error(e)) => Err(SignInError::Denied(e)),
            None => Err(SignInError::Listener("the listener stopped".into())),
        }
    }
}

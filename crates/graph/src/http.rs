//! One place where HTTP exchanges happen, so every one of them is recorded with
//! `mailroom_trace` (redaction happens there).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Instant;

use mailroom_clock::SharedClock;
use mailroom_trace::{HttpExchange, RawExchange, Service};

/// A transport failure (connection refused, timeout, TLS) before any HTTP response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not reach {url}: {message}")]
pub struct TransportError {
    /// The URL that was being requested.
    pub url: String,
    /// What went wrong.
    pub message: String,
}

/// A complete response: status, headers and body.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// Builds the shared reqwest client: no redirects (SSRF guard, reference §1.12).
pub(crate) fn build_client() -> reqwest::Client {
    build_client_with_roots(&[]).expect("reqwest client")
}

/// Like [`build_client`], additionally trusting the given PEM CA certificates (e.g. the
/// sandbox's local CA when it serves HTTPS).
pub(crate) fn build_client_with_roots(pems: &[String]) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(30))
        .timeout(std::time::Duration::from_secs(120));
    for pem in pems {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| format!("invalid CA certificate: {e}"))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| e.to_string())
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn body_text(headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let ctype = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let textual = ctype.is_empty()
        || ctype.contains("json")
        || ctype.starts_with("text/")
        || ctype.contains("form-urlencoded")
        || ctype.contains("xml")
        || ctype.contains("message/rfc822");
    if textual {
        Some(String::from_utf8_lossy(body).into_owned())
    } else {
        Some(format!("[{} bytes of {ctype}]", body.len()))
    }
}

/// Sends one request, records it with `mailroom_trace`, and returns the whole response.
pub(crate) async fn execute(
    client: &reqwest::Client,
    clock: &SharedClock,
    service: Service,
    request: http::Request<Vec<u8>>,
) -> Result<RawResponse, TransportError> {
    let started = clock.now();
    let timer = Instant::now();
    let method = request.method().to_string();
    let url = request.uri().to_string();
    let request_headers = header_pairs(request.headers());
    let request_body = body_text(request.headers(), request.body());
    let result = async {
        let req = reqwest::Request::try_from(request).map_err(|e| e.to_string())?;
        let resp = client.execute(req).await.map_err(|e| {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            msg
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
        Ok::<_, String>(RawResponse {
            status,
            headers,
            body,
        })
    }
    .await;
    let duration_ms = timer.elapsed().as_millis() as u64;
    match &result {
        Ok(resp) => {
            let text = body_text(&resp.headers, &resp.body);
            mailroom_trace::record(HttpExchange::new(
                service,
                started,
                RawExchange {
                    method: &method,
                    url: &url,
                    request_headers,
                    request_body: request_body.as_deref(),
                    status: Some(resp.status),
                    response_headers: header_pairs(&resp.headers),
                    response_body: text.as_deref(),
                    duration_ms,
                    error: None,
                },
            ));
        }
        Err(message) => {
            mailroom_trace::record(HttpExchange::new(
                service,
                started,
                RawExchange {
                    method: &method,
                    url: &url,
                    request_headers,
                    request_body: request_body.as_deref(),
                    duration_ms,
                    error: Some(message.clone()),
                    ..Default::default()
                },
            ));
        }
    }
    result.map_err(|message| TransportError { url, message })
}

/// The `oauth2` crate's HTTP client: reqwest without redirects, recording every exchange as
/// [`Service::Identity`] and remembering the last status (the crate drops it).
pub(crate) struct TracedOAuthHttp {
    pub client: reqwest::Client,
    pub clock: SharedClock,
    pub last_status: Mutex<Option<u16>>,
}

impl TracedOAuthHttp {
    pub fn new(client: reqwest::Client, clock: SharedClock) -> Self {
        TracedOAuthHttp {
            client,
            clock,
            last_status: Mutex::new(None),
        }
    }

    pub fn last_status(&self) -> Option<u16> {
        *self.last_status.lock().expect("status lock")
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for TracedOAuthHttp {
    type Error = TransportError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let resp = execute(&self.client, &self.clock, Service::Identity, request).await?;
            *self.last_status.lock().expect("status lock") = Some(resp.status);
            let mut builder = http::Response::builder().status(resp.status);
            for (k, v) in resp.headers.iter() {
                builder = builder.header(k, v);
            }
            builder.body(resp.body).map_err(|e| TransportError {
                url: String::new(),
                message: e.to_string(),
            })
        })
    }
}

//! The client's error type and the parser for HaloPSA's many error-body shapes.

use serde_json::Value;

/// What went wrong, as a closed set the engine can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Credentials rejected (wrong client id/secret, token refused after re-authentication).
    Unauthorized,
    /// Authenticated, but the API application lacks a permission (scope) or the agent a right.
    Forbidden,
    /// The object or endpoint does not exist.
    NotFound,
    /// HaloPSA refused the data (400-style validation, e.g. "An Outcome must be entered …").
    Validation,
    /// HTTP 429 persisted through every retry.
    RateLimited,
    /// HTTP 5xx persisted through every retry.
    Server,
    /// The instance could not be reached (DNS, connection refused, TLS, timeout).
    Transport,
    /// The reply was not what a HaloPSA instance sends (HTML, unparseable JSON, wrong shape).
    Protocol,
}

/// An error from the HaloPSA client. `message` is written for an administrator: it says what
/// failed and, where possible, what to do; it includes HaloPSA's own message when there is one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PsaError {
    /// HTTP status of the failing reply, if a reply arrived.
    pub status: Option<u16>,
    /// Category of the failure.
    pub kind: ErrorKind,
    /// Human-readable explanation.
    pub message: String,
}

impl PsaError {
    /// Builds an error.
    pub fn new(kind: ErrorKind, status: Option<u16>, message: impl Into<String>) -> Self {
        PsaError {
            status,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, None, message)
    }

    /// Builds the error for a non-success API reply: the kind from the status, the message from
    /// the body (see [`parse_error_body`]) with advice for the admin.
    pub fn from_response(
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) -> Self {
        let kind = kind_for_status(status);
        let halo = parse_error_body(content_type, body);
        let what = format!("{method} {path}");
        let message = match kind {
            ErrorKind::Unauthorized => format!(
                "HaloPSA refused the access token for {what} (HTTP 401){}. Check the API \
                 application's client ID and secret under Configuration > Integrations > HaloPSA \
                 API > Applications.",
                suffix(&halo)
            ),
            ErrorKind::Forbidden => format!(
                "The HaloPSA API application is not allowed to call {what} (HTTP 403){}. Grant \
                 the missing permission on the application's Permissions tab (scope \"all\", or \
                 read:/edit: tickets and customers), and check the agent it logs in as.",
                suffix(&halo)
            ),
            ErrorKind::NotFound => format!(
                "HaloPSA has no such object for {what} (HTTP 404){}.",
                suffix(&halo)
            ),
            ErrorKind::Validation => match &halo {
                Some(text) => format!("HaloPSA rejected {what}: {text}"),
                None => format!("HaloPSA rejected {what} (HTTP {status}) without saying why."),
            },
            ErrorKind::RateLimited => format!(
                "HaloPSA kept rate-limiting {what} (HTTP 429){}. Lower the client's request \
                 limit or spread the work out; other integrations may share the instance's limit.",
                suffix(&halo)
            ),
            ErrorKind::Server => format!(
                "HaloPSA failed with a server error on {what} (HTTP {status}){}. Try again later; \
                 if it persists, check the instance's status.",
                suffix(&halo)
            ),
            ErrorKind::Transport | ErrorKind::Protocol => format!(
                "Unexpected reply from HaloPSA to {what} (HTTP {status}){}.",
                suffix(&halo)
            ),
        };
        PsaError::new(kind, Some(status), message)
    }
}

/// HaloPSA's own words after a colon, without their final full stop: every message goes on
/// with a sentence of its own, and "status 500.. Try again" reads as a defect.
fn suffix(halo: &Option<String>) -> String {
    match halo {
        Some(text) => format!(": {}", text.trim().trim_end_matches('.')),
        None => String::new(),
    }
}

/// Maps an HTTP error status to an [`ErrorKind`].
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 | 410 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Server,
        400..=499 => ErrorKind::Validation,
        _ => ErrorKind::Protocol,
    }
}

/// Extracts HaloPSA's own message from an error body, in every shape the reference lists:
/// `{resultCode, errorMessage}`, `{ClassName, Message}`, `{Message}`/`{message}`,
/// `{error, error_description}`, ASP.NET model state (`{"[0].id": "..."}` or
/// `{"errors": {"field": ["..."]}}`), a bare JSON string, and plain text. An HTML page is
/// summarised by its `<title>` rather than returned whole. `None` when the body says nothing.
pub fn parse_error_body(content_type: Option<&str>, body: &str) -> Option<String> {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return None;
    }
    if let Ok(json) = serde_json::from_str::<Value>(trimmed) {
        return message_from_json(&json);
    }
    let is_html = content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("html"))
        || looks_like_html(trimmed);
    if is_html {
        return Some(match html_title(trimmed) {
            Some(title) => format!("an HTML page titled \"{title}\""),
            None => "an HTML page".to_string(),
        });
    }
    Some(cap(trimmed))
}

/// Whether a body is an HTML document (a login page, a proxy error, a marketing site).
pub(crate) fn looks_like_html(body: &str) -> bool {
    let start: String = body
        .trim_start()
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    start.starts_with("<!doctype html")
        || start.starts_with("<html")
        || start.starts_with("<head")
        || start.starts_with("<body")
}

fn html_title(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = lower[start..].find('>')? + start + 1;
    let end = lower[open_end..].find("</title>")? + open_end;
    let title = body[open_end..end].trim();
    (!title.is_empty()).then(|| cap(title))
}

fn cap(text: &str) -> String {
    const MAX: usize = 500;
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text.to_string()
    }
}

fn get_str<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn message_from_json(json: &Value) -> Option<String> {
    match json {
        Value::String(text) => {
            let text = text.trim();
            (!text.is_empty()).then(|| cap(text))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(message_from_json).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        Value::Object(map) => {
            // {resultCode, errorMessage}
            if let Some(message) = get_str(map, "errorMessage") {
                return Some(cap(message));
            }
            // {ClassName, Message} and {Message}
            if let Some(message) = get_str(map, "Message") {
                return Some(cap(message));
            }
            // RFC 6749 {error, error_description} and {error}
            if let Some(error) = map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("error"))
                .map(|(_, v)| v)
            {
                let description = get_str(map, "error_description");
                return match (error, description) {
                    (Value::String(code), Some(description)) => {
                        Some(cap(&format!("{description} ({code})")))
                    }
                    (_, Some(description)) => Some(cap(description)),
                    (Value::String(code), None) if !code.trim().is_empty() => {
                        Some(cap(code.trim()))
                    }
                    (other, None) => message_from_json(other),
                };
            }
            // ASP.NET problem details with model state: {"title": ..., "errors": {field: [msgs]}}
            if let Some(Value::Object(errors)) = map.get("errors") {
                if let Some(text) = model_state(errors) {
                    return Some(text);
                }
            }
            if let Some(title) = get_str(map, "title") {
                return Some(cap(title));
            }
            // Bare model state: {"[0].id": "...", "summary": ["..."]}
            model_state(map)
        }
        _ => None,
    }
}

fn model_state(map: &serde_json::Map<String, Value>) -> Option<String> {
    let mut parts = Vec::new();
    for (field, value) in map {
        let messages: Vec<String> = match value {
            Value::String(s) => vec![s.trim().to_string()],
            Value::Array(items) => items
                .iter()
                .filter_map(|item| item.as_str().map(|s| s.trim().to_string()))
                .collect(),
            _ => continue,
        };
        let messages: Vec<String> = messages.into_iter().filter(|m| !m.is_empty()).collect();
        if messages.is_empty() {
            continue;
        }
        if field.is_empty() {
            parts.push(messages.join(", "));
        } else {
            parts.push(format!("{field}: {}", messages.join(", ")));
        }
    }
    (!parts.is_empty()).then(|| cap(&parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Option<String> {
        parse_error_body(Some("application/json"), body)
    }

    #[test]
    fn result_code_shape() {
        assert_eq!(
            parse(r#"{"resultCode":1,"errorMessage":"Ticket not found"}"#).as_deref(),
            Some("Ticket not found")
        );
    }

    #[test]
    fn class_name_and_message_shape() {
        assert_eq!(
            parse(r#"{"ClassName":"System.Exception","Message":"An Outcome must be entered for this Action"}"#)
                .as_deref(),
            Some("An Outcome must be entered for this Action")
        );
        assert_eq!(
            parse(r#"{"Message":"Authorization has been denied"}"#).as_deref(),
            Some("Authorization has been denied")
        );
        assert_eq!(
            parse(r#"{"message":"lower case"}"#).as_deref(),
            Some("lower case")
        );
    }

    #[test]
    fn oauth_error_shapes() {
        assert_eq!(
            parse(r#"{"error":"invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(
            parse(
                r#"{"error":"invalid_client","error_description":"The client secret is invalid."}"#
            )
            .as_deref(),
            Some("The client secret is invalid. (invalid_client)")
        );
        assert_eq!(
            parse(r#"{"error":{"message":"nested"}}"#).as_deref(),
            Some("nested")
        );
    }

    #[test]
    fn model_state_shapes() {
        assert_eq!(
            parse(r#"{"[0].id":"The value '95.0' is not valid for id."}"#).as_deref(),
            Some("[0].id: The value '95.0' is not valid for id.")
        );
        assert_eq!(
            parse(r#"{"title":"One or more validation errors occurred.","errors":{"[0].site_id":["Bad site","Really bad"]}}"#)
                .as_deref(),
            Some("[0].site_id: Bad site, Really bad")
        );
    }

    #[test]
    fn text_and_string_shapes() {
        assert_eq!(
            parse_error_body(
                Some("text/plain"),
                "Rate Limit Reached - 300 Requests per rolling 5 minute window\n"
            )
            .as_deref(),
            Some("Rate Limit Reached - 300 Requests per rolling 5 minute window")
        );
        assert_eq!(
            parse(r#""Invalid advanced search parameter""#).as_deref(),
            Some("Invalid advanced search parameter")
        );
        assert_eq!(parse("   "), None);
        assert_eq!(parse("{}"), None);
    }

    #[test]
    fn html_is_summarised() {
        let html = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>…</body></html>";
        assert_eq!(
            parse_error_body(None, html).as_deref(),
            Some("an HTML page titled \"Sign in\"")
        );
        assert_eq!(
            parse_error_body(Some("text/html"), "<p>oops</p>").as_deref(),
            Some("an HTML page")
        );
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_for_status(400), ErrorKind::Validation);
        assert_eq!(kind_for_status(401), ErrorKind::Unauthorized);
        assert_eq!(kind_for_status(403), ErrorKind::Forbidden);
        assert_eq!(kind_for_status(404), ErrorKind::NotFound);
        assert_eq!(kind_for_status(409), ErrorKind::Validation);
        assert_eq!(kind_for_status(429), ErrorKind::RateLimited);
        assert_eq!(kind_for_status(503), ErrorKind::Server);
    }

    #[test]
    fn validation_errors_carry_the_psa_message() {
        let err = PsaError::from_response(
            "POST",
            "/api/Actions",
            400,
            Some("application/json"),
            r#"{"ClassName":"HaloException","Message":"An Outcome must be entered for this Action"}"#,
        );
        assert_eq!(err.kind, ErrorKind::Validation);
        assert_eq!(err.status, Some(400));
        assert!(
            err.message
                .contains("An Outcome must be entered for this Action"),
            "{}",
            err.message
        );
        let forbidden = PsaError::from_response("GET", "/api/Client", 403, None, "");
        assert!(
            forbidden.message.contains("Permissions"),
            "{}",
            forbidden.message
        );
    }
}

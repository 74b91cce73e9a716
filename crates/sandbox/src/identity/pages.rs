//! HTML pages: the sign-in/consent page and the AADSTS error page.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::errors::{AadError, TraceIds};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:Segoe UI,Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0}\
main{max-width:440px;margin:48px auto;background:#fff;padding:32px 40px;box-shadow:0 2px 6px rgba(0,0,0,.2)}\
h1{font-size:22px;font-weight:600}.tenant{color:#555;font-size:13px}label{display:block;margin:8px 0}\
.perm{font-size:14px;margin:2px 0}.needs{color:#a4262c}#error,.error{color:#a4262c;white-space:pre-wrap}\
button{padding:6px 20px;margin-right:8px}.ids{color:#777;font-size:12px;white-space:pre-wrap}";

/// The error page shown instead of a redirect (AADSTS50011, 700016, 90002, ...).
pub fn error_page(err: &AadError, ids: &TraceIds) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in to your account</title>\
<style>{STYLE}</style></head><body><main><h1>Sorry, but we’re having trouble signing you in.</h1>\
<p id=\"error\" data-error-code=\"{code}\">AADSTS{code}: {msg}</p>\
<p class=\"ids\" id=\"trace\">Request Id: {trace}\nCorrelation Id: {corr}\nTimestamp: {ts}</p></main></body></html>",
        code = err.code,
        msg = esc(&err.message),
        trace = esc(&ids.trace_id),
        corr = esc(&ids.correlation_id),
        ts = esc(&ids.timestamp()),
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

/// One user choice on the sign-in page.
pub struct UserChoice {
    pub upn: String,
    pub display_name: String,
    pub selected: bool,
}

/// One permission line on the consent section.
pub struct PermissionLine {
    pub scope: String,
    pub needs_consent: bool,
}

/// Everything the sign-in page shows.
pub struct SignInPage<'a> {
    pub title: &'a str,
    pub tenant_display_name: &'a str,
    pub app_display_name: &'a str,
    pub action: &'a str,
    pub hidden: &'a [(String, String)],
    pub users: Vec<UserChoice>,
    pub permissions: Vec<PermissionLine>,
    pub offer_org_consent: bool,
    pub error: Option<String>,
}

/// Renders the user picker + consent page. Its form posts back to `action` with the original
/// parameters as hidden inputs, `username` (radio, value = UPN) and `action=accept|cancel`.
pub fn sign_in_page(p: &SignInPage<'_>, status: StatusCode) -> Response {
    let mut html = String::new();
    html.push_str(&format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head>\
<body><main><h1>{title}</h1><p class=\"tenant\" id=\"tenant\">{tenant}</p>",
        title = esc(p.title),
        tenant = esc(p.tenant_display_name)
    ));
    if let Some(e) = &p.error {
        html.push_str(&format!("<p class=\"error\" id=\"error\">{}</p>", esc(e)));
    }
    html.push_str(&format!(
        "<form id=\"signin\" method=\"post\" action=\"{}\">",
        esc(p.action)
    ));
    for (k, v) in p.hidden {
        html.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        ));
    }
    html.push_str("<fieldset id=\"users\"><legend>Pick an account</legend>");
    for u in &p.users {
        let local = u.upn.split('@').next().unwrap_or(&u.upn);
        html.push_str(&format!(
            "<label for=\"user-{local}\"><input type=\"radio\" name=\"username\" id=\"user-{local}\" value=\"{upn}\"{checked}> {name} &lt;{upn}&gt;</label>",
            local = esc(local),
            upn = esc(&u.upn),
            name = esc(&u.display_name),
            checked = if u.selected { " checked" } else { "" },
        ));
    }
    html.push_str("</fieldset>");
    html.push_str(&format!(
        "<section id=\"consent\"><h2>Permissions requested</h2><p><strong id=\"app-name\">{}</strong> would like to:</p><ul>",
        esc(p.app_display_name)
    ));
    for perm in &p.permissions {
        html.push_str(&format!(
            "<li class=\"perm{cls}\" data-scope=\"{s}\">{s}{note}</li>",
            s = esc(&perm.scope),
            cls = if perm.needs_consent { " needs" } else { "" },
            note = if perm.needs_consent {
                " (needs your consent)"
            } else {
                ""
            },
        ));
    }
    html.push_str("</ul>");
    if p.offer_org_consent {
        html.push_str("<label for=\"consent-org\"><input type=\"checkbox\" id=\"consent-org\" name=\"consent_org\" value=\"true\"> Consent on behalf of your organization (admins only)</label>");
    }
    html.push_str("</section><p><button type=\"submit\" id=\"accept\" name=\"action\" value=\"accept\">Accept</button>\
<button type=\"submit\" id=\"cancel\" name=\"action\" value=\"cancel\">Cancel</button></p></form></main></body></html>");
    (status, Html(html)).into_response()
}

/// An auto-submitting form for `response_mode=form_post`.
pub fn form_post(target: &str, params: &[(String, String)]) -> Response {
    let mut html = format!(
        "<!DOCTYPE html><html><head><title>Working...</title></head><body onload=\"document.forms[0].submit()\">\
<form method=\"POST\" action=\"{}\">",
        esc(target)
    );
    for (k, v) in params {
        html.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        ));
    }
    html.push_str(
        "<noscript><button type=\"submit\">Continue</button></noscript></form></body></html>",
    );
    Html(html).into_response()
}

//! Completing the sandbox's sign-in page without a person: what the app's sandbox mode uses to
//! connect its demo mailbox, and what tests use as their "browser".
//!
//! It does exactly what a browser does with the page: GET the authorize URL, read the form's
//! hidden inputs, POST them back with the chosen account and `action=accept`, then follow the
//! redirect to the client's redirect URI (the app's loopback listener), which receives the code.

use regex::Regex;

/// Why the sign-in page could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum SignInDriveError {
    #[error("could not reach the sandbox sign-in page: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the sandbox did not show a sign-in form: {0}")]
    NoForm(String),
    #[error("the sandbox did not redirect back to the app (HTTP {status}): {body}")]
    NoRedirect { status: u16, body: String },
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Where the browser ended up: the redirect URI it was sent to (carrying the code) and the page
/// the client's listener answered with.
#[derive(Debug, Clone)]
pub struct SignInLanding {
    pub redirect: String,
    pub status: u16,
    pub body: String,
}

/// Signs in as `upn` on the sandbox page behind `authorize_url` and delivers the redirect to
/// the client's redirect URI, as a browser would.
pub async fn complete_sign_in(
    authorize_url: &str,
    upn: &str,
) -> Result<SignInLanding, SignInDriveError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = http.get(authorize_url).send().await?.text().await?;
    let form = Regex::new(r#"<form id="signin" method="post" action="([^"]*)">"#)
        .expect("static regex")
        .captures(&page)
        .map(|c| unescape(&c[1]))
        .ok_or_else(|| page_text(&page))
        .map_err(SignInDriveError::NoForm)?;
    let hidden = Regex::new(r#"<input type="hidden" name="([^"]*)" value="([^"]*)">"#)
        .expect("static regex");
    let mut fields: Vec<(String, String)> = hidden
        .captures_iter(&page)
        .map(|c| (unescape(&c[1]), unescape(&c[2])))
        .collect();
    fields.push(("username".into(), upn.into()));
    fields.push(("action".into(), "accept".into()));
    let action = url::Url::parse(authorize_url)
        .and_then(|base| base.join(&form))
        .map_err(|e| SignInDriveError::NoForm(e.to_string()))?;
    let response = http.post(action).form(&fields).send().await?;
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(location) = location.filter(|_| status.is_redirection()) else {
        let body = response.text().await.unwrap_or_default();
        return Err(SignInDriveError::NoRedirect {
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
        });
    };
    // The browser's last step: load the redirect URI, where the client's listener waits.
    let landing = http.get(&location).send().await?;
    let status = landing.status().as_u16();
    let body = landing.text().await.unwrap_or_default();
    Ok(SignInLanding {
        redirect: location,
        status,
        body,
    })
}

/// A short description of a page that had no sign-in form (usually an AADSTS error page):
/// its visible text, without styles and scripts, first 300 characters.
fn page_text(page: &str) -> String {
    let without_styles = Regex::new(r"(?s)<(style|script)[^>]*>.*?</(style|script)>")
        .expect("static regex")
        .replace_all(page, " ");
    let text = Regex::new(r"<[^>]+>")
        .expect("static regex")
        .replace_all(&without_styles, " ");
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(300).collect()
}

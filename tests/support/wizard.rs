//! Helpers for the Integration area's step cards (`ui/wizard.js`): reading a card's state,
//! waiting for a new check's result, filling fields, and the sandbox's control API.

use super::Session;

/// An element's `data-<key>`, read in the page (a card may be re-rendered meanwhile).
pub async fn dataset(s: &Session, css: &str, key: &str) -> String {
    s.client
        .execute(
            "const el = document.querySelector(arguments[0]); return el ? (el.dataset[arguments[1]] || '') : '';",
            vec![serde_json::json!(css), serde_json::json!(key)],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A step card's state (`unchecked`, `ok`, `failed`).
pub async fn state(s: &Session, css: &str) -> String {
    dataset(s, css, "state").await
}

/// A JSON answer of the sandbox's control API.
pub async fn control_json(http: &reqwest::Client, url: String, post: bool) -> serde_json::Value {
    let request = if post { http.post(url) } else { http.get(url) };
    request.send().await.unwrap().json().await.unwrap()
}

pub async fn wait_state(s: &Session, css: &str, want: &str) {
    let start = std::time::Instant::now();
    loop {
        let now = state(s, css).await;
        if now == want {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{css} stayed {now}, not {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Unfolds a step's instructions and form (a step found green is shown folded).
pub async fn open_step(s: &Session, step: &str) {
    s.client
        .execute(
            "document.querySelector(`#step-${arguments[0]} details`).open = true;",
            vec![serde_json::json!(step)],
        )
        .await
        .unwrap();
}

/// Clicks `button` and waits (up to 30 s) until step `step` shows a new check's result: the
/// engine's start-up check may already have given the step the state the click leads to.
pub async fn click_and_wait_for_check(s: &Session, step: &str, button: &str) {
    let card = format!("#step-{step}");
    let checked_at = || dataset(s, &card, "checkedAt");
    let before = checked_at().await;
    s.find(button).await.click().await.unwrap();
    let start = std::time::Instant::now();
    while checked_at().await == before {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "step {step} was not checked again after {button}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub async fn fill(s: &Session, css: &str, value: &str) {
    let el = s.find(css).await;
    el.clear().await.unwrap();
    el.send_keys(value).await.unwrap();
}

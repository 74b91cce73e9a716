//! The interface language (issue 11): every text the UI shows goes through the catalogue
//! (ui/i18n.js), and the German catalogue (ui/locales/de.js) is complete.
//!
//! - every `t('…')` / `N_('…')` text in ui/*.js and every `data-i18n` text of index.html has a
//!   German entry, and the catalogue has no entry nothing uses;
//! - no text is shown untranslated: a string literal that reads as prose (words and a space, or
//!   a capitalised word) must be inside `t(…)`, `N_(…)` or `verbatim(…)` (HaloPSA's and
//!   Microsoft's own names), unless it is an attribute value such as an id or a class, or a
//!   key compared with `===`; a template literal with prose outside its `${…}` must not be
//!   shown either (use `t` with `{name}` placeholders).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ui")
}

#[derive(Debug, PartialEq)]
enum Token {
    /// A '…' or "…" literal: its text (escapes resolved) and start offset.
    Str(String, usize),
    /// A `…` literal: its text with every `${…}` removed, and start offset.
    Template(String, usize),
}

/// String and template literals of a JS source, comments skipped.
fn literals(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            q @ (b'\'' | b'"') => {
                let start = i;
                i += 1;
                let mut text = Vec::new();
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                        text.push(if b[i] == b'n' { b'\n' } else { b[i] });
                    } else {
                        text.push(b[i]);
                    }
                    i += 1;
                }
                out.push(Token::Str(
                    String::from_utf8_lossy(&text).into_owned(),
                    start,
                ));
                i += 1;
            }
            b'`' => {
                let start = i;
                i += 1;
                let mut text = Vec::new();
                let mut depth = 0;
                while i < b.len() && !(b[i] == b'`' && depth == 0) {
                    if b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'$' && b.get(i + 1) == Some(&b'{') {
                        depth += 1;
                        i += 2;
                        continue;
                    }
                    if depth > 0 {
                        match b[i] {
                            b'{' => depth += 1,
                            b'}' => depth -= 1,
                            // A nested template inside `${…}`: skip it whole.
                            b'`' => {
                                i += 1;
                                while i < b.len() && b[i] != b'`' {
                                    i += 1;
                                }
                            }
                            _ => {}
                        }
                    } else {
                        text.push(b[i]);
                    }
                    i += 1;
                }
                out.push(Token::Template(
                    String::from_utf8_lossy(&text).into_owned(),
                    start,
                ));
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Whether a literal's text reads as prose shown to people.
fn prose(text: &str) -> bool {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    if letters < 2 {
        return false;
    }
    let first = text.trim_start().chars().next().unwrap_or(' ');
    let words = text.split_whitespace().count();
    let code_like = text.starts_with(['#', '.', '[', ':'])
        || text.contains("=>")
        || text.starts_with("http")
        || text.starts_with("data-")
        || text.starts_with("mailroom:");
    !code_like && (words >= 2 && text.chars().any(|c| c.is_lowercase()) || first.is_uppercase())
}

/// What precedes offset `at` (whitespace skipped), up to 40 bytes.
fn before(src: &str, at: usize) -> &str {
    let head = src[..at].trim_end();
    let from = head.len().saturating_sub(40);
    let mut from = from;
    while !head.is_char_boundary(from) {
        from += 1;
    }
    &head[from..]
}

/// Attribute keys whose values are not shown as text.
const NOT_SHOWN: &[&str] = &[
    "id",
    "class",
    "type",
    "href",
    "role",
    "value",
    "name",
    "autocomplete",
    "for",
    "rel",
    "target",
    "kind",
    "code",
    "step",
    "scheme",
    "state",
    "level",
    "mode",
    "src",
    "inputmode",
    "pattern",
    "lang",
    "event",
    "placeholder",
];

fn is_wrapped(prefix: &str) -> bool {
    ["t(", "N_(", "verbatim("].iter().any(|f| {
        prefix.ends_with(f)
            && !prefix[..prefix.len() - f.len()]
                .ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.')
    })
}

fn not_shown(prefix: &str) -> bool {
    // `key: '…'` / `'key': '…'` for a key that is not shown; a comparison; a call that takes a
    // selector, a command or an element tag.
    let key = prefix
        .strip_suffix(':')
        .map(|p| p.trim_end().trim_end_matches(['\'', '"']))
        .map(|p| {
            p.rsplit(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                .next()
                .unwrap_or_default()
        });
    key.is_some_and(|k| {
        NOT_SHOWN.contains(&k)
            || k.starts_with("data-")
            || k.starts_with("aria-") && k != "aria-label"
    }) || prefix.ends_with("===")
        || prefix.ends_with("!==")
        || [
            "call(",
            "callConnect(",
            "querySelector(",
            "querySelectorAll(",
            "getElementById(",
            "h(",
            "closest(",
            "addEventListener(",
            "CustomEvent(",
            "setAttribute(",
        ]
        .iter()
        .any(|f| prefix.ends_with(f))
}

/// The catalogue's keys: the UI's own texts, and the section of texts the engine writes.
fn catalogue() -> (BTreeSet<String>, BTreeSet<String>) {
    let src = std::fs::read_to_string(ui_dir().join("locales/de.js")).unwrap();
    let (ui, engine) = src
        .split_once("// — Texts the engine writes")
        .expect("the engine's section of the catalogue");
    (keys_of(ui), keys_of(engine))
}

fn catalogue_keys() -> BTreeSet<String> {
    catalogue().0
}

fn keys_of(src: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for line in src.lines() {
        let line = line.trim();
        if !line.starts_with('\'') {
            continue;
        }
        if let Some(Token::Str(key, _)) = literals(line).into_iter().next() {
            keys.insert(key);
        }
    }
    keys
}

fn ui_sources() -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(ui_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "js"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let src = std::fs::read_to_string(&p).unwrap();
            (p, src)
        })
        .collect()
}

#[test]
fn every_text_is_in_the_german_catalogue_and_every_entry_is_used() {
    let catalogue = catalogue_keys();
    let mut used = BTreeSet::new();
    for (path, src) in ui_sources() {
        // Every `t('…')` / `N_('…')`, also inside a template's `${…}`.
        for (at, _) in src.match_indices('(') {
            let prefix = &src[..at + 1];
            if !is_wrapped(prefix) || prefix.ends_with("verbatim(") {
                continue;
            }
            let rest = src[at + 1..].trim_start();
            if !rest.starts_with('\'') {
                continue;
            }
            if let Some(Token::Str(text, _)) = literals(rest).into_iter().next() {
                assert!(
                    catalogue.contains(&text),
                    "{}: \"{text}\" has no German entry in ui/locales/de.js",
                    path.display()
                );
                used.insert(text);
            }
        }
    }
    let html = std::fs::read_to_string(ui_dir().join("index.html")).unwrap();
    for part in html.split("data-i18n").skip(1) {
        let part = part.trim_start_matches("-title");
        if let Some(rest) = part.strip_prefix("=\"") {
            let text = &rest[..rest.find('"').unwrap()];
            used.insert(text.to_string());
            assert!(
                catalogue.contains(text),
                "index.html: \"{text}\" has no German entry"
            );
        }
    }
    let unused: Vec<_> = catalogue.difference(&used).collect();
    assert!(unused.is_empty(), "entries nothing uses: {unused:?}");
    assert!(catalogue.len() > 300, "{}", catalogue.len());
}

#[test]
fn no_text_is_shown_without_the_catalogue() {
    let mut unwrapped = Vec::new();
    for (path, src) in ui_sources() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "i18n.js" {
            continue;
        }
        for token in literals(&src) {
            let (text, at, template) = match token {
                Token::Str(text, at) => (text, at, false),
                Token::Template(text, at) => (text, at, true),
            };
            let prefix = before(&src, at);
            if is_wrapped(prefix) || not_shown(prefix) {
                continue;
            }
            // Templates build ids, classes and `a · b` lines; only words outside `${…}` count.
            let shown = if template {
                text.split_whitespace()
                    .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 3)
                    .count()
                    >= 3
            } else {
                prose(&text)
            };
            if shown {
                let line = src[..at].matches('\n').count() + 1;
                unwrapped.push(format!(
                    "{name}:{line}: {}",
                    text.chars().take(80).collect::<String>()
                ));
            }
        }
    }
    assert!(
        unwrapped.is_empty(),
        "shown without the catalogue (wrap in t(), or verbatim() for HaloPSA's and Microsoft's own names):\n{}",
        unwrapped.join("\n")
    );
}

#[test]
fn the_scanner_sees_what_it_must() {
    let src = "h('p', {}, 'Hello there'); t('Fine'); h('div', { id: 'x-y' }, verbatim('Mail.Send')); x === 'Escape'; `Mailbox ${a} was added`;";
    let tokens = literals(src);
    assert_eq!(tokens.len(), 8, "{tokens:?}");
    assert!(prose("Hello there") && prose("Save") && !prose("x-y") && !prose("#step-tab"));
    let Token::Str(_, at) = &tokens[2] else {
        panic!()
    };
    assert!(is_wrapped(before(src, *at)));
    let Token::Str(_, at) = &tokens[4] else {
        panic!()
    };
    assert!(not_shown(before(src, *at)), "{}", before(src, *at));
    let Token::Template(text, _) = &tokens[7] else {
        panic!()
    };
    assert_eq!(text, "Mailbox  was added");
}

/// A module that calls the catalogue's functions imports them (a missing import only shows
/// when the view that needs it renders).
#[test]
fn every_module_imports_what_it_calls_from_the_catalogue() {
    for (path, src) in ui_sources() {
        if path.ends_with("i18n.js") {
            continue;
        }
        let import = src
            .lines()
            .find(|l| l.starts_with("import {") && l.ends_with("from './i18n.js';"))
            .unwrap_or_default();
        for name in ["t", "N_", "verbatim", "locale", "setLanguage", "language"] {
            let called = src.match_indices(&format!("{name}(")).any(|(at, _)| {
                !src[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.')
                    && !src[..at].ends_with("function ")
            });
            let imported = import
                .split(['{', '}', ','])
                .any(|part| part.trim() == name);
            assert!(
                !called || imported,
                "{} calls {name}() without importing it from ./i18n.js",
                path.display()
            );
        }
    }
}

/// Whether `text` is what `pattern` (a catalogue key whose `{name}` stands for any text)
/// describes — the matching ui/i18n.js `tx` does.
fn matches(pattern: &str, text: &str) -> bool {
    match pattern.find('{') {
        None => pattern == text,
        Some(open) => {
            let Some(close) = pattern[open..].find('}').map(|c| open + c) else {
                return pattern == text;
            };
            let name = &pattern[open + 1..close];
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return text.starts_with(&pattern[..=close])
                    && matches(&pattern[close + 1..], &text[close + 1..]);
            }
            let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            rest.char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .chain([rest.len()])
                .any(|i| matches(tail, &rest[i..]))
        }
    }
}

#[test]
fn patterns_match_as_the_ui_matches_them() {
    assert!(matches(
        "Tab \"{name}\" points at {url}",
        "Tab \"Mailroom\" points at http://x/halo/tab"
    ));
    assert!(matches("Connected", "Connected"));
    assert!(!matches("Permission {scope}", "Permission"));
    assert!(!matches("Not granted", "Not granted (the token holds: x)"));
}

/// HaloPSA's own field names, shown as HaloPSA shows them (the resolve step's field checks).
const HALO_FIELD_LABELS: &[&str] = &[
    "Button Name",
    "Status After Action",
    "Hide from User",
    "Action is visible",
];

/// Every label, fix, why and failed detail the integration wizard and Monitoring's *Test
/// connection* write — run on the sandbox, broken and mended — has a German entry in the
/// catalogue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizards_check_results_are_in_the_german_catalogue() {
    use mailroom_engine::integration::{Step, StepResult};
    let sb = mailroom_sandbox::Sandbox::start(mailroom_sandbox::SandboxOptions {
        loopback_webhooks: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let service = format!(
        "mailroom-test-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let core = mailroom_engine::Core::open_with_secrets(
        dir.path(),
        mailroom_secrets::Secrets::with_service(&service),
    )
    .await
    .unwrap();
    let creds = sb.tenant().psa.clone();
    let connect = |secret: String| {
        let (core, url, creds) = (core.clone(), sb.psa_url(), creds.clone());
        async move {
            core.set_psa_connection(
                &url,
                &creds.client_id,
                mailroom_secrets::SecretValue::new(secret),
                Some(&creds.tenant),
            )
            .await
            .unwrap()
        }
    };
    let mut results: Vec<StepResult> = Vec::new();
    // Monitoring's *Test connection* writes the same kind of items.
    let mut tests = Vec::new();
    connect("not-the-secret".into()).await;
    results.extend(core.check_integration().await.unwrap());
    tests.push(core.test_psa_connection().await.unwrap());
    connect(creds.client_secret.clone()).await;
    results.extend(core.check_integration().await.unwrap());
    tests.push(core.test_psa_connection().await.unwrap());
    core.webhook_settings().await.unwrap();
    let _receiver = core.start_psa_receiver().await.unwrap();
    core.set_ticket_tab(
        mailroom_secrets::SecretValue::new("tab-secret"),
        Default::default(),
    )
    .await
    .unwrap();
    results.push(core.create_ticket_tab().await.unwrap());
    results.push(core.set_resolve_status(9).await.unwrap());
    results.push(core.create_resolve_action().await.unwrap());
    core.generate_webhook_certificate().await.unwrap();
    results.push(
        core.check_integration_step(Step::Certificate)
            .await
            .unwrap(),
    );
    results.push(core.upload_webhook_certificate().await.unwrap());
    results.push(core.create_psa_webhook().await.unwrap());
    results.push(
        core.run_end_to_end_test(std::time::Duration::from_secs(20))
            .await
            .unwrap(),
    );
    results.extend(core.check_integration().await.unwrap());
    let status = core.integration_status().await.unwrap();

    let (ui, engine) = catalogue();
    let known = |text: &str| ui.iter().chain(engine.iter()).any(|key| matches(key, text));
    let mut missing = BTreeSet::new();
    for result in &results {
        if result.ok && !known(&result.summary) {
            missing.insert(format!("summary: {}", result.summary));
        }
        for item in &result.items {
            if !known(&item.label) && !HALO_FIELD_LABELS.contains(&item.label.as_str()) {
                missing.insert(format!("label: {}", item.label));
            }
            if !item.ok && !known(&item.detail) {
                missing.insert(format!("detail: {}", item.detail));
            }
            for text in item.fix.iter().chain(item.why.iter()) {
                if !known(text) {
                    missing.insert(format!("fix/why: {text}"));
                }
            }
        }
    }
    for check in tests.iter().flat_map(|t| &t.checks) {
        if !known(&check.label) {
            missing.insert(format!("test label: {}", check.label));
        }
        if !check.ok && !known(&check.detail) {
            missing.insert(format!("test detail: {}", check.detail));
        }
        if let Some(fix) = check.fix.as_deref().filter(|f| !known(f)) {
            missing.insert(format!("test fix: {fix}"));
        }
    }
    for permission in status.permissions {
        if !known(permission.why) {
            missing.insert(format!("why: {}", permission.why));
        }
    }
    for step in &status.steps {
        if !known(step.title) {
            missing.insert(format!("title: {}", step.title));
        }
    }
    assert!(
        missing.is_empty(),
        "not in ui/locales/de.js:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
    let _ = core
        .secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await;
}

//! Prints the plan for a raw `.eml` file with default settings (unknown
//! senders go to a placeholder default site 1), an empty directory and an
//! empty thread index:
//! `cargo run -p mailroom-mailproc --example plan_eml -- path/to/mail.eml`
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: plan_eml <file.eml>");
        std::process::exit(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(1);
        }
    };
    let email = match mailroom_mailproc::ParsedEmail::from_mime(&bytes) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut settings = mailroom_mailproc::MailboxSettings::default();
    settings.sender_policy.default_site_id = Some(1);
    let directory = mailroom_mailproc::Directory::default();
    let plan = mailroom_mailproc::plan(
        &email,
        &mailroom_mailproc::Context {
            settings: &settings,
            directory: &directory,
            index: &mailroom_mailproc::EmptyIndex,
            recent_same_subject: 0,
        },
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&plan).unwrap_or_else(|e| format!("(cannot serialise: {e})"))
    );
}

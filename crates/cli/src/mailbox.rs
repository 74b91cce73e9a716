//! `mailroom mailbox add|show|authorize|connect|test|disconnect`: connecting mailboxes from the
//! command line, over the same core as the desktop app's Incoming tab.
//!
//! Secrets are never taken as command-line arguments (they would land in shell history and
//! `ps`): the client secret and the PFX password are read from stdin.

use std::io::Read;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use mailroom_engine::connect::{self, DiagnosisReport, PfxImport};
use mailroom_engine::mailboxes::MailboxSetup;
use mailroom_engine::store_types::{Cloud, CredentialKind, MailboxMethod};
use mailroom_engine::{Core, CoreError, Mailbox};
use mailroom_secrets::SecretValue;

/// Mailbox connection subcommands.
#[derive(Subcommand)]
pub enum ConnectCommand {
    /// Add a mailbox (credential from stdin: --client-secret-stdin or --pfx FILE --pfx-password-stdin).
    Add(Box<AddArgs>),
    /// Show a mailbox: settings, connected account, credential expiry, needed permissions.
    Show {
        /// Mailbox name or id.
        mailbox: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delegated sign-in: prints the URL to open in a browser and waits for the redirect to
    /// the loopback listener (127.0.0.1).
    Authorize {
        /// Mailbox name or id.
        mailbox: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// App-only (webhooks): acquire a token with the stored secret/certificate and probe the inbox.
    Connect {
        /// Mailbox name or id.
        mailbox: String,
    },
    /// List a few inbox messages and check granted vs needed permissions.
    Test {
        /// Mailbox name or id.
        mailbox: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget the sign-in (deletes the refresh token from the keyring).
    Disconnect {
        /// Mailbox name or id.
        mailbox: String,
    },
    /// Name the account whose inbox a scan mailbox processes: `authorize` pre-fills it and
    /// refuses a sign-in by any other account.
    SignInAs {
        /// Mailbox name or id.
        mailbox: String,
        /// The account's sign-in address.
        account: Option<String>,
        /// Accept whoever signs in.
        #[arg(long, conflicts_with = "account")]
        anyone: bool,
    },
    /// Run the mailbox's safety checks now (blast radius, identity, who signs in) and record
    /// them; exits non-zero when one is red. The engine runs them again once a day.
    Check {
        /// Mailbox name or id.
        mailbox: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Name a mailbox a Webhooks mailbox's application must not reach (a canary): `test` then
    /// tries to read it and says whether the application is restricted.
    Canary {
        /// Mailbox name or id.
        mailbox: String,
        /// The canary's address.
        address: Option<String>,
        /// Forget the canary.
        #[arg(long, conflicts_with = "address")]
        none: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// Mailbox scan (delegated sign-in).
    Scan,
    /// Webhooks (application permissions).
    Webhook,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CloudArg {
    Global,
    UsgovGccHigh,
    UsgovDod,
    China,
    /// Explicit --authority-url and --graph-url (the sandbox, a proxy).
    Custom,
}

/// `mailroom mailbox add`.
#[derive(Args)]
pub struct AddArgs {
    #[arg(long)]
    name: String,
    #[arg(long, value_enum, default_value = "scan")]
    method: MethodArg,
    #[arg(long, value_enum, default_value = "global")]
    cloud: CloudArg,
    /// Authority root for --cloud custom, e.g. http://127.0.0.1:47110.
    #[arg(long)]
    authority_url: Option<String>,
    /// Graph root for --cloud custom, e.g. http://127.0.0.1:47111.
    #[arg(long)]
    graph_url: Option<String>,
    /// Directory (tenant) ID.
    #[arg(long)]
    tenant_id: String,
    /// Application (client) ID.
    #[arg(long)]
    client_id: String,
    /// Read the client secret value from stdin.
    #[arg(long, conflicts_with = "pfx")]
    client_secret_stdin: bool,
    /// The client secret's expiry date (YYYY-MM-DD), for expiry warnings.
    #[arg(long)]
    secret_expires: Option<String>,
    /// Certificate credential: a PFX/PKCS#12 file with the private key.
    #[arg(long, requires = "pfx_password_stdin")]
    pfx: Option<std::path::PathBuf>,
    /// Read the PFX password from stdin.
    #[arg(long)]
    pfx_password_stdin: bool,
    /// Scan: a shared mailbox to process through the signed-in user.
    #[arg(long)]
    shared_mailbox: Option<String>,
    /// Webhooks: the mailbox address.
    #[arg(long)]
    mailbox_address: Option<String>,
}

fn read_stdin_line(what: &str) -> anyhow::Result<SecretValue> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let value = text.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() {
        bail!("the {what} on stdin is empty");
    }
    Ok(SecretValue::new(value))
}

/// A core error, with the diagnosis (code, cause, fix) when there is one.
pub(crate) fn explain(error: CoreError) -> anyhow::Error {
    match error.diagnosis() {
        Some(DiagnosisReport { code, cause, fix }) => {
            anyhow::anyhow!("[{code}] {cause}\n  fix: {fix}")
        }
        None => {
            let code = serde_json::to_value(error.code())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            anyhow::anyhow!("[{code}] {error}")
        }
    }
}

pub(crate) async fn find(core: &Core, key: &str) -> anyhow::Result<Mailbox> {
    let all = core.mailboxes().await.map_err(explain)?;
    all.into_iter()
        .find(|m| m.id == key || m.name.eq_ignore_ascii_case(key))
        .with_context(|| {
            format!("no mailbox named or with id '{key}' (see `mailroom mailbox list`)")
        })
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs one subcommand.
pub async fn run(core: &Core, command: &ConnectCommand) -> anyhow::Result<()> {
    match command {
        ConnectCommand::Add(args) => add(core, args).await,
        ConnectCommand::Show { mailbox, json } => {
            let m = find(core, mailbox).await?;
            let warning = connect::credential_warning_now(&m);
            let needed = connect::needed_permissions(&m);
            if *json {
                return print_json(&serde_json::json!({
                    "mailbox": m, "warning": warning, "needed_permissions": needed,
                }));
            }
            println!("{} ({})", m.name, m.id);
            println!("  method:      {}", m.method.as_str());
            println!("  cloud:       {}", m.cloud.as_str());
            if let (Some(a), Some(g)) = (&m.authority_url, &m.graph_url) {
                println!("  authority:   {a}\n  graph:       {g}");
            }
            println!("  tenant:      {}", m.tenant_id);
            println!("  client id:   {}", m.client_id);
            println!("  credential:  {}", m.credential_kind.as_str());
            if let Some(t) = &m.certificate_thumbprint {
                println!("  thumbprint:  {t}");
            }
            if let Some(e) = m.credential_expires_at {
                println!("  expires:     {}", e.format("%Y-%m-%d"));
            }
            if let Some(s) = &m.shared_mailbox {
                println!("  shared:      {s}");
            }
            if let Some(a) = &m.mailbox_address {
                println!("  address:     {a}");
            }
            match &m.connected_account {
                Some(a) => println!("  connected:   {a}"),
                None => println!("  connected:   no"),
            }
            println!("  needs:       {}", needed.join(", "));
            if let Some(w) = warning {
                println!("  WARNING:     {}", w.message);
            }
            Ok(())
        }
        ConnectCommand::Authorize {
            mailbox,
            timeout_secs,
        } => {
            let m = find(core, mailbox).await?;
            let (url, authorization) = core.start_authorization(&m.id).await.map_err(explain)?;
            let who = m
                .shared_mailbox
                .as_deref()
                .map(|s| format!("the shared mailbox {s} (the account needs Full Access)"))
                .unwrap_or_else(|| "the inbox of the account that signs in".to_string());
            eprintln!("Warning: {who} will be processed and its mail turned into tickets.");
            eprintln!("Open this URL in a browser and sign in (Ctrl-C cancels):");
            println!("{url}");
            eprintln!(
                "Waiting for the redirect to {} …",
                authorization.redirect_uri()
            );
            let cancel = authorization.canceller();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    cancel.cancel();
                }
            });
            let connection = core
                .finish_authorization(authorization, Duration::from_secs(*timeout_secs))
                .await
                .map_err(explain)?;
            println!("Connected as {}", connection.account);
            if !connection.missing.is_empty() {
                eprintln!(
                    "Warning: the token lacks {}; add them in Entra and grant admin consent.",
                    connection.missing.join(", ")
                );
            }
            Ok(())
        }
        ConnectCommand::Connect { mailbox } => {
            let m = find(core, mailbox).await?;
            let connection = core.connect_app_only(&m.id).await.map_err(explain)?;
            println!("Connected to {}", connection.account);
            println!("Granted: {}", connection.granted.join(", "));
            Ok(())
        }
        ConnectCommand::Test { mailbox, json } => {
            let m = find(core, mailbox).await?;
            let test = core.test_connection(&m.id).await.map_err(explain)?;
            if *json {
                print_json(&test)?;
            } else {
                println!(
                    "Mailbox {}: {}",
                    test.mailbox,
                    if test.ok { "OK" } else { "PROBLEMS" }
                );
                println!("Granted:  {}", test.granted.join(", "));
                println!("Required: {}", test.required.join(", "));
                if !test.missing.is_empty() {
                    println!("Missing:  {}", test.missing.join(", "));
                }
                for p in &test.probes {
                    println!("  {:<24} {:<10} {}", p.permission, p.outcome, p.detail);
                }
                for c in &test.checks {
                    println!("  {:<24} {:<10} {}", c.id, c.state, c.detail);
                    if let Some(fix) = &c.fix {
                        println!("  {:<24} {:<10} fix: {fix}", "", "");
                    }
                }
                println!("Inbox:");
                for msg in &test.messages {
                    println!("  {} — {}", msg.subject, msg.from);
                }
                if let Some(w) = &test.warning {
                    println!("WARNING: {}", w.message);
                }
            }
            if test.ok {
                Ok(())
            } else {
                bail!("the connection test found problems")
            }
        }
        ConnectCommand::Check { mailbox, json } => {
            let m = find(core, mailbox).await?;
            let found = core
                .check_mailbox(
                    &m.id,
                    mailroom_clock::Clock::now(&*mailroom_clock::system()),
                )
                .await
                .map_err(explain)?;
            if *json {
                print_json(&found)?;
            } else {
                if let Some(at) = found.checked_at {
                    println!("Checked {} at {}", m.name, at.to_rfc3339());
                }
                for c in &found.checks {
                    println!("  {:<24} {:<10} {}", c.title, c.state, c.detail);
                    if let Some(fix) = &c.fix {
                        println!("  {:<24} {:<10} fix: {fix}", "", "");
                    }
                    if let Some(id) = &c.request_id {
                        println!("  {:<24} {:<10} request id: {id}", "", "");
                    }
                }
                if found.checks.is_empty() {
                    println!("  (no checks apply to this mailbox)");
                }
            }
            if found.checks.iter().any(|c| c.state == "failed") {
                bail!("a mailbox check is red")
            }
            Ok(())
        }
        ConnectCommand::SignInAs {
            mailbox,
            account,
            anyone,
        } => {
            let m = find(core, mailbox).await?;
            if account.is_none() && !anyone {
                let expected = m
                    .settings
                    .get(mailroom_engine::connect::EXPECTED_ACCOUNT_SETTING)
                    .and_then(|v| v.as_str())
                    .unwrap_or("anyone");
                println!("{} signs in as: {expected}", m.name);
                return Ok(());
            }
            core.set_expected_account(&m.id, account.as_deref())
                .await
                .map_err(explain)?;
            match account {
                Some(a) => println!("{}: only {a} may sign in (pre-filled at authorize)", m.name),
                None => println!("{}: anyone who signs in", m.name),
            }
            Ok(())
        }
        ConnectCommand::Canary {
            mailbox,
            address,
            none,
        } => {
            let m = find(core, mailbox).await?;
            if address.is_none() && !none {
                let canary = m
                    .settings
                    .get(mailroom_engine::connect::checks::CANARY_SETTING)
                    .and_then(|v| v.as_str())
                    .unwrap_or("none");
                println!("canary of {}: {canary}", m.name);
                return Ok(());
            }
            core.set_canary_address(&m.id, address.as_deref())
                .await
                .map_err(explain)?;
            match address {
                Some(a) => println!("{}: `mailroom mailbox test` now tries to read {a}", m.name),
                None => println!("{}: no canary", m.name),
            }
            Ok(())
        }
        ConnectCommand::Disconnect { mailbox } => {
            let m = find(core, mailbox).await?;
            core.disconnect_mailbox(&m.id).await.map_err(explain)?;
            println!("Disconnected {}", m.name);
            Ok(())
        }
    }
}

async fn add(core: &Core, args: &AddArgs) -> anyhow::Result<()> {
    let client_secret = if args.client_secret_stdin {
        Some(read_stdin_line("client secret")?)
    } else {
        None
    };
    let pfx = match &args.pfx {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the PFX file {}", path.display()))?;
            let password = read_stdin_line("PFX password")?;
            Some(PfxImport { bytes, password })
        }
        None => None,
    };
    let credential_kind = if pfx.is_some() {
        CredentialKind::Certificate
    } else if client_secret.is_some() {
        CredentialKind::Secret
    } else {
        CredentialKind::Public
    };
    let setup = MailboxSetup {
        name: args.name.clone(),
        method: match args.method {
            MethodArg::Scan => MailboxMethod::Scan,
            MethodArg::Webhook => MailboxMethod::Webhook,
        },
        cloud: match args.cloud {
            CloudArg::Global => Cloud::Global,
            CloudArg::UsgovGccHigh => Cloud::UsgovGccHigh,
            CloudArg::UsgovDod => Cloud::UsgovDod,
            CloudArg::China => Cloud::China,
            CloudArg::Custom => Cloud::Custom,
        },
        authority_url: args.authority_url.clone(),
        graph_url: args.graph_url.clone(),
        tenant_id: args.tenant_id.clone(),
        client_id: args.client_id.clone(),
        credential_kind,
        client_secret,
        shared_mailbox: args.shared_mailbox.clone(),
        mailbox_address: args.mailbox_address.clone(),
    };
    let expires = match &args.secret_expires {
        Some(text) => Some(connect::parse_expiry_date(text).map_err(explain)?),
        None => None,
    };
    let mailbox = core
        .add_mailbox_with_credentials(setup, expires, pfx)
        .await
        .map_err(explain)?;
    println!("Added mailbox {} ({})", mailbox.name, mailbox.id);
    if let Some(t) = &mailbox.certificate_thumbprint {
        println!(
            "Certificate thumbprint {t}: upload the certificate (.cer) to the app registration."
        );
    }
    match mailbox.method {
        MailboxMethod::Scan => println!("Next: mailroom mailbox authorize '{}'", mailbox.name),
        MailboxMethod::Webhook => println!("Next: mailroom mailbox connect '{}'", mailbox.name),
    }
    Ok(())
}

//! `mailroom secrets`: the secret store a data directory uses — the OS keyring, or secrets
//! sealed in the database under a key from `MAILROOM_SECRETS_KEY` / `MAILROOM_SECRETS_KEY_FILE`
//! (a server). `new-key` writes a key, `status` says which store and key are in use, `rotate`
//! reseals every sealed secret with the current key.

use std::io::Write as _;
use std::path::PathBuf;

use mailroom_engine::Core;
use mailroom_secrets::sealed::SealingKey;
use mailroom_secrets::BackendKind;
use serde::Serialize;

#[derive(clap::Subcommand)]
pub enum SecretsCommand {
    /// Writes a new random secrets key (32 bytes, base64) to FILE, readable by its owner only;
    /// point `MAILROOM_SECRETS_KEY_FILE` at it. Refuses to overwrite a file.
    NewKey {
        /// Where to write the key.
        #[arg(long)]
        file: PathBuf,
    },
    /// Which secret store this data directory uses, and for sealed secrets how many each key
    /// sealed.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reseals every sealed secret with the current key. Rotation: start with the new key as
    /// `MAILROOM_SECRETS_KEY` (or `…_FILE`) and the old one as `MAILROOM_SECRETS_PREVIOUS_KEY`
    /// (or `…_FILE`), run this, then drop the previous key.
    Rotate,
}

/// `new-key` needs no data directory.
pub fn new_key(file: &std::path::Path) -> anyhow::Result<()> {
    let key = SealingKey::generate()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut out = options.open(file).map_err(|e| {
        anyhow::anyhow!(
            "could not create {}: {e} (an existing key file is never overwritten)",
            file.display()
        )
    })?;
    writeln!(out, "{}", key.to_base64().as_str())?;
    println!(
        "Wrote secrets key {} to {}. Start Mailroom with MAILROOM_SECRETS_KEY_FILE={} and keep a copy somewhere safe: without it the sealed secrets cannot be read.",
        key.id(),
        file.display(),
        file.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct Status {
    backend: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    keyring_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    /// Sealed secrets by the id of the key that sealed them.
    sealed_by_key: Vec<(String, usize)>,
}

pub async fn run(core: &Core, command: &SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::NewKey { file } => new_key(file),
        SecretsCommand::Status { json } => {
            let mut by_key = std::collections::BTreeMap::<String, usize>::new();
            for (_, key_id) in core.store().sealed_secret_key_ids().await? {
                *by_key.entry(key_id).or_default() += 1;
            }
            let status = match core.secrets().backend() {
                BackendKind::Keyring { service } => Status {
                    backend: "keyring",
                    keyring_service: Some(service),
                    key_id: None,
                    sealed_by_key: by_key.into_iter().collect(),
                },
                BackendKind::Sealed { key_id } => Status {
                    backend: "sealed",
                    keyring_service: None,
                    key_id: Some(key_id),
                    sealed_by_key: by_key.into_iter().collect(),
                },
            };
            if *json {
                println!("{}", serde_json::to_string(&status)?);
                return Ok(());
            }
            match (&status.keyring_service, &status.key_id) {
                (Some(service), _) => println!(
                    "Secrets: the OS keyring (service \"{service}\"). Set MAILROOM_SECRETS_KEY_FILE to seal them in the database instead."
                ),
                (_, Some(key_id)) => {
                    println!("Secrets: sealed in the database with key {key_id}.")
                }
                _ => {}
            }
            for (key_id, n) in &status.sealed_by_key {
                println!("  {n} sealed with key {key_id}");
            }
            Ok(())
        }
        SecretsCommand::Rotate => {
            let BackendKind::Sealed { key_id } = core.secrets().backend() else {
                anyhow::bail!(
                    "this data directory keeps its secrets in the OS keyring: there is no key to rotate (set MAILROOM_SECRETS_KEY_FILE to use sealed secrets)"
                );
            };
            let resealed = core.secrets().rotate().await?;
            println!("Resealed {resealed} secret(s) with key {key_id}.");
            Ok(())
        }
    }
}

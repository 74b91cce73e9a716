//! `mailroom sandbox`: serve the sandbox tenant until Ctrl-C.

use mailroom_sandbox::{SandboxOptions, DEFAULT_BASE_PORT};

#[derive(clap::Args)]
pub struct SandboxArgs {
    /// First port: identity on N, Graph on N+1, HaloPSA on N+2, control API on N+3.
    #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
    port: u16,
    /// A JSON seed file replacing parts of the default tenant (format: crates/sandbox docs).
    #[arg(long)]
    seed: Option<std::path::PathBuf>,
    /// Serve HTTPS with a freshly generated local CA (needed by MSAL).
    #[arg(long)]
    tls: bool,
    /// Deliver change notifications to http:// receivers on this machine (127.0.0.1,
    /// localhost), such as `mailroom subscription receiver` or the app's. Graph itself
    /// requires https:// notification URLs; without this flag the sandbox does too.
    #[arg(long)]
    loopback_webhooks: bool,
}

pub async fn run(args: &SandboxArgs) -> anyhow::Result<()> {
    let seed = args
        .seed
        .as_deref()
        .map(mailroom_sandbox::load_seed)
        .transpose()?;
    mailroom_sandbox::run_until_ctrl_c(SandboxOptions {
        base_port: Some(args.port),
        seed,
        tls: args.tls,
        clock: None,
        loopback_webhooks: args.loopback_webhooks,
    })
    .await?;
    Ok(())
}

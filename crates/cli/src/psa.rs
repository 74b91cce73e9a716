//! `mailroom psa test`: the PSA connection's checks (credentials, scopes, ticket types, the
//! reply outcome of every mailbox), each with what to change when it fails.

use mailroom_engine::Core;

#[derive(clap::Subcommand)]
pub enum PsaCommand {
    /// Check the HaloPSA connection: sign-in, permissions, ticket types, reply outcomes.
    Test {
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(core: &Core, command: &PsaCommand) -> anyhow::Result<()> {
    match command {
        PsaCommand::Test { json } => {
            let report = core.test_psa_connection().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for check in &report.checks {
                    let mark = if check.ok { "ok    " } else { "FAILED" };
                    println!("{mark} {}: {}", check.label, check.detail);
                    if let Some(fix) = &check.fix {
                        println!("       fix: {fix}");
                    }
                }
            }
            if !report.ok {
                anyhow::bail!("the HaloPSA connection has problems (see above)");
            }
            Ok(())
        }
    }
}

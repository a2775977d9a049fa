//! `veche client`: a scriptable member device. Every command prints JSON with `--json`.
//! The device key and MLS state never leave `--state DIR`.
//!
//! A thin driver of `veche_device::Device`, which holds every rule a member device follows:
//! clap commands ([`commands`]), a tokio loop between the WebSocket ([`conn`], [`tls`]), the core
//! and redb ([`store`]) in [`driver`].

mod commands;
mod conn;
mod driver;
mod store;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Node URL, e.g. https://192.168.1.5:7800 (remembered at registration).
    #[arg(long, env = "VECHE_NODE")]
    pub node: Option<String>,
    /// At registration without a link that carries the node's fingerprint: trust the certificate
    /// the node presents now, and only it from then on.
    #[arg(long, global = true)]
    pub accept_fingerprint: bool,
    /// Directory holding this device's key and state [default: the user's data dir + /veche-client].
    #[arg(long, env = "VECHE_STATE")]
    pub state: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: commands::Command,
}

pub async fn main(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    match commands::run(args).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            if json {
                let code = e
                    .downcast_ref::<driver::Failed>()
                    .and_then(|f| f.0.code())
                    .map(|code| format!("{code:?}"))
                    .unwrap_or_else(|| "Error".to_string());
                println!("{}", serde_json::json!({ "error": format!("{e:#}"), "code": code }));
            } else {
                eprintln!("error: {e:#}");
            }
            Ok(ExitCode::from(2))
        }
    }
}

//! `veche`: the Veche node (`veche run`) and the scriptable native client (`veche client`).

mod api;
mod client;
mod config;
mod hub;
mod identity;
mod metrics;
mod mls_view;
mod p2p;
mod private_fs;
mod run;
mod service;
mod store;
mod tls;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "veche", version, about = "Veche: a self-hosted, community-run communication node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node.
    Run(Box<config::RunArgs>),
    /// The native member client (scriptable, `--json` on every command).
    Client(client::ClientArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // libp2p brings rustls with aws-lc, webrtc-rs with ring: one process-wide provider, chosen
    // here, or rustls cannot pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => {
            init_logs();
            runtime.block_on(run::run(*args))
        }
        Command::Client(args) => runtime.block_on(client::main(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VECHE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

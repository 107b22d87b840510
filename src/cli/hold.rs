//! `paxlog hold`: retention holds, which keep the log above an index from
//! being trimmed while their owner (a slow consumer, a backup) renews them.

use std::process::ExitCode;
use std::time::Duration;

use paxlog_storage::Index;

use super::args::{ClientArgs, OutputArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Set or renew a hold: no trim passes `--index` until it is released or
    /// goes `--lease` without a renewal. Admin only.
    Set(SetArgs),
    /// Release a hold. Admin only.
    Release(NameArgs),
    /// Every hold, as each node knows it.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub name: String,
    /// The trim point stays at or below this index.
    #[arg(long)]
    pub index: Index,
    /// Released by the leader if not renewed within this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub lease: Duration,
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::Set(a) => {
            let client = a.client.connect()?;
            let at = client.hold(&a.name, a.index, a.lease).await?;
            outln!(
                "hold {:?} keeps every index above {} (lease {}), chosen at index {at}",
                a.name,
                a.index,
                humantime::format_duration(a.lease)
            );
        }
        Cmd::Release(a) => {
            let client = a.client.connect()?;
            let at = client.release(&a.name).await?;
            outln!("hold {:?} released at index {at}", a.name);
        }
        Cmd::List(a) if a.out.json() => {
            let client = a.client.connect()?;
            let rows: Vec<serde_json::Value> = client
                .status_all()
                .await
                .into_iter()
                .map(|(id, _, status)| match status {
                    Ok(s) => serde_json::json!({ "id": id, "holds": s.holds }),
                    Err(e) => serde_json::json!({ "id": id, "error": e.to_string() }),
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Cmd::List(a) => {
            let client = a.client.connect()?;
            for (id, _, status) in client.status_all().await {
                match status {
                    Ok(s) if s.holds.is_empty() => outln!("node {id}: no holds"),
                    Ok(s) => {
                        for (name, h) in &s.holds {
                            outln!(
                                "node {id}: {name:?} at index {} (lease {} ms, renewed at index {})",
                                h.index, h.lease_ms, h.renewed_at
                            );
                        }
                    }
                    Err(e) => outln!("node {id}: unreachable ({e})"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `paxlog snapshot`: the application's published snapshots: which one the
//! log knows, which nodes hold which files, fetching one, publishing one.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use paxlog_storage::{Index, NodeId};

use super::args::{ClientArgs, OutputArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// The newest published snapshot each node knows, and the files it holds.
    List(ListArgs),
    /// Fetch the newest published snapshot into a file (resumable: run it
    /// again after an interruption and it goes on where it stopped).
    Get(GetArgs),
    /// Upload a file to a node as the snapshot at an index, and publish it
    /// (the trim point may then move up to it). Admin only.
    Publish(PublishArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Where to write it; it appears only whole and verified.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The application's state in this file is after applying every index up to this one.
    #[arg(long)]
    pub index: Index,
    /// The snapshot file.
    #[arg(long)]
    pub file: PathBuf,
    /// The node that keeps it (default: the lowest node id).
    #[arg(long)]
    pub node: Option<NodeId>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::List(args) => list(args).await,
        Cmd::Get(args) => get(args).await,
        Cmd::Publish(args) => publish(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.connect()?;
    let statuses = client.status_all().await;
    if args.out.json() {
        let rows: Vec<serde_json::Value> = statuses
            .iter()
            .map(|(id, _, s)| match s {
                Ok(s) => serde_json::json!({
                    "node": id,
                    "newest": s.snapshot,
                    "held": s.snapshots_held,
                }),
                Err(e) => serde_json::json!({ "node": id, "error": e.to_string() }),
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "node",
        "newest published",
        "size",
        "crc32c",
        "holders",
        "held here",
    ]);
    for (id, _, status) in &statuses {
        let row = match status {
            Ok(s) => {
                let held: Vec<String> = s
                    .snapshots_held
                    .iter()
                    .map(|h| format!("{} ({} B)", h.index, h.size_bytes))
                    .collect();
                match &s.snapshot {
                    Some(m) => vec![
                        id.to_string(),
                        m.index.to_string(),
                        m.size_bytes.to_string(),
                        format!("{:08x}", m.crc32c),
                        format!("{:?}", m.holders),
                        held.join(", "),
                    ],
                    None => vec![
                        id.to_string(),
                        "none".into(),
                        "".into(),
                        "".into(),
                        "".into(),
                        held.join(", "),
                    ],
                }
            }
            Err(e) => vec![id.to_string(), format!("unreachable: {e}")],
        };
        table.add_row(row);
    }
    outln!("{table}");
    Ok(ExitCode::SUCCESS)
}

async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.connect()?;
    let Some(meta) = client.newest_snapshot().await? else {
        anyhow::bail!("no snapshot has been published");
    };
    let resumed_at = client.fetch_snapshot(&meta, &args.out).await?;
    outln!(
        "snapshot at index {} ({} bytes, CRC-32C {:08x}) written to {} (resumed at byte \
         {resumed_at}); peak memory {}",
        meta.index,
        meta.size_bytes,
        meta.crc32c,
        args.out.display(),
        peak_memory().unwrap_or_else(|| "unknown".into())
    );
    Ok(ExitCode::SUCCESS)
}

async fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.connect()?;
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let node = match args.node {
        Some(node) => node,
        None => client.node_ids().into_iter().min().context("no nodes")?,
    };
    let (meta, at) = client.publish_snapshot(node, args.index, file).await?;
    outln!(
        "snapshot at index {} ({} bytes, CRC-32C {:08x}) held by node {node}, published at index {at}",
        meta.index, meta.size_bytes, meta.crc32c
    );
    Ok(ExitCode::SUCCESS)
}

/// This process's peak resident memory (`VmHWM`), as Linux reports it.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_string())
}

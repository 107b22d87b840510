//! `paxlog members`: the configuration and its changes, one voter at a time.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use paxlog::cluster::{ClusterFile, NodeEntry};
use paxlog::core::{Change, Membership, Role};
use paxlog::proto::NodeStatus;
use paxlog_storage::NodeId;
use serde::Serialize;

use super::args::{ClientArgs, OutputArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// The configuration: epoch, and each member's role, incarnation and lag.
    List(ListArgs),
    /// Add a node as a learner (it receives the log, does not vote); the
    /// cluster file gains its entry.
    Add(AddArgs),
    /// Make a learner a voter, once it has caught up.
    Promote(IdArgs),
    /// Remove a member (a leader that removes itself steps down).
    Remove(IdArgs),
    /// Replace a member: by its new incarnation (same id, e.g. after its data
    /// directory was wiped), or by another node (`--by`, added first).
    Replace(ReplaceArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The new node's id.
    pub id: NodeId,
    /// Where the new node listens (QUIC); peers dial it there.
    #[arg(long)]
    pub addr: SocketAddr,
    /// Its admin HTTP address, recorded in the cluster file.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub id: NodeId,
    /// How long a promotion waits for the learner to catch up.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

#[derive(Debug, clap::Args)]
pub struct ReplaceArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The member to replace.
    pub id: NodeId,
    /// The node replacing it (default: the same id, a new incarnation).
    #[arg(long)]
    pub by: Option<NodeId>,
    /// Where the replacing node listens (default: its cluster file entry).
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// How long to wait for the new node to catch up.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::List(a) => list(a).await,
        Cmd::Add(a) => {
            let node = NodeEntry {
                id: a.id,
                addr: a.addr,
                admin: a.admin,
                data: None,
                pid: None,
            };
            if ClusterFile::add_node_and_save(&a.client.cluster, node)? {
                outln!("added node {} to {}", a.id, a.client.cluster.display());
            }
            let client = a.client.connect()?;
            let change = Change::AddLearner {
                id: a.id,
                addr: a.addr.to_string(),
            };
            let m = client.change_members(change).await?;
            outln!("node {} is a learner: {}", a.id, m);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Promote(a) => {
            let client = a.client.connect()?;
            client.wait_caught_up(a.id, a.wait).await?;
            let m = client.change_members(Change::Promote { id: a.id }).await?;
            outln!("node {} is a voter: {}", a.id, m);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Remove(a) => {
            let client = a.client.connect()?;
            let m = client.change_members(Change::Remove { id: a.id }).await?;
            outln!("node {} removed: {}", a.id, m);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Replace(a) => {
            let new = a.by.unwrap_or(a.id);
            let file = ClusterFile::load(&a.client.cluster)?;
            let addr = match a.addr {
                Some(addr) => addr,
                None => file.node(new).map(|n| n.addr).with_context(|| {
                    format!(
                        "node {new} is not in {}; give --addr",
                        a.client.cluster.display()
                    )
                })?,
            };
            if new != a.id {
                let node = NodeEntry {
                    id: new,
                    addr,
                    admin: None,
                    data: None,
                    pid: None,
                };
                ClusterFile::add_node_and_save(&a.client.cluster, node)?;
            }
            let client = a.client.connect()?;
            let m = client.replace(a.id, new, addr.to_string(), a.wait).await?;
            outln!("node {} replaced by node {new}: {m}", a.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Debug, Serialize)]
struct Row {
    id: NodeId,
    role: &'static str,
    /// Hex; `None` while unbound.
    incarnation: Option<String>,
    addr: String,
    leader: bool,
    /// Chosen entries behind the leader, as the leader last heard.
    lag_entries: Option<u64>,
    /// Why it does not vote, as it says itself.
    not_voting: Option<String>,
}

#[derive(Debug, Serialize)]
struct Listing {
    epoch: u64,
    members: Vec<Row>,
}

fn listing(m: &Membership, statuses: &[NodeStatus]) -> Listing {
    let leader = statuses.iter().find(|s| s.role == Role::Leader);
    let members = m
        .members
        .iter()
        .map(|member| Row {
            id: member.id,
            role: if member.voter { "voter" } else { "learner" },
            incarnation: (member.incarnation != 0).then(|| format!("{:x}", member.incarnation)),
            addr: member.addr.clone(),
            leader: leader.is_some_and(|l| l.id == member.id),
            lag_entries: leader.and_then(|l| {
                if l.id == member.id {
                    return Some(0);
                }
                l.peers
                    .iter()
                    .find(|p| p.id == member.id)
                    .and_then(|p| p.chosen_lag_entries)
            }),
            not_voting: statuses
                .iter()
                .find(|s| s.id == member.id)
                .and_then(|s| s.not_voting.clone()),
        })
        .collect();
    Listing {
        epoch: m.epoch,
        members,
    }
}

async fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let client = a.client.connect()?;
    let (m, statuses) = client.members().await?;
    let l = listing(&m, &statuses);
    if a.out.json() {
        outln!("{}", serde_json::to_string_pretty(&l)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("configuration epoch {}", l.epoch);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["id", "role", "incarnation", "addr", "lag", "note"]);
    for r in &l.members {
        let role = if r.leader {
            format!("{} (leader)", r.role)
        } else {
            r.role.to_string()
        };
        table.add_row([
            r.id.to_string(),
            role,
            r.incarnation.clone().unwrap_or_else(|| "unbound".into()),
            if r.addr.is_empty() {
                "(cluster file)".into()
            } else {
                r.addr.clone()
            },
            r.lag_entries.map_or("-".into(), |l| l.to_string()),
            r.not_voting.clone().unwrap_or_default(),
        ]);
    }
    outln!("{table}");
    Ok(ExitCode::SUCCESS)
}

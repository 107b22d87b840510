use std::process::ExitCode;
use std::time::Duration;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

use super::args::{ClientArgs, OutputArgs};
use paxlog::client::Client;
use paxlog::proto::{NodeStatus, PeerStatus};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Refresh every interval (e.g. 1s) until Ctrl-C; a table is redrawn in
    /// place, JSON is one document per line.
    #[arg(long, env = "PAXLOG_WATCH", value_parser = humantime::parse_duration)]
    pub watch: Option<Duration>,
}

/// One node's row: its own status, or why it did not answer. Flattened, so
/// an answering node's `id` and `role` come from its status, once.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Row {
    Up {
        addr: String,
        #[serde(flatten)]
        status: Box<NodeStatus>,
    },
    Down {
        id: u64,
        addr: String,
        role: &'static str,
        error: String,
    },
}

async fn rows(client: &Client) -> Vec<Row> {
    client
        .status_all()
        .await
        .into_iter()
        .map(|(id, addr, result)| match result {
            Ok(status) => Row::Up {
                addr: addr.to_string(),
                status: Box::new(status),
            },
            Err(e) => Row::Down {
                id,
                addr: addr.to_string(),
                role: "unreachable",
                error: e.to_string(),
            },
        })
        .collect()
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.client.connect()?;
    let Some(every) = args.watch else {
        let rows = rows(&client).await;
        if args.out.json() {
            outln!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            outln!("{}", table(&rows));
        }
        if !rows.iter().any(|r| matches!(r, Row::Up { .. })) {
            eprintln!("no node of the cluster is reachable");
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = ticker.tick() => {}
        }
        let rows = rows(&client).await;
        if args.out.json() {
            outln!("{}", serde_json::to_string(&rows)?);
        } else {
            // Home and clear: redraw in place.
            outln!("\x1b[H\x1b[2J{}", table(&rows));
            outln!(
                "every {} · Ctrl-C to stop",
                humantime::format_duration(every)
            );
        }
    }
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{} ms", us / 1_000)
    } else {
        format!("{us} µs")
    }
}

fn peer_cell(p: &PeerStatus) -> String {
    let contact = p
        .last_contact_ms
        .map_or_else(|| "never".into(), |ms| format!("{ms} ms ago"));
    let role = if p.voter { "" } else { " (learner)" };
    let mut cell = format!("{}{role}: lag {}", p.id, or_dash(p.lag_entries));
    if let Some(us) = p.round_trip_us {
        cell.push_str(&format!(", rtt {}", micros(us)));
    }
    cell.push_str(&format!(", {contact}"));
    if p.syncs == Some(false) {
        cell.push_str(", unsynced");
    }
    cell
}

fn table(rows: &[Row]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "id",
        "addr",
        "role",
        "ballot",
        "chosen",
        "last",
        "trim",
        "epoch",
        "tenure",
        "fsync p99",
        "peers (lag, rtt, last contact)",
    ]);
    for row in rows {
        match row {
            Row::Up { addr, status: s } => {
                let peers = s.peers.iter().map(peer_cell).collect::<Vec<_>>().join("; ");
                let tenure = s
                    .leader_tenure_ms
                    .map(|ms| humantime::format_duration(Duration::from_secs(ms / 1_000)));
                table.add_row([
                    s.id.to_string(),
                    addr.clone(),
                    s.role.to_string(),
                    s.ballot.to_string(),
                    s.chosen_index.to_string(),
                    s.last_index.to_string(),
                    s.trim_index.to_string(),
                    s.membership.epoch.to_string(),
                    or_dash(tenure),
                    or_dash(s.fsync_p99_us.map(micros)),
                    match &s.not_voting {
                        Some(why) => format!("{peers}; not voting: {why}"),
                        None => peers,
                    },
                ]);
            }
            Row::Down {
                id,
                addr,
                role,
                error,
            } => {
                let mut cells = vec![id.to_string(), addr.clone(), role.to_string()];
                cells.extend(std::iter::repeat_n("-".to_string(), 7));
                cells.push(error.clone());
                table.add_row(cells);
            }
        }
    }
    table
}

use std::process::ExitCode;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

use super::args::ClientArgs;
use paxlog::proto::NodeStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    id: u64,
    addr: String,
    role: String,
    #[serde(flatten)]
    status: Option<NodeStatus>,
    error: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.client.connect()?;
    let rows: Vec<Row> = client
        .status_all()
        .await
        .into_iter()
        .map(|(id, addr, result)| match result {
            Ok(status) => Row {
                id,
                addr: addr.to_string(),
                role: status.role.to_string(),
                status: Some(status),
                error: None,
            },
            Err(e) => Row {
                id,
                addr: addr.to_string(),
                role: "unreachable".into(),
                status: None,
                error: Some(e.to_string()),
            },
        })
        .collect();
    let reachable = rows.iter().filter(|r| r.status.is_some()).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
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
            "peers (lag, last contact)",
        ]);
        for row in &rows {
            match &row.status {
                Some(s) => {
                    let peers = s
                        .peers
                        .iter()
                        .map(|p| {
                            let contact = p
                                .last_contact_ms
                                .map(|ms| format!("{ms}ms ago"))
                                .unwrap_or_else(|| "never".into());
                            let lag = p
                                .lag_entries
                                .map(|l| l.to_string())
                                .unwrap_or_else(|| "-".into());
                            let role = if p.voter { "" } else { " (learner)" };
                            format!("{}{role}: lag {}, {}", p.id, lag, contact)
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    table.add_row([
                        row.id.to_string(),
                        row.addr.clone(),
                        row.role.clone(),
                        s.ballot.to_string(),
                        s.chosen_index.to_string(),
                        s.last_index.to_string(),
                        s.trim_index.to_string(),
                        s.membership.epoch.to_string(),
                        match &s.not_voting {
                            Some(why) => format!("{peers}; not voting: {why}"),
                            None => peers,
                        },
                    ]);
                }
                None => {
                    table.add_row([
                        row.id.to_string(),
                        row.addr.clone(),
                        "unreachable".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        row.error.clone().unwrap_or_default(),
                    ]);
                }
            }
        }
        println!("{table}");
    }
    if reachable == 0 {
        eprintln!("no node of the cluster is reachable");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

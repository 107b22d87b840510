//! What several subcommands share: the client options and how values print.
//! A leaf, so the subcommand files never import `cli/mod.rs`.

use std::path::PathBuf;
use std::time::Duration;

use paxlog::client::Client;
use paxlog::cluster::ClusterFile;

/// Options every client command takes.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// The cluster file (see README).
    #[arg(long, env = "PAXLOG_CLUSTER")]
    pub cluster: PathBuf,
    /// Client certificate name (default: `client` in the cluster file).
    #[arg(long, env = "PAXLOG_CLIENT")]
    pub client: Option<String>,
    /// Give up after this long (e.g. 500ms, 10s, 1m).
    #[arg(long, env = "PAXLOG_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// How a listing prints, the same in every command (etcdctl's `-w`).
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        env = "PAXLOG_OUTPUT",
        default_value = "table"
    )]
    output: Output,
    /// Short for `-o json`.
    #[arg(long)]
    json: bool,
}

impl OutputArgs {
    pub fn json(&self) -> bool {
        self.json || self.output == Output::Json
    }
}

impl ClientArgs {
    pub fn connect(&self) -> anyhow::Result<Client> {
        let file = ClusterFile::load(&self.cluster)?;
        Ok(Client::from_cluster_file(
            &file,
            self.client.as_deref(),
            self.timeout,
        )?)
    }
}

/// Renders a value for the terminal: UTF-8 as is (tabs/newlines escaped), else hex.
pub fn render_value(bytes: &[u8], hex: bool) -> String {
    match (hex, std::str::from_utf8(bytes)) {
        (false, Ok(text)) => text
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\t', "\\t"),
        _ => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

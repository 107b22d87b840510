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
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
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

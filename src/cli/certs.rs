use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use paxlog_storage::NodeId;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write ca.pem, node-N.pem/.key and client-NAME.pem/.key into.
    #[arg(long)]
    pub out: PathBuf,
    /// Node ids, comma separated (e.g. 1,2,3).
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<NodeId>,
    /// Client certificate names, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "cli")]
    pub clients: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.nodes.contains(&0) {
        bail!("node id 0 is not allowed; ids start at 1");
    }
    for name in &args.clients {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("client name {name:?} must be non-empty ASCII letters, digits or '-'");
        }
    }
    paxlog_net::generate_certs(&args.out, &args.nodes, &args.clients)
        .with_context(|| format!("generating certificates in {}", args.out.display()))?;
    println!(
        "wrote a CA, {} node and {} client certificates to {}",
        args.nodes.len(),
        args.clients.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

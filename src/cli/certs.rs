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
    #[arg(long, value_delimiter = ',', required_unless_present_any = ["add_node", "clients"])]
    pub nodes: Vec<NodeId>,
    /// Client certificate names, comma separated (default with --nodes: cli).
    #[arg(long, value_delimiter = ',')]
    pub clients: Option<Vec<String>>,
    /// Issue a certificate for one new node from the CA already in --out
    /// (to add or replace a member); nothing else is written.
    #[arg(long, conflicts_with = "nodes")]
    pub add_node: Option<NodeId>,
}

pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    let clients = match (&args.clients, args.add_node) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => vec!["cli".to_string()],
    };
    if let Some(id) = args.add_node {
        let ca = paxlog_net::CertPaths::new(&args.out);
        if !ca.ca().exists() || !ca.ca_key().exists() {
            bail!(
                "--add-node issues from the cluster's existing CA, and {} has no ca.pem and \
                 ca.key; point --out at the cluster's certificate directory",
                args.out.display()
            );
        }
        args.nodes = vec![id];
    }
    let args = Args {
        clients: Some(clients),
        ..args
    };
    let clients = args.clients.clone().unwrap_or_default();
    if args.nodes.contains(&0) {
        bail!("node id 0 is not allowed; ids start at 1");
    }
    for name in &clients {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("client name {name:?} must be non-empty ASCII letters, digits or '-'");
        }
    }
    paxlog_net::generate_certs(&args.out, &args.nodes, &clients)
        .with_context(|| format!("generating certificates in {}", args.out.display()))?;
    outln!(
        "wrote a CA, {} node and {} client certificates to {}",
        args.nodes.len(),
        clients.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

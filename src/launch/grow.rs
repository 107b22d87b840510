//! Growing a local cluster by a node for a membership change.

use std::io;
use std::path::PathBuf;

use paxlog_storage::NodeId;

use super::{free_ports, LaunchError, LocalCluster};
use crate::cluster::NodeEntry;

impl LocalCluster {
    /// A new node `id` for a membership change: a certificate from the
    /// cluster's CA, free ports, a data directory and its cluster file entry;
    /// not started, and not a member until a change adds it.
    pub fn add_node(&mut self, id: NodeId) -> Result<NodeEntry, LaunchError> {
        if self.file.node(id).is_some() {
            return Err(LaunchError::AlreadyRunning(id));
        }
        let certs = self.config.dir.join("certs");
        paxlog_net::generate_certs(&certs, &[id], &[]).map_err(|source| LaunchError::Certs {
            path: certs.clone(),
            source,
        })?;
        let (addr, admin) = free_ports(1)
            .map_err(LaunchError::Ports)?
            .into_iter()
            .next()
            .ok_or_else(|| LaunchError::Ports(io::Error::other("no free port")))?;
        let entry = NodeEntry {
            id,
            addr,
            admin: self.config.admin.then_some(admin),
            data: Some(PathBuf::from(format!("data/node-{id}"))),
            pid: None,
        };
        self.file.nodes.push(entry.clone());
        self.write_file()?;
        Ok(entry)
    }
}

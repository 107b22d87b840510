//! The cluster file: which nodes exist, where they listen, and where the
//! certificates are. Written by `paxlog dev`, read by every client command.
//!
//! ```toml
//! cluster_id = "dev"            # optional; defaults to "paxlog"
//! certs = "certs"               # relative to this file's directory
//! client = "cli"                # which client certificate the CLI presents
//! admins = ["cli"]              # optional: who may change members and trim
//!
//! [[node]]
//! id = 1
//! addr = "127.0.0.1:7001"
//! admin = "127.0.0.1:9001"      # optional: /metrics, /livez, /readyz
//! data = "data/node-1"          # optional: written by `paxlog dev`
//! pid = 4242                    # optional: written by `paxlog dev`
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use paxlog_storage::NodeId;
use serde::{Deserialize, Serialize};

pub const DEFAULT_CLUSTER_ID: &str = "paxlog";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    #[serde(default = "default_cluster_id")]
    pub cluster_id: String,
    pub certs: PathBuf,
    #[serde(default)]
    pub client: Option<String>,
    /// Client certificate names allowed member changes and trims (default:
    /// the CLI's, `cli`); every other client is refused with "not permitted".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admins: Option<Vec<String>>,
    #[serde(rename = "node")]
    pub nodes: Vec<NodeEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub id: NodeId,
    pub addr: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

fn default_cluster_id() -> String {
    DEFAULT_CLUSTER_ID.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    #[error("cannot read cluster file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write cluster file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(path: &Path, message: String) -> ClusterFileError {
    ClusterFileError::Invalid {
        path: path.to_path_buf(),
        message,
    }
}

impl ClusterFile {
    /// The file as written: not validated, paths not resolved.
    fn parse(path: &Path) -> Result<ClusterFile, ClusterFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| invalid(path, e.to_string()))
    }

    /// Reads and validates a cluster file; relative paths inside it are
    /// resolved against the file's directory.
    pub fn load(path: &Path) -> Result<ClusterFile, ClusterFileError> {
        let mut file = ClusterFile::parse(path)?;
        file.validate().map_err(|m| invalid(path, m))?;
        let base = path.parent().unwrap_or(Path::new("."));
        file.certs = base.join(&file.certs);
        for node in &mut file.nodes {
            if let Some(data) = &node.data {
                node.data = Some(base.join(data));
            }
        }
        Ok(file)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("it lists no [[node]]".into());
        }
        let mut seen = BTreeMap::new();
        for node in &self.nodes {
            if node.id == 0 {
                return Err("node id 0 is not allowed; ids start at 1".into());
            }
            if seen.insert(node.id, ()).is_some() {
                return Err(format!("node id {} is listed twice", node.id));
            }
        }
        if self.cluster_id.is_empty() {
            return Err("cluster_id is empty".into());
        }
        Ok(())
    }

    pub fn addrs(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.nodes.iter().map(|n| (n.id, n.addr)).collect()
    }

    pub fn node(&self, id: NodeId) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Adds `node` (if its id is not listed) and writes the file back,
    /// atomically (temporary file, then rename). Paths are written relative
    /// to the file's directory, as they were read.
    pub fn add_node_and_save(path: &Path, node: NodeEntry) -> Result<bool, ClusterFileError> {
        let mut file = ClusterFile::parse(path)?;
        if file.node(node.id).is_some() {
            return Ok(false);
        }
        file.nodes.push(node);
        file.validate().map_err(|m| invalid(path, m))?;
        let tmp = path.with_extension("toml.tmp");
        let write = |p: &Path| std::fs::write(p, file.to_toml());
        write(&tmp)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| ClusterFileError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(true)
    }

    /// Who may change members and trim.
    pub fn admin_names(&self) -> Vec<String> {
        self.admins
            .clone()
            .unwrap_or_else(|| vec![crate::node::DEFAULT_ADMIN.to_string()])
    }

    pub fn to_toml(&self) -> String {
        // Serializing plain structs of strings, numbers and paths cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.toml");
        std::fs::write(
            &path,
            "certs = \"c\"\nclient = \"cli\"\n[[node]]\nid = 1\naddr = \"127.0.0.1:7001\"\n",
        )
        .expect("write");
        let file = ClusterFile::load(&path).expect("load");
        assert_eq!(file.certs, dir.path().join("c"));
        assert_eq!(file.cluster_id, DEFAULT_CLUSTER_ID);
        assert_eq!(file.nodes[0].id, 1);
    }

    #[test]
    fn rejects_duplicate_ids_and_unknown_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.toml");
        std::fs::write(
            &path,
            "certs = \"c\"\n[[node]]\nid = 1\naddr = \"127.0.0.1:1\"\n[[node]]\nid = 1\naddr = \"127.0.0.1:2\"\n",
        )
        .expect("write");
        let err = ClusterFile::load(&path).expect_err("duplicate ids");
        assert!(err.to_string().contains("listed twice"), "{err}");
        std::fs::write(&path, "certs = \"c\"\nbogus = 1\n").expect("write");
        let err = ClusterFile::load(&path).expect_err("unknown field");
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}

//! Development certificates: one cluster CA, node and client certificates.
//!
//! Files in a certificates directory:
//! `ca.pem`, `ca.key`, `node-<id>.pem`/`.key`, `client-<name>.pem`/`.key`.
//! Keys are PKCS#8 ECDSA P-256, written with mode 0600. If `ca.pem` and
//! `ca.key` already exist they are reused (so nodes can be added later);
//! this relies on the CA having been made by this module, whose subject is fixed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::identity::{client_dns_name, node_dns_name};
use crate::{NetError, NodeId};

const CA_COMMON_NAME: &str = "paxlog cluster CA";
const VALIDITY_YEARS: i32 = 10;

/// Paths of the files in a certificates directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub dir: PathBuf,
}

impl CertPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    /// `ca.pem`
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// `ca.key`
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// (`node-<id>.pem`, `node-<id>.key`)
    pub fn node(&self, id: NodeId) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("node-{id}.pem")),
            self.dir.join(format!("node-{id}.key")),
        )
    }
    /// (`client-<name>.pem`, `client-<name>.key`)
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("client-{name}.pem")),
            self.dir.join(format!("client-{name}.key")),
        )
    }
}

/// Writes a CA (unless one exists in `out_dir`) and a certificate + key for
/// every node and client. Nodes get serverAuth + clientAuth, clients
/// clientAuth only. Names are checked before anything is written.
pub fn generate_certs(
    out_dir: &Path,
    nodes: &[NodeId],
    clients: &[String],
) -> Result<(), NetError> {
    let client_names = clients
        .iter()
        .map(|c| client_dns_name(c))
        .collect::<Result<Vec<_>, _>>()?;
    fs::create_dir_all(out_dir).map_err(|source| NetError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let paths = CertPaths::new(out_dir);
    let issuer = load_or_create_ca(&paths)?;

    for &id in nodes {
        let (pem, key) = paths.node(id);
        let eku = [
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        issue(&issuer, &node_dns_name(id), &eku, &pem, &key)?;
    }
    for (name, dns) in clients.iter().zip(&client_names) {
        let (pem, key) = paths.client(name);
        issue(
            &issuer,
            dns,
            &[ExtendedKeyUsagePurpose::ClientAuth],
            &pem,
            &key,
        )?;
    }
    Ok(())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    params
}

fn set_validity(params: &mut CertificateParams) {
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Day precision is plenty; start a year back to tolerate clock skew.
    let year = 1970 + (now_s / 31_556_952) as i32;
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + VALIDITY_YEARS, 1, 1);
}

fn load_or_create_ca(paths: &CertPaths) -> Result<Issuer<'static, KeyPair>, NetError> {
    let (ca_pem, ca_key) = (paths.ca(), paths.ca_key());
    if ca_pem.exists() && ca_key.exists() {
        let key_pem = read_string(&ca_key)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| NetError::Pem {
            path: ca_key.clone(),
            reason: e.to_string(),
        })?;
        return Ok(Issuer::new(ca_params(), key));
    }
    let key = KeyPair::generate()?;
    let params = ca_params();
    let cert = params.self_signed(&key)?;
    write_file(&ca_key, key.serialize_pem().as_bytes(), true)?;
    write_file(&ca_pem, cert.pem().as_bytes(), false)?;
    Ok(Issuer::new(params, key))
}

fn issue(
    issuer: &Issuer<'static, KeyPair>,
    dns: &str,
    eku: &[ExtendedKeyUsagePurpose],
    pem_path: &Path,
    key_path: &Path,
) -> Result<(), NetError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, dns);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::DnsName(dns.try_into()?)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = eku.to_vec();
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    write_file(key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(pem_path, cert.pem().as_bytes(), false)?;
    Ok(())
}

fn read_string(path: &Path) -> Result<String, NetError> {
    fs::read_to_string(path).map_err(|source| NetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), NetError> {
    let io = |source| NetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = opts.open(path).map_err(io)?;
    // `mode` applies only on creation: tighten an existing key file too.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

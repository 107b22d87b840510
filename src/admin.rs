//! The admin port: `/metrics` (Prometheus text, `paxlog_` prefix), `/livez`
//! and `/readyz`. A small blocking HTTP server on its own thread, so a busy
//! event loop cannot make the node look dead to its supervisor.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::{mpsc, oneshot};

use crate::node::request::Command;

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls reuse it.
pub fn install_recorder() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0,
                ])
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .clone()
}

#[derive(Debug, thiserror::Error)]
#[error("cannot serve the admin port on {addr}: {message}")]
pub struct AdminError {
    addr: SocketAddr,
    message: String,
}

/// Serves the admin endpoints until the process exits. Returns the bound address.
pub(crate) fn serve(
    addr: SocketAddr,
    loop_tx: mpsc::Sender<Command>,
) -> Result<SocketAddr, AdminError> {
    let handle = install_recorder();
    let server = tiny_http::Server::http(addr).map_err(|e| AdminError {
        addr,
        message: e.to_string(),
    })?;
    let bound = server.server_addr().to_ip().ok_or_else(|| AdminError {
        addr,
        message: "not an IP listener".into(),
    })?;
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("paxlog-admin".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let (code, body) = match request.url() {
                    "/metrics" => (200, handle.as_ref().map(|h| h.render()).unwrap_or_default()),
                    "/livez" => (200, "ok\n".to_string()),
                    "/readyz" => readiness(&runtime, &loop_tx),
                    _ => (
                        404,
                        "not found: try /metrics, /livez or /readyz\n".to_string(),
                    ),
                };
                let response = tiny_http::Response::from_string(body).with_status_code(code);
                if let Err(error) = request.respond(response) {
                    tracing::debug!(%error, "admin response failed");
                }
            }
        })
        .map_err(|e| AdminError {
            addr,
            message: e.to_string(),
        })?;
    Ok(bound)
}

/// Ready when the event loop answers and the node knows a leader.
fn readiness(runtime: &tokio::runtime::Handle, loop_tx: &mpsc::Sender<Command>) -> (u16, String) {
    let (tx, rx) = oneshot::channel();
    if loop_tx
        .blocking_send(Command::Status { reply: tx })
        .is_err()
    {
        return (503, "node stopped\n".into());
    }
    // The timer must be created inside the runtime, hence the async block.
    match runtime.block_on(async { tokio::time::timeout(Duration::from_secs(2), rx).await }) {
        Ok(Ok(status)) => match status.leader {
            Some(leader) => (200, format!("ready: leader is node {leader}\n")),
            None => (503, "not ready: no leader known\n".into()),
        },
        Ok(Err(_)) => (503, "node stopped\n".into()),
        Err(_) => (503, "not ready: event loop did not answer in 2 s\n".into()),
    }
}

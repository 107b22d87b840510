//! Writers that pipeline appends until told to stop and record every
//! append's outcome, for [`super::history`] to check against the nodes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use paxlog::client::{Client, ClientError};

use super::history::{Op, Outcome, WriterHistory};
use super::runtime;

/// How one writer runs.
#[derive(Clone, Copy, Debug)]
pub struct WriterShape {
    /// Values per `append_all` call.
    pub batch: usize,
    /// Appends in flight at once.
    pub window: usize,
}

/// What a running writer shows while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Appends acknowledged so far.
    pub acked: AtomicUsize,
    /// Appends that failed so far, surely or not.
    pub failed: AtomicUsize,
    /// When the latest finished batch was started (its appends were invoked
    /// no earlier).
    pub last_batch_started: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn last_batch_started(&self) -> Option<Instant> {
        *self.last_batch_started.lock().expect("progress lock")
    }
}

/// A writer task on the shared runtime.
pub struct Writer {
    pub name: &'static str,
    pub progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<WriterHistory>,
}

impl Writer {
    /// Appends `{name}-{i}` for i = 0, 1, … through `client` until stopped.
    pub fn start(name: &'static str, client: Client, shape: WriterShape) -> Writer {
        let progress = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let task = runtime().spawn(write(name, client, shape, progress.clone(), stop.clone()));
        Writer {
            name,
            progress,
            stop,
            task,
        }
    }

    /// Asks the writer to stop after its current batch.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the writer and waits for its current batch to finish (bounded
    /// by the client's timeout).
    pub fn finish(self) -> WriterHistory {
        self.stop();
        super::block_on(self.task).expect("writer task")
    }
}

async fn write(
    name: &'static str,
    client: Client,
    shape: WriterShape,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> WriterHistory {
    let mut history = WriterHistory {
        name,
        ops: Vec::new(),
    };
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let values: Vec<Bytes> = (next..next + shape.batch)
            .map(|i| Bytes::from(format!("{name}-{i}")))
            .collect();
        next += shape.batch;
        let invoked = Instant::now();
        let results = client.append_all(values.clone(), shape.window).await;
        let completed = Instant::now();
        for (value, result) in values.into_iter().zip(results) {
            let outcome = match result {
                Ok(index) => {
                    progress.acked.fetch_add(1, Ordering::Relaxed);
                    Outcome::Ok(index)
                }
                Err(e) => {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                    outcome_of(&e)
                }
            };
            history.ops.push(Op {
                value,
                invoked,
                completed,
                outcome,
            });
        }
        *progress.last_batch_started.lock().expect("progress lock") = Some(invoked);
    }
    history
}

fn outcome_of(e: &ClientError) -> Outcome {
    if e.surely_not_appended() {
        Outcome::SurelyFailed(e.to_string())
    } else {
        Outcome::Indeterminate(e.to_string())
    }
}

/// Polls `done` until it holds (the condition is what is waited for; the
/// poll interval only bounds how late it is noticed), at most `max`.
pub fn wait_until(what: &str, max: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < max, "waited {max:?} for {what} in vain");
        std::thread::sleep(Duration::from_millis(10));
    }
}

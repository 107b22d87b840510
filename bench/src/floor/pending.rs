//! The leader's queue of client requests that arrived since the last batch
//! left: bounded in count and bytes (a full queue blocks the connection
//! threads, so it pushes back on clients), drained in bounded batches.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, PoisonError};

/// Bounds on one batch, and (doubled) on the queue that feeds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    pub count_max: usize,
    /// Sum of payload bytes.
    pub bytes_max: usize,
}

pub trait HasBytes {
    fn bytes(&self) -> usize;
}

/// Moves the oldest items out of `queue` into a batch of at most
/// `limits.count_max` items and `limits.bytes_max` bytes — but always at
/// least one item, so an item larger than `bytes_max` cannot stall the log
/// (callers keep single payloads under `bytes_max` anyway).
pub fn take_batch<T: HasBytes>(queue: &mut VecDeque<T>, limits: BatchLimits) -> Vec<T> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(next) = queue.front() {
        let fits = batch.len() < limits.count_max && bytes + next.bytes() <= limits.bytes_max;
        if !batch.is_empty() && !fits {
            break;
        }
        bytes += next.bytes();
        batch.extend(queue.pop_front());
    }
    batch
}

struct State<T> {
    queue: VecDeque<T>,
    /// Invariant: the sum of `bytes()` over `queue`.
    bytes: usize,
}

pub struct Pending<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    batch: BatchLimits,
    /// Invariant: at least `batch`, so a full queue always holds a whole batch.
    queue: BatchLimits,
}

impl<T: HasBytes> Pending<T> {
    pub fn new(batch: BatchLimits) -> Self {
        assert!(batch.count_max >= 1, "a batch must hold at least one item");
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            batch,
            // Room for the batch being gathered plus one more, so clients
            // rarely wait on the queue rather than on the log.
            queue: BatchLimits {
                count_max: batch.count_max.saturating_mul(2),
                bytes_max: batch.bytes_max.saturating_mul(2),
            },
        }
    }

    /// Enqueues `item`, waiting while the queue is full. An empty queue takes
    /// any item, so no single item can block forever.
    pub fn push(&self, item: T) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !s.queue.is_empty()
            && (s.queue.len() >= self.queue.count_max
                || s.bytes + item.bytes() > self.queue.bytes_max)
        {
            s = self
                .not_full
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
        s.bytes += item.bytes();
        s.queue.push_back(item);
        drop(s);
        self.not_empty.notify_one();
    }

    /// Waits for at least one item, then takes a bounded batch.
    pub fn take(&self) -> Vec<T> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while s.queue.is_empty() {
            s = self
                .not_empty
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let batch = take_batch(&mut s.queue, self.batch);
        let taken: usize = batch.iter().map(HasBytes::bytes).sum();
        assert!(
            taken <= s.bytes,
            "pending byte count out of step with the queue"
        );
        s.bytes -= taken;
        drop(s);
        self.not_full.notify_all();
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    impl HasBytes for usize {
        fn bytes(&self) -> usize {
            *self
        }
    }

    const LIMITS: BatchLimits = BatchLimits {
        count_max: 3,
        bytes_max: 10,
    };

    #[test]
    fn batch_stops_at_the_count_bound() {
        let mut q: VecDeque<usize> = [1, 1, 1, 1, 1].into();
        assert_eq!(take_batch(&mut q, LIMITS), vec![1, 1, 1]);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn batch_stops_at_the_byte_bound() {
        let mut q: VecDeque<usize> = [4, 6, 1].into();
        assert_eq!(take_batch(&mut q, LIMITS), vec![4, 6]);
        assert_eq!(take_batch(&mut q, LIMITS), vec![1]);
        assert!(take_batch(&mut q, LIMITS).is_empty());
    }

    #[test]
    fn an_oversized_item_leaves_in_a_batch_of_its_own() {
        let mut q: VecDeque<usize> = [11, 1].into();
        assert_eq!(take_batch(&mut q, LIMITS), vec![11]);
        assert_eq!(take_batch(&mut q, LIMITS), vec![1]);
    }

    #[test]
    fn full_queue_blocks_push_until_a_batch_is_taken() {
        let pending = Arc::new(Pending::new(LIMITS));
        for _ in 0..6 {
            pending.push(1usize);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let pusher = {
            let pending = Arc::clone(&pending);
            std::thread::spawn(move || {
                pending.push(1usize);
                tx.send(()).expect("test receiver alive");
            })
        };
        // The 7th push must still be waiting: the queue holds 2 × count_max.
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_millis(100)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        assert_eq!(pending.take(), vec![1, 1, 1]);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("push proceeds once a batch left");
        pusher.join().expect("pusher thread");
        assert_eq!(pending.take().len(), 3);
        assert_eq!(pending.take().len(), 1);
    }
}

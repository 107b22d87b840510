//! The `(client_id, seq)` table, derived only from the chosen log so every
//! node computes the same answers from the same prefix.

use std::collections::{BTreeMap, BTreeSet};

use paxlog_storage::Index;

#[derive(Debug, Default)]
struct ClientWindow {
    /// seq → the first index it was chosen at.
    seqs: BTreeMap<u64, Index>,
    last_index: Index,
}

/// Bounded in clients (least recently chosen evicted first) and in seqs per
/// client (lowest evicted first). An evicted pair is no longer deduplicated.
#[derive(Debug)]
pub struct DedupTable {
    clients: BTreeMap<u64, ClientWindow>,
    /// `(last_index, client_id)` for eviction order.
    recency: BTreeSet<(Index, u64)>,
    clients_max: usize,
    window_per_client: usize,
}

impl DedupTable {
    pub fn new(clients_max: usize, window_per_client: usize) -> Self {
        DedupTable {
            clients: BTreeMap::new(),
            recency: BTreeSet::new(),
            clients_max: clients_max.max(1),
            window_per_client: window_per_client.max(1),
        }
    }

    pub fn lookup(&self, client_id: u64, seq: u64) -> Option<Index> {
        self.clients.get(&client_id)?.seqs.get(&seq).copied()
    }

    /// Records an append chosen at `index`; returns the first index if the
    /// pair was already chosen (then nothing changes).
    pub fn record(&mut self, client_id: u64, seq: u64, index: Index) -> Option<Index> {
        if let Some(first) = self.lookup(client_id, seq) {
            return Some(first);
        }
        let window = self.clients.entry(client_id).or_default();
        self.recency.remove(&(window.last_index, client_id));
        window.last_index = index;
        window.seqs.insert(seq, index);
        while window.seqs.len() > self.window_per_client {
            window.seqs.pop_first();
        }
        self.recency.insert((index, client_id));
        while self.clients.len() > self.clients_max {
            let Some((_, evict)) = self.recency.pop_first() else {
                break;
            };
            self.clients.remove(&evict);
        }
        assert!(self.clients.len() <= self.clients_max);
        None
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_returns_first_index() {
        let mut t = DedupTable::new(4, 4);
        assert_eq!(t.record(1, 7, 10), None);
        assert_eq!(t.record(1, 7, 12), Some(10));
        assert_eq!(t.lookup(1, 7), Some(10));
    }

    #[test]
    fn bounded_in_clients_and_seqs() {
        let mut t = DedupTable::new(2, 2);
        for seq in 0..5 {
            t.record(1, seq, seq + 1);
        }
        assert_eq!(t.lookup(1, 0), None);
        assert_eq!(t.lookup(1, 4), Some(5));
        t.record(2, 0, 10);
        t.record(3, 0, 11);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(1, 4), None, "least recent client evicted");
    }
}

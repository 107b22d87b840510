//! Reads: chosen entries for clients and learners, accepted runs for
//! promises and catch-up. The mirror first, the store below it.

use bytes::Bytes;
use paxlog_storage::{Accepted, Index, ReadLimit, Store};

use super::replica::Replica;
use super::{Command, CoreError, Limits};

/// User appends read for clients, and where the next read starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserEntries {
    pub entries: Vec<(Index, Bytes)>,
    /// Past every index this run covered (hidden ones included).
    pub next: Index,
    pub emitted_index: Index,
}

/// A bounded run of accepted entries and where the next run would start.
pub(crate) type EntryRun = (Vec<(Index, Accepted)>, Option<Index>);

impl<S: Store> Replica<S> {
    /// The user appends in `[from, to]`, never beyond the emitted index:
    /// no-ops, registrations, trims and hidden appends are left out but covered by `next`.
    pub fn read_user_entries(
        &self,
        from: Index,
        to: Index,
        limit: ReadLimit,
    ) -> Result<UserEntries, CoreError> {
        let from = from.max(1);
        let to = to.min(self.learner.emitted_index);
        let mut run = UserEntries {
            entries: Vec::new(),
            next: from,
            emitted_index: self.learner.emitted_index,
        };
        if from > to {
            return Ok(run);
        }
        for (index, command) in self.read_chosen(from, limit)? {
            if index > to {
                break;
            }
            run.next = index + 1;
            if self.learner.hidden.contains_key(&index) {
                continue;
            }
            if let Command::Append { payload, .. } = command {
                run.entries.push((index, payload));
            }
        }
        Ok(run)
    }

    /// Chosen entries from `from` (never beyond the chosen index).
    pub fn read_chosen(
        &self,
        from: Index,
        limit: ReadLimit,
    ) -> Result<Vec<(Index, Command)>, CoreError> {
        if from <= self.learner.trim_index {
            return Err(CoreError::Trimmed {
                index: from,
                first: self.learner.trim_index + 1,
            });
        }
        let (entries, _) = self.read_entries(from, self.learner.chosen_index, limit)?;
        // Every index up to the chosen one is held: a hole is a bug or lost
        // data, and a reader that skipped it would miss appends silently.
        let hole = (from..)
            .zip(&entries)
            .find(|(expected, (i, _))| i != expected)
            .map(|(expected, _)| expected)
            .or((entries.is_empty() && from <= self.learner.chosen_index).then_some(from));
        if let Some(expected) = hole {
            tracing::error!(
                node = self.config.node_id,
                index = expected,
                "a chosen index is missing from the log"
            );
            return Err(CoreError::Missing { index: expected });
        }
        entries
            .into_iter()
            .map(|(i, a)| {
                Command::decode(&a.value)
                    .map(|c| (i, c))
                    .map_err(|e| CoreError::Decode {
                        index: i,
                        reason: e.to_string(),
                    })
            })
            .collect()
    }

    pub(crate) fn entry(&self, index: Index) -> Result<Option<Accepted>, CoreError> {
        if let Some(a) = self.acceptor.entries.get(&index) {
            return Ok(Some(a.clone()));
        }
        if index <= self.learner.trim_index || index > self.acceptor.last_index {
            return Ok(None);
        }
        Ok(self.store.get(index)?)
    }

    pub(crate) fn value_at(&self, index: Index) -> Option<Bytes> {
        self.entry(index).ok().flatten().map(|a| a.value)
    }

    pub(crate) fn command_at(&self, index: Index) -> Result<Command, CoreError> {
        let a = self.entry(index)?.ok_or(CoreError::NotChosen {
            index,
            chosen_index: self.learner.chosen_index,
        })?;
        Command::decode(&a.value).map_err(|e| CoreError::Decode {
            index,
            reason: e.to_string(),
        })
    }

    /// Accepted entries in `[from, to]`, bounded; also the next index to read
    /// when the bound cut the range short. `limit.bytes_max` bounds the
    /// run's *encoded* size ([`Limits::entry_bytes`] per entry): the run
    /// stops before the entry that would pass it, and holds at least one.
    pub(crate) fn read_entries(
        &self,
        from: Index,
        to: Index,
        limit: ReadLimit,
    ) -> Result<EntryRun, CoreError> {
        let from = from.max(self.learner.trim_index + 1);
        let to = to.min(self.acceptor.last_index);
        let mut out: Vec<(Index, Accepted)> = Vec::new();
        let mut bytes = 0usize;
        let fits = |out: &Vec<(Index, Accepted)>, bytes: usize, a: &Accepted| {
            out.is_empty()
                || (out.len() < limit.entries_max
                    && bytes.saturating_add(Limits::entry_bytes(a.value.len())) <= limit.bytes_max)
        };
        // The store is authoritative below the first mirrored index.
        let mirror_from = self
            .acceptor
            .entries
            .keys()
            .next()
            .copied()
            .unwrap_or(Index::MAX);
        if from < mirror_from && from <= to {
            let store_to = to.min(mirror_from.saturating_sub(1));
            // The store bounds value bytes only, so it returns at least as
            // much as the encoded bound lets through: cut the rest here.
            let stored = self.store.range(from, store_to, limit)?;
            let mut stored = stored.into_iter();
            for (i, a) in stored.by_ref() {
                if !fits(&out, bytes, &a) {
                    return Ok((out, Some(i)));
                }
                bytes = bytes.saturating_add(Limits::entry_bytes(a.value.len()));
                out.push((i, a));
            }
            if let Some(&(last, _)) = out.last() {
                // The store may have stopped at its bound: look whether more is left.
                let probe = ReadLimit {
                    entries_max: 1,
                    bytes_max: usize::MAX,
                };
                if last < store_to && !self.store.range(last + 1, store_to, probe)?.is_empty() {
                    return Ok((out, Some(last + 1)));
                }
            }
        }
        for (&i, a) in self.acceptor.entries.range(from..=to.max(from)) {
            if i > to {
                break;
            }
            if !fits(&out, bytes, a) {
                return Ok((out, Some(i)));
            }
            bytes = bytes.saturating_add(Limits::entry_bytes(a.value.len()));
            out.push((i, a.clone()));
        }
        Ok((out, None))
    }
}

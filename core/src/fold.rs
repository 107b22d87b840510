//! What one chosen command does to paxlog's own state, the same on every
//! node and at every replay: the session table and the configuration.

use paxlog_storage::Index;

use super::membership::{ChangeError, Membership};
use super::sessions::{Fold, SessionTable};
use super::Command;

/// Folds one chosen command into `table`; `None` for commands that are not
/// appends.
pub(crate) fn fold(table: &mut SessionTable, index: Index, command: &Command) -> Option<Fold> {
    match *command {
        Command::Append {
            client_id,
            seq,
            floor,
            ..
        } => Some(table.append(client_id, seq, floor, index)),
        Command::Register { supersedes } => {
            table.register(index, supersedes);
            None
        }
        Command::Noop
        | Command::Trim { .. }
        | Command::Reconfigure { .. }
        | Command::Snapshot { .. }
        | Command::Hold { .. }
        | Command::Release { .. } => None,
    }
}

/// Folds one chosen command into the configuration; `None` for commands
/// that are not changes, else whether the change took effect.
pub(crate) fn fold_membership(
    membership: &mut Membership,
    command: &Command,
) -> Option<Result<(), ChangeError>> {
    let Command::Reconfigure {
        expect_epoch, next, ..
    } = command
    else {
        return None;
    };
    if *expect_epoch != membership.epoch {
        return Some(Err(ChangeError::Stale {
            expected: *expect_epoch,
            current: membership.epoch,
        }));
    }
    // The leader checked the step against this very epoch's configuration;
    // a malformed one (a faulty peer's) is refused the same on every node.
    if next.epoch != expect_epoch + 1 || next.check().is_err() {
        return Some(Err(ChangeError::Malformed));
    }
    *membership = next.clone();
    Some(Ok(()))
}

pub(crate) fn client_of(command: &Command) -> u64 {
    match command {
        Command::Append { client_id, .. } => *client_id,
        _ => 0,
    }
}

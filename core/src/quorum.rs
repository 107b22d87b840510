//! Quorum and chosen-index math, kept pure so proptest can check it
//! against a naive oracle.

use paxlog_storage::Index;

/// Votes needed among `members` so that any two quorums intersect.
pub fn quorum_size(members: usize) -> usize {
    members / 2 + 1
}

/// The new chosen index: starting after `chosen_index`, the longest run of
/// consecutive indexes for which `is_chosen` holds.
pub fn chosen_prefix(chosen_index: Index, mut is_chosen: impl FnMut(Index) -> bool) -> Index {
    let mut i = chosen_index;
    while is_chosen(i + 1) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The highest index acknowledged by at least `quorum` of the given
    /// per-acceptor contiguous acknowledgements (`match_index`es).
    fn quorum_match_index(match_indexes: &[Index], quorum: usize) -> Index {
        if quorum == 0 || match_indexes.len() < quorum {
            return 0;
        }
        let mut sorted = match_indexes.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted[quorum - 1]
    }

    fn naive_quorum_match(m: &[Index], q: usize) -> Index {
        // The largest i such that at least q acceptors have match >= i.
        let max = m.iter().copied().max().unwrap_or(0);
        (0..=max)
            .rev()
            .find(|&i| q > 0 && m.iter().filter(|&&x| x >= i).count() >= q)
            .unwrap_or(0)
    }

    proptest! {
        #[test]
        fn quorums_intersect(n in 1usize..9) {
            let q = quorum_size(n);
            prop_assert!(2 * q > n);
            prop_assert!(q <= n);
        }

        #[test]
        fn quorum_match_matches_oracle(m in proptest::collection::vec(0u64..50, 0..7), q in 0usize..8) {
            prop_assert_eq!(quorum_match_index(&m, q), naive_quorum_match(&m, q));
        }

        #[test]
        fn chosen_prefix_matches_oracle(chosen in 0u64..20, set in proptest::collection::btree_set(0u64..60, 0..40)) {
            let got = chosen_prefix(chosen, |i| set.contains(&i));
            let mut want = chosen;
            for i in chosen + 1.. { if set.contains(&i) { want = i } else { break } }
            prop_assert_eq!(got, want);
            prop_assert!(got >= chosen);
        }
    }
}

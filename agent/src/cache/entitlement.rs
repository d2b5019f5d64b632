//! Which synced entries a caller is entitled to: those whose selectors are all among the
//! caller's (docs/architecture.md, "The agent's SVID cache"), found through an index instead
//! of a scan of every entry.
//!
//! Each entry is filed under one of its selectors, the one fewest entries share, so a
//! lookup examines only the entries filed under one of the caller's own selectors: an entry
//! none of whose selectors the caller has cannot match, and one that matches has all of
//! them, its filing selector included. The answer is in the entries' order, as a scan's.
//! The index is built once per Sync state (positions into that state's entries) and never
//! changed.

use std::collections::{BTreeSet, HashMap};

use sworn_identity::selector::Selector;

/// The entries of one Sync state, by filing selector.
#[derive(Debug, Default)]
pub struct EntryIndex {
    filed: HashMap<Selector, Vec<usize>>,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub struct Lookup {
    /// Positions of the matching entries, ascending.
    pub positions: Vec<usize>,
    /// How many entries it examined.
    pub examined: usize,
}

impl EntryIndex {
    /// Files each entry (its selectors, in order) under its rarest selector. An entry
    /// without selectors is not filed: it matches nobody (the server never sends one).
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a [Selector]> + Clone) -> Self {
        let mut shared: HashMap<&Selector, usize> = HashMap::new();
        for selectors in entries.clone() {
            for s in selectors {
                *shared.entry(s).or_default() += 1;
            }
        }
        let mut filed: HashMap<Selector, Vec<usize>> = HashMap::new();
        for (position, selectors) in entries.into_iter().enumerate() {
            let rarest = selectors
                .iter()
                .min_by_key(|s| shared.get(s).copied().unwrap_or_default());
            if let Some(s) = rarest {
                filed.entry(s.clone()).or_default().push(position);
            }
        }
        EntryIndex { filed }
    }

    /// The entries whose selectors (`selectors_of` a position) are all in `caller`.
    pub fn matching<'a>(
        &self,
        caller: &BTreeSet<Selector>,
        selectors_of: impl Fn(usize) -> &'a [Selector],
    ) -> Lookup {
        let mut examined = 0;
        let mut positions: Vec<usize> = caller
            .iter()
            .filter_map(|s| self.filed.get(s))
            .flatten()
            .copied()
            .filter(|&p| {
                examined += 1;
                selectors_of(p).iter().all(|s| caller.contains(s))
            })
            .collect();
        // Each entry is filed once, so no position repeats.
        positions.sort_unstable();
        Lookup {
            positions,
            examined,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn uid(n: u32) -> Selector {
        Selector::unix_uid(n)
    }

    fn gid(n: u32) -> Selector {
        Selector::unix_gid(n)
    }

    /// What a scan of every entry finds.
    fn scan(entries: &[Vec<Selector>], caller: &BTreeSet<Selector>) -> Vec<usize> {
        (0..entries.len())
            .filter(|&p| !entries[p].is_empty() && entries[p].iter().all(|s| caller.contains(s)))
            .collect()
    }

    fn lookup(entries: &[Vec<Selector>], caller: &BTreeSet<Selector>) -> Lookup {
        EntryIndex::new(entries.iter().map(Vec::as_slice)).matching(caller, |p| &entries[p])
    }

    #[test]
    fn a_lookup_among_ten_thousand_entries_examines_a_handful() {
        // 10 000 entries over 10 000 uids: most by uid alone, every tenth by uid and a group
        // that a thousand entries share, and one entry for group 7 alone.
        let mut entries: Vec<Vec<Selector>> = (0..10_000)
            .map(|n| match n % 10 {
                0 => vec![gid(7), uid(n)],
                _ => vec![uid(n)],
            })
            .collect();
        entries.push(vec![gid(7)]);
        let caller = BTreeSet::from([uid(4_240), gid(7), gid(4_240)]);
        let found = lookup(&entries, &caller);
        assert_eq!(found.positions, scan(&entries, &caller));
        assert_eq!(found.positions, [4_240, 10_000]);
        assert!(found.examined <= 3, "examined {}", found.examined);
        let stranger = BTreeSet::from([uid(20_000), gid(20_000)]);
        assert_eq!(lookup(&entries, &stranger).examined, 0);
    }

    fn selector() -> impl Strategy<Value = Selector> {
        prop_oneof![(0u32..6).prop_map(uid), (0u32..6).prop_map(gid)]
    }

    proptest! {
        #[test]
        fn the_index_finds_what_a_scan_finds(
            entries in prop::collection::vec(prop::collection::vec(selector(), 0..4), 0..40),
            caller in prop::collection::btree_set(selector(), 0..6),
        ) {
            prop_assert_eq!(lookup(&entries, &caller).positions, scan(&entries, &caller));
        }
    }
}

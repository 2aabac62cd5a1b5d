//! A node's child list: names sorted, each with the slot the child is stored
//! in (`store.rs`; the slots let a snapshot walk a captured tree from the
//! root without the path index).
//!
//! When a write changes a node that a snapshot capture still holds, the node
//! is copied (`Arc::make_mut`), and with it this list, under the server's
//! lock. A `BTreeMap` is the fastest list for the usual directory, and
//! copying it whole is cheap at that size; for a big directory (a queue of
//! sequential nodes) it is not (~60 ms for a million children). So a list
//! past [`LARGE_FROM`] children becomes sorted runs of at most
//! [`RUN_LEN_MAX`] names behind `Arc`s: copying it copies one pointer per run,
//! and a write then copies only the run it changes. Runs cost more per insert
//! than the map (measured ~20-30 % more CPU with them everywhere), hence only
//! for big lists; it goes back to a map below [`SMALL_BELOW`].

use std::collections::{btree_map, BTreeMap};
use std::sync::Arc;

/// A list with more children than this is kept as runs.
const LARGE_FROM: usize = 4096;
/// A list of runs with fewer children than this goes back to a map (well
/// below [`LARGE_FROM`], so a list near the bound does not flip back and
/// forth).
const SMALL_BELOW: usize = 1024;
/// Longest run: an insert shifts up to this many entries; the first change
/// to a run after a capture copies it.
const RUN_LEN_MAX: usize = 512;

type Run = Vec<(Name, u32)>;

/// A child's name, held inline up to 24 bytes (sequential nodes' names and
/// most others fit): no allocation of its own, and a lookup compares names
/// in the map's node instead of following a pointer per comparison.
type Name = compact_str::CompactString;

/// Sorted child names → slots: one pointer in the node, null for a leaf
/// (most nodes), so that an `Arc<Node>` fits jemalloc's 112-byte class
/// rather than the 128-byte one (16 MB less with a million znodes).
#[derive(Debug, Clone, Default)]
pub(crate) struct Children(Option<Box<List>>);

#[derive(Debug, Clone)]
enum List {
    Small(BTreeMap<Name, u32>),
    Large(Runs),
}

impl PartialEq for Children {
    /// The same names: slots are only where the children happen to live, and
    /// the representation depends on the list's history.
    fn eq(&self, other: &Children) -> bool {
        self.len() == other.len() && self.names().eq(other.names())
    }
}

impl Children {
    /// Adds a child; false if the name is already there (nothing changes).
    pub(crate) fn insert(&mut self, name: &str, slot: u32) -> bool {
        let Some(list) = &mut self.0 else {
            self.0 = Some(Box::new(List::Small(BTreeMap::from([(name.into(), slot)]))));
            return true;
        };
        match &mut **list {
            List::Small(map) => {
                let btree_map::Entry::Vacant(entry) = map.entry(name.into()) else {
                    return false;
                };
                entry.insert(slot);
                if map.len() > LARGE_FROM {
                    let runs = Runs::from_sorted(std::mem::take(map));
                    **list = List::Large(runs);
                }
                true
            }
            List::Large(runs) => runs.insert(name, slot),
        }
    }

    /// Removes a child, returning its slot.
    pub(crate) fn remove(&mut self, name: &str) -> Option<u32> {
        let list = self.0.as_mut()?;
        match &mut **list {
            List::Small(map) => {
                let slot = map.remove(name)?;
                if map.is_empty() {
                    self.0 = None;
                }
                Some(slot)
            }
            List::Large(runs) => {
                let slot = runs.remove(name)?;
                if runs.len < SMALL_BELOW {
                    let map = runs.to_map();
                    **list = List::Small(map);
                }
                Some(slot)
            }
        }
    }

    /// The slot of the child called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        match self.0.as_deref()? {
            List::Small(map) => map.get(name).copied(),
            List::Large(runs) => {
                let (r, Ok(i)) = runs.find(name)? else {
                    return None;
                };
                runs.runs.get(r)?.get(i).map(|(_, slot)| *slot)
            }
        }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(List::Small(map)) => map.len(),
            Some(List::Large(runs)) => runs.len,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Names, sorted.
    pub(crate) fn names(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.iter().map(|(name, _)| name)
    }

    /// (name, slot), sorted by name.
    pub(crate) fn iter(&self) -> Iter<'_> {
        match self.0.as_deref() {
            None => Iter::Large {
                runs: [].iter(),
                front: [].iter(),
                back: [].iter(),
            },
            Some(List::Small(map)) => Iter::Small(map.iter()),
            Some(List::Large(runs)) => Iter::Large {
                runs: runs.runs.iter(),
                front: [].iter(),
                back: [].iter(),
            },
        }
    }

    /// The list's representation, for tests: "empty", "small" or "large".
    #[cfg(test)]
    fn shape(&self) -> &'static str {
        match self.0.as_deref() {
            None => "empty",
            Some(List::Small(_)) => "small",
            Some(List::Large(_)) => "large",
        }
    }
}

/// Non-empty runs, each sorted by name; every name of a run sorts before
/// every name of the next run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs {
    runs: Vec<Arc<Run>>,
    len: usize,
}

impl Runs {
    fn from_sorted(map: BTreeMap<Name, u32>) -> Runs {
        let len = map.len();
        let mut runs = Vec::with_capacity(len / RUN_LEN_MAX + 1);
        let mut run = Vec::with_capacity(RUN_LEN_MAX);
        for entry in map {
            run.push(entry);
            if run.len() == RUN_LEN_MAX {
                runs.push(Arc::new(std::mem::replace(
                    &mut run,
                    Vec::with_capacity(RUN_LEN_MAX),
                )));
            }
        }
        if !run.is_empty() {
            runs.push(Arc::new(run));
        }
        Runs { runs, len }
    }

    fn to_map(&self) -> BTreeMap<Name, u32> {
        self.runs
            .iter()
            .flat_map(|run| run.iter().cloned())
            .collect()
    }

    /// The run that holds `name` or would (the last one whose first name is
    /// not after it), and where in it.
    fn find(&self, name: &str) -> Option<(usize, Result<usize, usize>)> {
        let r = self
            .runs
            .partition_point(|run| run.first().is_some_and(|(first, _)| &**first <= name))
            .saturating_sub(1);
        let run = self.runs.get(r)?;
        Some((r, run.binary_search_by(|(n, _)| (**n).cmp(name))))
    }

    fn insert(&mut self, name: &str, slot: u32) -> bool {
        let Some((r, found)) = self.find(name) else {
            self.runs.push(Arc::new(vec![(name.into(), slot)]));
            self.len = 1;
            return true;
        };
        let Err(pos) = found else {
            return false;
        };
        let run_len = self.runs[r].len();
        if run_len >= RUN_LEN_MAX && r + 1 == self.runs.len() && pos == run_len {
            // Appending past the last name (sequential nodes): start a new run
            // rather than leave two half-empty ones.
            self.runs.push(Arc::new(vec![(name.into(), slot)]));
        } else {
            let run = Arc::make_mut(&mut self.runs[r]);
            run.insert(pos, (name.into(), slot));
            if run.len() > RUN_LEN_MAX {
                let tail = run.split_off(run.len() / 2);
                run.shrink_to_fit();
                self.runs.insert(r + 1, Arc::new(tail));
            }
        }
        self.len += 1;
        true
    }

    fn remove(&mut self, name: &str) -> Option<u32> {
        let (r, Ok(pos)) = self.find(name)? else {
            return None;
        };
        let run = Arc::make_mut(&mut self.runs[r]);
        let (_, slot) = run.remove(pos);
        if run.is_empty() {
            self.runs.remove(r);
        }
        self.len -= 1;
        Some(slot)
    }
}

/// Iterator over a child list, in name order from either end.
pub(crate) enum Iter<'a> {
    Small(btree_map::Iter<'a, Name, u32>),
    Large {
        runs: std::slice::Iter<'a, Arc<Run>>,
        front: std::slice::Iter<'a, (Name, u32)>,
        back: std::slice::Iter<'a, (Name, u32)>,
    },
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, u32);

    fn next(&mut self) -> Option<(&'a str, u32)> {
        match self {
            Iter::Small(iter) => iter.next().map(|(name, slot)| (&**name, *slot)),
            Iter::Large { runs, front, back } => loop {
                if let Some((name, slot)) = front.next() {
                    return Some((name, *slot));
                }
                match runs.next() {
                    Some(run) => *front = run.iter(),
                    None => return back.next().map(|(name, slot)| (&**name, *slot)),
                }
            },
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(iter) => iter.next_back().map(|(name, slot)| (&**name, *slot)),
            Iter::Large { runs, front, back } => loop {
                if let Some((name, slot)) = back.next_back() {
                    return Some((name, *slot));
                }
                match runs.next_back() {
                    Some(run) => *back = run.iter(),
                    None => return front.next_back().map(|(name, slot)| (&**name, *slot)),
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check_against(children: &Children, model: &BTreeMap<String, u32>) {
        assert_eq!(children.len(), model.len());
        assert_eq!(children.is_empty(), model.is_empty());
        let listed: Vec<(&str, u32)> = children.iter().collect();
        let expected: Vec<(&str, u32)> = model.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        assert_eq!(listed, expected);
        let reversed: Vec<&str> = children.names().rev().collect();
        let expected: Vec<&str> = model.keys().rev().map(String::as_str).collect();
        assert_eq!(reversed, expected);
        // From both ends at once, meeting in the middle.
        let mut iter = children.iter();
        let mut both = Vec::new();
        while let (Some(a), b) = (iter.next(), iter.next_back()) {
            both.push(a.0);
            if let Some(b) = b {
                both.push(b.0);
            }
        }
        assert_eq!(both.len(), model.len());
        if let Some(List::Large(runs)) = children.0.as_deref() {
            assert!(runs
                .runs
                .iter()
                .all(|run| !run.is_empty() && run.len() <= RUN_LEN_MAX));
        }
    }

    #[test]
    fn a_big_list_becomes_runs_and_a_small_one_a_map_again() {
        let mut children = Children::default();
        let mut model = BTreeMap::new();
        for i in 0..(LARGE_FROM as u32 * 3) {
            let name = format!("s-{i:010}");
            assert!(children.insert(&name, i));
            model.insert(name, i);
        }
        assert_eq!(children.shape(), "large");
        check_against(&children, &model);
        assert!(!children.insert("s-0000000005", 9), "a name is there once");
        for i in 0..(LARGE_FROM as u32 * 3 - SMALL_BELOW as u32 + 1) {
            let name = format!("s-{i:010}");
            assert_eq!(children.remove(&name), Some(i));
            model.remove(&name);
        }
        assert_eq!(children.shape(), "small");
        check_against(&children, &model);
        let names: Vec<String> = model.keys().cloned().collect();
        for name in names {
            assert!(children.remove(&name).is_some());
        }
        assert_eq!(children.shape(), "empty");
        assert_eq!(children.iter().count(), 0);
    }

    #[test]
    fn a_leaf_pays_eight_bytes_for_its_empty_child_list() {
        assert_eq!(std::mem::size_of::<Children>(), 8);
    }

    #[test]
    fn a_copy_of_a_big_list_is_not_changed_by_writes_to_the_original() {
        let mut children = Children::default();
        for i in 0..(LARGE_FROM as u32 * 2) {
            children.insert(&format!("c{i}"), i);
        }
        let copy = children.clone();
        children.insert("new", 1);
        children.remove("c7");
        assert!(copy.contains("c7") && !copy.contains("new"));
        assert_eq!(copy.len(), LARGE_FROM * 2);
        assert_eq!(children.len(), LARGE_FROM * 2);
        assert_ne!(copy, children);
    }

    proptest! {
        #[test]
        fn behaves_like_a_sorted_map(
            ops in proptest::collection::vec((0u8..3, 0u16..12_000), 0..12_000)
        ) {
            let mut children = Children::default();
            let mut model = BTreeMap::new();
            for (op, key) in ops {
                let name = format!("n{key}");
                if op < 2 {
                    let added = children.insert(&name, u32::from(key));
                    prop_assert_eq!(added, !model.contains_key(&name));
                    model.entry(name.clone()).or_insert(u32::from(key));
                } else {
                    prop_assert_eq!(children.remove(&name), model.remove(&name));
                }
                prop_assert_eq!(children.contains(&name), model.contains_key(&name));
            }
            check_against(&children, &model);
        }
    }
}

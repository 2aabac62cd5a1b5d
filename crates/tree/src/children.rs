//! A node's child list: names sorted, each with the slot the child is stored
//! in (`store.rs`; the slots let a snapshot walk a captured tree from the
//! root without the path index).
//!
//! When a write changes a node that a snapshot capture still holds, the node
//! is copied (`Arc::make_mut`), and with it this list, under the server's
//! lock. The usual directory is a [`Packed`] list: the names in one string,
//! sorted, and one (end, slot) pair per name, ~8 bytes per child beside its
//! name (a `BTreeMap` of inline names took ~50, a fifth of a znode's memory
//! with a million of them); copying it is three `memcpy`s. For a big
//! directory (a queue of sequential nodes) neither an insert's shift nor a
//! copy is cheap (~60 ms for a million children), so a list past
//! [`LARGE_FROM`] children becomes sorted runs of at most [`RUN_LEN_MAX`]
//! names behind `Arc`s: copying it copies one pointer per run, and a write
//! then copies only the run it changes. It goes back to a packed list below
//! [`SMALL_BELOW`].

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
/// A packed list whose names take more bytes than this becomes runs too, so
/// that an insert never shifts more than this and the `u32` ends never
/// overflow (a name may be as long as a request, up to 1 MiB by default).
const PACKED_NAME_BYTES_MAX: usize = 1 << 20;

type Run = Vec<(Name, u32)>;

/// A child's name in a run, held inline up to 24 bytes (sequential nodes'
/// names and most others fit): no allocation of its own, and a lookup
/// compares names in the run instead of following a pointer per comparison.
type Name = compact_str::CompactString;

/// Sorted child names → slots, and the two stats only children change
/// (pzxid and the create counter): one pointer in the node, null for a node
/// that never had a child (most nodes). Keeping pzxid and cversion here
/// rather than in every node is what makes an `Arc<Node>` 96 bytes, one
/// jemalloc class below 112 (16 MB less with a million znodes).
#[derive(Debug, Clone, Default)]
pub(crate) struct Children(Option<Box<Dir>>);

/// What a node that has (or had) children keeps about them.
#[derive(Debug, Clone)]
struct Dir {
    list: List,
    /// The node's pzxid, or [`PZXID_UNSET`] while it is still its czxid
    /// (which this list does not know).
    pzxid: i64,
    /// ZooKeeper's internal create counter: +1 per child created.
    cversion: i32,
}

/// A `Dir` whose pzxid has not been set: the node's czxid stands.
const PZXID_UNSET: i64 = i64::MIN;

impl Dir {
    fn new() -> Box<Dir> {
        Box::new(Dir {
            list: List::Small(Packed::default()),
            pzxid: PZXID_UNSET,
            cversion: 0,
        })
    }
}

#[derive(Debug, Clone)]
enum List {
    Small(Packed),
    Large(Runs),
}

impl PartialEq for Children {
    /// The same names, pzxid and counter: slots are only where the children
    /// happen to live, and the representation depends on the list's history.
    fn eq(&self, other: &Children) -> bool {
        self.len() == other.len()
            && self.pzxid() == other.pzxid()
            && self.cversion() == other.cversion()
            && self.names().eq(other.names())
    }
}

impl Children {
    /// Adds a child; false if the name is already there (nothing changes).
    pub(crate) fn insert(&mut self, name: &str, slot: u32) -> bool {
        let list = &mut self.0.get_or_insert_with(Dir::new).list;
        match list {
            List::Small(packed) => {
                if !packed.insert(name, slot) {
                    return false;
                }
                if packed.len() > LARGE_FROM || packed.names.len() > PACKED_NAME_BYTES_MAX {
                    let runs = Runs::from_sorted(packed.iter(), packed.len());
                    *list = List::Large(runs);
                }
                true
            }
            List::Large(runs) => runs.insert(name, slot),
        }
    }

    /// Removes a child, returning its slot.
    pub(crate) fn remove(&mut self, name: &str) -> Option<u32> {
        let dir = self.0.as_mut()?;
        let slot = match &mut dir.list {
            List::Small(packed) => packed.remove(name)?,
            List::Large(runs) => {
                let slot = runs.remove(name)?;
                if runs.len < SMALL_BELOW && runs.name_bytes < PACKED_NAME_BYTES_MAX / 4 {
                    dir.list = List::Small(runs.to_packed());
                }
                slot
            }
        };
        // Emptied, and nothing else to remember: back to a bare pointer.
        if self.is_empty() && self.pzxid().is_none() && self.cversion() == 0 {
            self.0 = None;
        }
        Some(slot)
    }

    /// The slot of the child called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        match &self.0.as_deref()?.list {
            List::Small(packed) => packed.get(name),
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
        match self.0.as_deref().map(|dir| &dir.list) {
            None => 0,
            Some(List::Small(packed)) => packed.len(),
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
        match self.0.as_deref().map(|dir| &dir.list) {
            None => Iter::Large {
                runs: [].iter(),
                front: [].iter(),
                back: [].iter(),
            },
            Some(List::Small(packed)) => Iter::Small(packed.iter()),
            Some(List::Large(runs)) => Iter::Large {
                runs: runs.runs.iter(),
                front: [].iter(),
                back: [].iter(),
            },
        }
    }

    /// The pzxid set with [`Children::set_pzxid`]; `None` while it is still
    /// the node's czxid.
    pub(crate) fn pzxid(&self) -> Option<i64> {
        self.0
            .as_deref()
            .map(|dir| dir.pzxid)
            .filter(|&pzxid| pzxid != PZXID_UNSET)
    }

    pub(crate) fn set_pzxid(&mut self, pzxid: i64) {
        self.0.get_or_insert_with(Dir::new).pzxid = pzxid;
    }

    /// The create counter (0 for a node that never had a child).
    pub(crate) fn cversion(&self) -> i32 {
        self.0.as_deref().map_or(0, |dir| dir.cversion)
    }

    pub(crate) fn set_cversion(&mut self, cversion: i32) {
        self.0.get_or_insert_with(Dir::new).cversion = cversion;
    }

    /// The list's representation, for tests: "empty", "small" or "large".
    #[cfg(test)]
    fn shape(&self) -> &'static str {
        match self.0.as_deref().map(|dir| &dir.list) {
            None => "empty",
            Some(List::Small(_)) => "small",
            Some(List::Large(_)) => "large",
        }
    }
}

/// Sorted names packed in one string: name `i` is
/// `names[entries[i-1].end..entries[i].end]` (from 0 for the first). An
/// insert or remove shifts the names and entries after it: at most
/// [`LARGE_FROM`] entries and [`PACKED_NAME_BYTES_MAX`] bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Packed {
    names: String,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where this name ends in `names`.
    end: u32,
    slot: u32,
}

impl Packed {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Where name `i` starts in `names` (where name `i - 1` ends); for
    /// `i == len()`, the end of the names.
    fn start(&self, i: usize) -> usize {
        match i.checked_sub(1) {
            Some(before) => self.entries[before].end as usize,
            None => 0,
        }
    }

    /// Byte range of name `i` in `names`.
    fn span(&self, i: usize) -> std::ops::Range<usize> {
        self.start(i)..self.entries[i].end as usize
    }

    fn name(&self, i: usize) -> &str {
        &self.names[self.span(i)]
    }

    /// (name, slot) of entry `i`.
    fn at(&self, i: usize) -> (&str, u32) {
        (self.name(i), self.entries[i].slot)
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.entries.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.name(mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    fn get(&self, name: &str) -> Option<u32> {
        let i = self.find(name).ok()?;
        Some(self.entries[i].slot)
    }

    fn insert(&mut self, name: &str, slot: u32) -> bool {
        let Err(pos) = self.find(name) else {
            return false;
        };
        let start = self.start(pos);
        // Grow by an eighth, not double: a directory's list is rarely
        // appended to in bursts, and the slack of doubling is memory held by
        // every directory.
        if self.entries.len() == self.entries.capacity() {
            self.entries.reserve_exact(self.entries.len() / 8 + 1);
        }
        if self.names.len() + name.len() > self.names.capacity() {
            self.names
                .reserve_exact((self.names.len() / 8).max(name.len()));
        }
        self.names.insert_str(start, name);
        let grown = name.len() as u32;
        for entry in &mut self.entries[pos..] {
            entry.end += grown;
        }
        self.entries.insert(
            pos,
            Entry {
                end: (start + name.len()) as u32,
                slot,
            },
        );
        true
    }

    fn remove(&mut self, name: &str) -> Option<u32> {
        let pos = self.find(name).ok()?;
        let span = self.span(pos);
        let shrunk = span.len() as u32;
        self.names.replace_range(span, "");
        let removed = self.entries.remove(pos);
        for entry in &mut self.entries[pos..] {
            entry.end -= shrunk;
        }
        if self.entries.capacity() > 2 * self.entries.len() + 8 {
            self.entries.shrink_to_fit();
            self.names.shrink_to_fit();
        }
        Some(removed.slot)
    }

    fn iter(&self) -> PackedIter<'_> {
        PackedIter {
            packed: self,
            front: 0,
            back: self.entries.len(),
        }
    }
}

/// (name, slot) of a packed list in order, from either end.
#[derive(Clone)]
pub(crate) struct PackedIter<'a> {
    packed: &'a Packed,
    front: usize,
    back: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a str, u32);

    fn next(&mut self) -> Option<(&'a str, u32)> {
        if self.front == self.back {
            return None;
        }
        let i = self.front;
        self.front += 1;
        Some(self.packed.at(i))
    }
}

impl DoubleEndedIterator for PackedIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        Some(self.packed.at(self.back))
    }
}

/// Non-empty runs, each sorted by name; every name of a run sorts before
/// every name of the next run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs {
    runs: Vec<Arc<Run>>,
    /// The first name of each run, side by side: finding the run of a name
    /// searches this array, not one pointer per run (a cache miss each; the
    /// run search was half of a create's lookup in a directory of 400k
    /// children).
    firsts: Vec<Name>,
    len: usize,
    /// Bytes of all the names, to know when a packed list would hold them.
    name_bytes: usize,
}

impl Runs {
    fn from_sorted<'a>(entries: impl Iterator<Item = (&'a str, u32)>, len: usize) -> Runs {
        let mut runs = Vec::with_capacity(len / RUN_LEN_MAX + 1);
        let mut firsts = Vec::with_capacity(len / RUN_LEN_MAX + 1);
        let mut run: Run = Vec::with_capacity(RUN_LEN_MAX);
        let mut name_bytes = 0;
        for (name, slot) in entries {
            name_bytes += name.len();
            if run.is_empty() {
                firsts.push(Name::from(name));
            }
            run.push((Name::from(name), slot));
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
        Runs {
            runs,
            firsts,
            len,
            name_bytes,
        }
    }

    fn to_packed(&self) -> Packed {
        let mut packed = Packed {
            names: String::with_capacity(self.name_bytes),
            entries: Vec::with_capacity(self.len),
        };
        for (name, slot) in self.runs.iter().flat_map(|run| run.iter()) {
            packed.names.push_str(name);
            packed.entries.push(Entry {
                end: packed.names.len() as u32,
                slot: *slot,
            });
        }
        packed
    }

    /// The run that holds `name` or would (the last one whose first name is
    /// not after it), and where in it.
    fn find(&self, name: &str) -> Option<(usize, Result<usize, usize>)> {
        let r = self
            .firsts
            .partition_point(|first| &**first <= name)
            .saturating_sub(1);
        let run = self.runs.get(r)?;
        Some((r, run.binary_search_by(|(n, _)| (**n).cmp(name))))
    }

    fn insert(&mut self, name: &str, slot: u32) -> bool {
        let Some((r, found)) = self.find(name) else {
            self.runs.push(Arc::new(vec![(name.into(), slot)]));
            self.firsts.push(name.into());
            self.len = 1;
            self.name_bytes = name.len();
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
            self.firsts.push(name.into());
        } else {
            let run = Arc::make_mut(&mut self.runs[r]);
            run.insert(pos, (name.into(), slot));
            if pos == 0 {
                // Only before the first name of all (run 0).
                self.firsts[r] = name.into();
            }
            if run.len() > RUN_LEN_MAX {
                let tail = run.split_off(run.len() / 2);
                run.shrink_to_fit();
                self.firsts.insert(r + 1, tail[0].0.clone());
                self.runs.insert(r + 1, Arc::new(tail));
            }
        }
        self.len += 1;
        self.name_bytes += name.len();
        true
    }

    fn remove(&mut self, name: &str) -> Option<u32> {
        let (r, Ok(pos)) = self.find(name)? else {
            return None;
        };
        let run = Arc::make_mut(&mut self.runs[r]);
        let (_, slot) = run.remove(pos);
        match run.first() {
            None => {
                self.runs.remove(r);
                self.firsts.remove(r);
            }
            Some((first, _)) if pos == 0 => self.firsts[r] = first.clone(),
            Some(_) => {}
        }
        self.len -= 1;
        self.name_bytes -= name.len();
        Some(slot)
    }
}

/// Iterator over a child list, in name order from either end.
pub(crate) enum Iter<'a> {
    Small(PackedIter<'a>),
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
            Iter::Small(iter) => iter.next(),
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
            Iter::Small(iter) => iter.next_back(),
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
    use std::collections::BTreeMap;

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
        if let Some(List::Large(runs)) = children.0.as_deref().map(|dir| &dir.list) {
            assert!(runs
                .runs
                .iter()
                .all(|run| !run.is_empty() && run.len() <= RUN_LEN_MAX));
            let firsts: Vec<&str> = runs.runs.iter().map(|run| &*run[0].0).collect();
            let kept: Vec<&str> = runs.firsts.iter().map(|first| &**first).collect();
            assert_eq!(kept, firsts, "each run's first name, side by side");
        }
    }

    #[test]
    fn a_big_list_becomes_runs_and_a_small_one_packed_again() {
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
    fn long_names_make_a_list_runs_before_their_bytes_overflow_a_packed_one() {
        let mut children = Children::default();
        let mut model = BTreeMap::new();
        for (i, c) in ["a", "c", "b"].iter().enumerate() {
            let name = c.repeat(PACKED_NAME_BYTES_MAX / 3 + 1);
            assert!(children.insert(&name, i as u32));
            model.insert(name, i as u32);
        }
        assert_eq!(children.shape(), "large");
        check_against(&children, &model);
        let b = "b".repeat(PACKED_NAME_BYTES_MAX / 3 + 1);
        assert_eq!(children.remove(&b), Some(2));
        model.remove(&b);
        assert_eq!(
            children.shape(),
            "large",
            "its names are still too long to pack"
        );
        check_against(&children, &model);
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

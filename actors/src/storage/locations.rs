//! Deferred, range-rotated writes of the tx-location index (`tx_locations`: tx id -> block
//! position), and the in-memory index of the locations not written yet.
//!
//! Why: tx ids are hashes, so each id inserted into the `tx_locations` B-tree lands on a random
//! leaf. Once the table has more leaves than a block has transactions, every block commit
//! copied and wrote one 4 KiB page per transaction, and that cost grew with the chain (measured:
//! 5 µs a transaction on an empty chain, 26 µs at 1,000,000 transactions; RUNBOOK
//! "Performance"). Here the key space is cut into [`RANGES`] ranges by the id's first byte, and
//! the commit of height `h` writes only the ids of range `h % RANGES`: those of the blocks
//! `h - RANGES + 1 ..= h`. Over `RANGES` blocks one range gathers about one block's worth of
//! ids, and they land on `1 / RANGES` of the table's leaves, so a commit rewrites about
//! `min(block size, leaves / RANGES)` pages instead of `min(block size, leaves)`.
//!
//! Invariants (every one is a pure function of the committed chain, so a restart, a backup or
//! `db check` derives the same thing from the file alone):
//! - An id included at height `h` is written to `tx_locations` by the commit of
//!   [`merge_height`]`(h, id)`, the first height `>= h` of its range; it is in the table exactly
//!   when that height is committed. A file from schema 3 or older holds every id already: the
//!   write then finds the same value, which is accepted.
//! - Until then it is in [`Recent`], which `Storage` keeps in memory and rebuilds on open from
//!   the receipts of the last `RANGES - 1` blocks (a receipt names its tx). It holds at most
//!   `RANGES` blocks' transactions, whatever clients send: an id ground to one range only makes
//!   that range's write larger, never the index older.
//! - Nothing here decides what a block may contain: a location is where the chain put a
//!   transaction, so lookups answer the same on every node whatever its write schedule.

use crate::types::{FastMap, Hash};

use super::TxLocation;

/// Ranges the id space is cut into: each block commit writes one of them. 256 is a multiple, so
/// the first byte of a hash spreads evenly over them. More ranges write fewer pages per commit
/// on a large chain but keep more ids in memory (`RANGES` blocks' worth: at 25,000 tx/s and
/// 250 ms blocks about 200,000 ids, 12 MiB).
pub(super) const RANGES: u64 = 32;

/// The range of an id: its first byte, modulo [`RANGES`].
pub(super) fn range_of(id: &Hash) -> usize {
    (u64::from(id.0[0]) % RANGES) as usize
}

/// The height whose commit writes the location of `id`, included at `height`: the first height
/// at or above `height` whose range (`height % RANGES`) is the id's.
pub(super) fn merge_height(height: u64, id: &Hash) -> u64 {
    let range = range_of(id) as u64;
    let wait = (range + RANGES - height % RANGES) % RANGES;
    height.saturating_add(wait)
}

/// Whether the location of `id`, included at `height`, is in `tx_locations` once `head` is
/// committed.
pub(super) fn is_written(height: u64, id: &Hash, head: u64) -> bool {
    merge_height(height, id) <= head
}

/// The locations committed (or being committed) but not yet in `tx_locations`, one map per
/// range. Reads take them from here first and confirm them against the block's receipt in
/// their read transaction (see `Storage::located_receipt`), so an entry added just before its
/// block's commit, or left by a commit that failed, is never mistaken for a committed one.
#[derive(Debug, Default)]
pub(super) struct Recent {
    ranges: Vec<FastMap<Hash, TxLocation>>,
    len: usize,
}

impl Recent {
    pub(super) fn new() -> Self {
        Self {
            ranges: (0..RANGES).map(|_| FastMap::default()).collect(),
            len: 0,
        }
    }

    pub(super) fn get(&self, id: &Hash) -> Option<TxLocation> {
        self.ranges[range_of(id)].get(id).copied()
    }

    /// Ids held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Adds one location (the rebuild on open).
    pub(super) fn insert(&mut self, id: Hash, at: TxLocation) {
        if self.ranges[range_of(&id)].insert(id, at).is_none() {
            self.len += 1;
        }
    }

    /// Adds the ids of the block at `height`, in block order; if one is already held (twice in
    /// the block, or in a recent block), adds nothing and returns it.
    pub(super) fn insert_block(&mut self, height: u64, ids: &[Hash]) -> Result<(), Hash> {
        for (index, id) in ids.iter().enumerate() {
            let map = &mut self.ranges[range_of(id)];
            if map.contains_key(id) {
                self.remove(&ids[..index]);
                return Err(*id);
            }
            // `write_block` checked that a block's index fits in u32.
            map.insert(*id, (height, index as u32));
            self.len += 1;
        }
        Ok(())
    }

    /// The ids the commit of `height` writes, sorted by id (neighbouring keys share leaves).
    pub(super) fn due(&self, height: u64) -> Vec<(Hash, TxLocation)> {
        let mut due: Vec<_> = self.ranges[(height % RANGES) as usize]
            .iter()
            .map(|(id, at)| (*id, *at))
            .collect();
        due.sort_unstable_by_key(|(id, _)| *id);
        due
    }

    /// Forgets `ids` (written to the table, or of a block whose commit failed). A map emptied
    /// by it gives its memory back: a burst must not leave its peak allocated.
    pub(super) fn remove<'a>(&mut self, ids: impl IntoIterator<Item = &'a Hash>) {
        for id in ids {
            let map = &mut self.ranges[range_of(id)];
            if map.remove(id).is_some() {
                self.len -= 1;
            }
        }
        for map in &mut self.ranges {
            if map.is_empty() && map.capacity() > 0 {
                *map = FastMap::default();
            } else if map.capacity() > 4 * map.len().max(64) {
                map.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8, rest: u8) -> Hash {
        let mut h = [rest; 32];
        h[0] = first;
        Hash(h)
    }

    #[test]
    fn merge_height_is_the_first_height_of_the_ids_range() {
        // Range of first byte 5 is 5; of 37 also 5 (37 % 32).
        assert_eq!(merge_height(5, &id(5, 0)), 5);
        assert_eq!(merge_height(3, &id(5, 0)), 5);
        assert_eq!(merge_height(6, &id(37, 0)), 37);
        assert_eq!(merge_height(33, &id(0, 0)), 64);
        assert_eq!(merge_height(64, &id(0, 0)), 64);
        for h in 1..200u64 {
            for first in [0u8, 1, 31, 32, 200, 255] {
                let m = merge_height(h, &id(first, 9));
                assert!(m >= h && m < h + RANGES, "{h} {first} -> {m}");
                assert_eq!(m % RANGES, u64::from(first) % RANGES);
                assert!(is_written(h, &id(first, 9), m));
                assert!(!is_written(h, &id(first, 9), m - 1));
            }
        }
        assert_eq!(merge_height(u64::MAX - 1, &id(0, 0)), u64::MAX);
    }

    #[test]
    fn due_is_one_range_sorted_and_remove_forgets() {
        let mut r = Recent::new();
        let ids = [id(2, 9), id(34, 1), id(3, 0), id(2, 1)];
        r.insert_block(7, &ids).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r.get(&id(34, 1)), Some((7, 1)));
        // Height 34: range 2 holds first bytes 2 and 34.
        let due = r.due(34);
        assert_eq!(
            due,
            vec![(id(2, 1), (7, 3)), (id(2, 9), (7, 0)), (id(34, 1), (7, 1))]
        );
        r.remove(due.iter().map(|(id, _)| id));
        assert_eq!(r.len(), 1);
        assert_eq!(r.get(&id(2, 9)), None);
        assert_eq!(r.get(&id(3, 0)), Some((7, 2)));
        assert!(r.due(2).is_empty());
    }

    #[test]
    fn a_repeated_id_adds_nothing_of_its_block() {
        let mut r = Recent::new();
        r.insert_block(1, &[id(1, 1)]).unwrap();
        // Twice in one block.
        assert_eq!(
            r.insert_block(2, &[id(5, 5), id(6, 6), id(5, 5)]),
            Err(id(5, 5))
        );
        // Already held from an earlier block.
        assert_eq!(r.insert_block(2, &[id(7, 7), id(1, 1)]), Err(id(1, 1)));
        assert_eq!(r.len(), 1);
        assert_eq!(r.get(&id(5, 5)), None);
        assert_eq!(r.get(&id(7, 7)), None);
        assert_eq!(r.get(&id(1, 1)), Some((1, 0)));
    }
}

//! The Accumen anchor: the public format by which a run of consecutive blocks is written to the
//! Accumulate L0, and the check a follower or a third party applies to it.
//!
//! # Format (`accumen-anchor/1`)
//!
//! One `WriteData` per batch of consecutive blocks `first..=last`, whose entry is a `doubleHash`
//! data entry of exactly these seven parts, in this order:
//!
//! | part | content | size |
//! |---|---|---|
//! | 0 | the ASCII bytes `accumen-anchor/1` | 16 |
//! | 1 | the chain id, UTF-8 | 1–64 |
//! | 2 | first height of the batch, big-endian | 8 |
//! | 3 | last height of the batch, big-endian | 8 |
//! | 4 | hash of block `last` | 32 |
//! | 5 | Merkle root of the hashes of blocks `first..=last` in height order | 32 |
//! | 6 | state root after block `last` | 32 |
//!
//! Part 5 uses the project's binary Merkle rule (`types::merkle_root`): leaf
//! `SHA256(0x00 || h)`, inner node `SHA256(0x01 || left || right)`, an odd node at the end of a
//! level promoted unchanged. The L0 identifies the entry by its entry hash,
//! `SHA256( MR( SHA256(part_0), …, SHA256(part_6) ) )` with Accumulate's Merkle rule `MR`,
//! which for seven leaves `l0..l6` is
//! `SHA256( SHA256( SHA256(l0||l1) || SHA256(l2||l3) ) || SHA256( SHA256(l4||l5) || l6 ) )`.
//!
//! Batches cover heights 1, 2, 3, … in order with no gap and no overlap; genesis (height 0) is
//! never anchored (it follows from the chain parameters).
//!
//! Invariants: [`Anchor::from_headers`] refuses an empty run, height 0, a gap, a wrong order
//! and a broken parent link, so an anchor always describes a real chain segment;
//! [`Anchor::parse`] accepts only the exact seven-part layout; [`Anchor::check`] recomputes
//! every field from the headers; [`Anchor::check_follows`] enforces the batch sequence.
//!
//! # Worked example
//!
//! Chain id `accumen-example`, blocks 1 and 2 with these header hashes (as the API returns them)
//! and the state root after block 2:
//!
//! ```text
//! hash(block 1)  1111111111111111111111111111111111111111111111111111111111111111
//! hash(block 2)  2222222222222222222222222222222222222222222222222222222222222222
//! state root     3333333333333333333333333333333333333333333333333333333333333333
//! ```
//!
//! Parts (hex), entry hash `56c218c74abeffa93aebed32d0e3ebbb830480f358cea9d8950eb0ba22d75064`:
//!
//! ```text
//! part 0  616363756d656e2d616e63686f722f31                                  "accumen-anchor/1"
//! part 1  616363756d656e2d6578616d706c65                                    "accumen-example"
//! part 2  0000000000000001
//! part 3  0000000000000002
//! part 4  2222222222222222222222222222222222222222222222222222222222222222
//! part 5  cc15b132263fd4fd2748c0e7cb9e1c4ad0afe70fcf9382ee644c4da8af0286a5
//! part 6  3333333333333333333333333333333333333333333333333333333333333333
//! ```
//!
//! Check it in bash with `xxd` and `sha256sum` (`h` hashes hex input, prints hex):
//!
//! ```text
//! h() { xxd -r -p | sha256sum | cut -c1-64; }
//! H1=$(printf '11%.0s' {1..32}); H2=$(printf '22%.0s' {1..32}); S=$(printf '33%.0s' {1..32})
//! # part 5, the project Merkle rule: leaves 00||hash, node 01||left||right
//! L1=$(echo 00$H1 | h)    # 4635e1fa62a599a7880a8d14a56f720a1d40f6e5448ab5a5e39bedc8bd87fa8e
//! L2=$(echo 00$H2 | h)    # bc6f27de60abf5319d16ff4c98fe3c42022c84f6a7a2b207c8df19b0ec3d8d58
//! R=$(echo 01$L1$L2 | h)  # cc15b132263fd4fd2748c0e7cb9e1c4ad0afe70fcf9382ee644c4da8af0286a5
//! # SHA-256 of each part
//! p0=$(echo 616363756d656e2d616e63686f722f31 | h)  # a17043278a75f5d47a7ec8972de4aa94bd2557a58dd4427182978c151650854e
//! p1=$(echo 616363756d656e2d6578616d706c65 | h)    # 77fc4f3d9c432392cc24f2065c98dada41f33ac32503ba785ed4c18f140a521a
//! p2=$(echo 0000000000000001 | h)                  # cd2662154e6d76b2b2b92e70c0cac3ccf534f9b74eb5b89819ec509083d00a50
//! p3=$(echo 0000000000000002 | h)                  # cd04a4754498e06db5a13c5f371f1f04ff6d2470f24aa9bd886540e5dce77f70
//! p4=$(echo $H2 | h)                               # 9f72ea0cf49536e3c66c787f705186df9a4378083753ae9536d65b3ad7fcddc4
//! p5=$(echo $R | h)                                # 9398421eb11f97142b8405781f606c566a480e149ccff39a971fb8aa3a54f736
//! p6=$(echo $S | h)                                # deb0e38ced1e41de6f92e70e80c418d2d356afaaa99e26f5939dbc7d3ef4772a
//! # Accumulate's Merkle root of the seven, then SHA-256 of it: the entry hash
//! a=$(echo $p0$p1 | h); b=$(echo $p2$p3 | h); c=$(echo $a$b | h)
//! d=$(echo $p4$p5 | h); e=$(echo $d$p6 | h); r=$(echo $c$e | h)
//! echo $r | h             # 56c218c74abeffa93aebed32d0e3ebbb830480f358cea9d8950eb0ba22d75064
//! ```
//!
//! The entry hash is what the L0 reports as `entryHash` and what `query` with
//! `{"queryType":"data","entry":"<entry hash>"}` finds. The test `worked_example` in
//! `bridge::tests` recomputes every value above from the spec with plain SHA-256.

use crate::types::{BlockHeader, Hash, MAX_CHAIN_ID_LEN, merkle_root};

use super::codec::DoubleHashEntry;

/// Part 0 of every anchor: the format name and version.
pub const ANCHOR_MAGIC: &[u8] = b"accumen-anchor/1";

/// Number of parts of an anchor entry.
pub const ANCHOR_PARTS: usize = 7;

/// An anchor: what one `WriteData` states about blocks `first_height..=last_height`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub chain_id: String,
    pub first_height: u64,
    pub last_height: u64,
    /// Hash of block `last_height`.
    pub last_block_hash: Hash,
    /// Project Merkle root of the hashes of blocks `first_height..=last_height`.
    pub blocks_root: Hash,
    /// State root after block `last_height`.
    pub state_root: Hash,
}

/// Why an anchor could not be built, parsed or matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("no blocks to anchor")]
    Empty,
    #[error("chain id is empty or longer than {MAX_CHAIN_ID_LEN} bytes")]
    BadChainId,
    #[error("genesis (height 0) is never anchored")]
    Genesis,
    #[error("block {next} follows block {previous}: heights must increase")]
    WrongOrder { previous: u64, next: u64 },
    #[error("gap: block {next} follows block {previous}")]
    Gap { previous: u64, next: u64 },
    #[error("block {height}'s parent hash {parent} is not the hash {expected} of block {}", height - 1)]
    BrokenLink {
        height: u64,
        parent: Hash,
        expected: Hash,
    },
    #[error("anchor entry has {0} parts, expected {ANCHOR_PARTS}")]
    PartCount(usize),
    #[error("part 0 is not {:?}", std::str::from_utf8(ANCHOR_MAGIC).unwrap_or_default())]
    Magic,
    #[error("part 1 (chain id) is not UTF-8")]
    ChainIdUtf8,
    #[error("part {part} is {got} bytes, expected {expected}")]
    PartLength {
        part: usize,
        expected: usize,
        got: usize,
    },
    #[error("first height {first} is above last height {last}")]
    HeightRange { first: u64, last: u64 },
    #[error(
        "anchor starts at height {got}, expected {expected} (batches cover 1, 2, 3, … with no gap and no overlap)"
    )]
    NotContiguous { expected: u64, got: u64 },
    #[error("anchor {field} does not match the blocks: anchor {anchor}, blocks {blocks}")]
    Mismatch {
        field: &'static str,
        anchor: String,
        blocks: String,
    },
}

impl Anchor {
    /// The anchor of a run of consecutive block headers, lowest height first. Refuses an empty
    /// run, genesis, a height that does not increase by exactly one and a parent hash that is
    /// not the previous header's hash.
    pub fn from_headers(chain_id: &str, headers: &[BlockHeader]) -> Result<Anchor, AnchorError> {
        if chain_id.is_empty() || chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(AnchorError::BadChainId);
        }
        let (first, last) = match (headers.first(), headers.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return Err(AnchorError::Empty),
        };
        if first.height == 0 {
            return Err(AnchorError::Genesis);
        }
        let hashes: Vec<Hash> = headers.iter().map(BlockHeader::hash).collect();
        for (i, pair) in headers.windows(2).enumerate() {
            let (prev, next) = (&pair[0], &pair[1]);
            if next.height <= prev.height {
                return Err(AnchorError::WrongOrder {
                    previous: prev.height,
                    next: next.height,
                });
            }
            if next.height != prev.height + 1 {
                return Err(AnchorError::Gap {
                    previous: prev.height,
                    next: next.height,
                });
            }
            if next.parent_hash != hashes[i] {
                return Err(AnchorError::BrokenLink {
                    height: next.height,
                    parent: next.parent_hash,
                    expected: hashes[i],
                });
            }
        }
        Ok(Anchor {
            chain_id: chain_id.to_string(),
            first_height: first.height,
            last_height: last.height,
            last_block_hash: hashes[hashes.len() - 1],
            blocks_root: merkle_root(&hashes),
            state_root: last.state_root,
        })
    }

    /// The seven entry parts, in order.
    pub fn parts(&self) -> Vec<Vec<u8>> {
        vec![
            ANCHOR_MAGIC.to_vec(),
            self.chain_id.as_bytes().to_vec(),
            self.first_height.to_be_bytes().to_vec(),
            self.last_height.to_be_bytes().to_vec(),
            self.last_block_hash.0.to_vec(),
            self.blocks_root.0.to_vec(),
            self.state_root.0.to_vec(),
        ]
    }

    /// The `doubleHash` data entry.
    pub fn entry(&self) -> DoubleHashEntry {
        DoubleHashEntry::new(self.parts())
    }

    /// The entry hash the L0 reports (`entryHash`).
    pub fn entry_hash(&self) -> Hash {
        self.entry().hash()
    }

    /// Parses entry parts (as read from the L0) into an anchor; only the exact layout of the
    /// module docs is accepted.
    pub fn parse<P: AsRef<[u8]>>(parts: &[P]) -> Result<Anchor, AnchorError> {
        if parts.len() != ANCHOR_PARTS {
            return Err(AnchorError::PartCount(parts.len()));
        }
        let part = |i: usize| parts[i].as_ref();
        if part(0) != ANCHOR_MAGIC {
            return Err(AnchorError::Magic);
        }
        let chain_id = std::str::from_utf8(part(1)).map_err(|_| AnchorError::ChainIdUtf8)?;
        if chain_id.is_empty() || chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(AnchorError::BadChainId);
        }
        let fixed = |i: usize, expected: usize| -> Result<&[u8], AnchorError> {
            let p = part(i);
            if p.len() == expected {
                Ok(p)
            } else {
                Err(AnchorError::PartLength {
                    part: i,
                    expected,
                    got: p.len(),
                })
            }
        };
        let height = |i: usize| -> Result<u64, AnchorError> {
            let mut b = [0u8; 8];
            b.copy_from_slice(fixed(i, 8)?);
            Ok(u64::from_be_bytes(b))
        };
        let hash = |i: usize| -> Result<Hash, AnchorError> {
            let mut b = [0u8; 32];
            b.copy_from_slice(fixed(i, 32)?);
            Ok(Hash(b))
        };
        let (first_height, last_height) = (height(2)?, height(3)?);
        if first_height == 0 {
            return Err(AnchorError::Genesis);
        }
        if first_height > last_height {
            return Err(AnchorError::HeightRange {
                first: first_height,
                last: last_height,
            });
        }
        Ok(Anchor {
            chain_id: chain_id.to_string(),
            first_height,
            last_height,
            last_block_hash: hash(4)?,
            blocks_root: hash(5)?,
            state_root: hash(6)?,
        })
    }

    /// Does this anchor describe exactly these headers of this chain? Recomputes the anchor
    /// from the headers (with all of [`from_headers`](Self::from_headers)' checks) and names the
    /// first field that differs.
    pub fn check(&self, chain_id: &str, headers: &[BlockHeader]) -> Result<(), AnchorError> {
        let expected = Anchor::from_headers(chain_id, headers)?;
        let fields: [(&'static str, String, String); 6] = [
            ("chain id", self.chain_id.clone(), expected.chain_id.clone()),
            (
                "first height",
                self.first_height.to_string(),
                expected.first_height.to_string(),
            ),
            (
                "last height",
                self.last_height.to_string(),
                expected.last_height.to_string(),
            ),
            (
                "last block hash",
                self.last_block_hash.to_hex(),
                expected.last_block_hash.to_hex(),
            ),
            (
                "blocks root",
                self.blocks_root.to_hex(),
                expected.blocks_root.to_hex(),
            ),
            (
                "state root",
                self.state_root.to_hex(),
                expected.state_root.to_hex(),
            ),
        ];
        for (field, anchor, blocks) in fields {
            if anchor != blocks {
                return Err(AnchorError::Mismatch {
                    field,
                    anchor,
                    blocks,
                });
            }
        }
        Ok(())
    }

    /// Parses entry parts and checks them against the headers: what a follower or a third
    /// party runs on each data entry it reads from the L0.
    pub fn verify_entry<P: AsRef<[u8]>>(
        parts: &[P],
        chain_id: &str,
        headers: &[BlockHeader],
    ) -> Result<Anchor, AnchorError> {
        let anchor = Anchor::parse(parts)?;
        anchor.check(chain_id, headers)?;
        Ok(anchor)
    }

    /// Does this anchor continue `previous` (the anchor of the batch before it, `None` for the
    /// chain's first batch)? Batches cover heights 1, 2, 3, … with no gap and no overlap, all of
    /// one chain: what a follower checks when it reads a data account's entries in order.
    pub fn check_follows(&self, previous: Option<&Anchor>) -> Result<(), AnchorError> {
        let expected = match previous {
            None => 1,
            Some(p) => {
                if p.chain_id != self.chain_id {
                    return Err(AnchorError::Mismatch {
                        field: "chain id",
                        anchor: self.chain_id.clone(),
                        blocks: p.chain_id.clone(),
                    });
                }
                p.last_height.saturating_add(1)
            }
        };
        if self.first_height != expected {
            return Err(AnchorError::NotContiguous {
                expected,
                got: self.first_height,
            });
        }
        Ok(())
    }
}

//! The Mempool actor driven through its messages in a real actix System, with a recording fake
//! in place of the journal (over in-memory storage for committed nonces and contracts): what
//! each message answers, and what reaches the journal.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use actix::prelude::*;

use super::pool::Pool;
use super::tests::{call, deploy};
use super::*;
use crate::metrics::{NodeMetrics, NodeStats};
use crate::storage::{JournalOp, Storage, StorageError};
use crate::testkit::CHAIN;
use crate::types::{Address, Hash, Keypair, SignedTx, VerifiedTx};
use crate::vm::DropReason;

/// One write the mempool made on its journal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JournalCall {
    /// `write`: ids put (in arrival-sequence order), ids forgotten (in queue order), ids
    /// forgotten as committed (in queue order).
    Write {
        put: Vec<Hash>,
        remove: Vec<Hash>,
        settle: Vec<Hash>,
    },
}

/// Records every journal call and otherwise succeeds; holds nothing (`load` is empty).
/// Removals name sequences: they are recorded as the ids put under them (a sequence never put
/// would fail the test).
#[derive(Default)]
struct RecordingJournal {
    calls: Mutex<Vec<JournalCall>>,
    put: Mutex<HashMap<u64, Hash>>,
}

impl RecordingJournal {
    fn calls(&self) -> Vec<JournalCall> {
        self.calls.lock().unwrap().clone()
    }
}

impl Journal for RecordingJournal {
    fn write(&self, ops: &[JournalOp]) -> Result<(), StorageError> {
        let mut put = Vec::new();
        let mut remove = Vec::new();
        let mut settle = Vec::new();
        let mut seqs = self.put.lock().unwrap();
        for op in ops {
            match op {
                JournalOp::Put { seq, id, bytes } => {
                    let tx: SignedTx = crate::types::decode_trusted(bytes).unwrap();
                    assert_eq!(*id, tx.tx.id(), "the journal is given each tx's own id");
                    assert!(seqs.insert(*seq, *id).is_none(), "sequence {seq} put twice");
                    put.push((*seq, *id));
                }
                JournalOp::Remove(seq) => remove.push(seqs[seq]),
                JournalOp::Settle(seq) => settle.push(seqs[seq]),
                JournalOp::Clear => seqs.clear(),
            }
        }
        put.sort();
        self.calls.lock().unwrap().push(JournalCall::Write {
            put: put.into_iter().map(|(_, id)| id).collect(),
            remove,
            settle,
        });
        Ok(())
    }
    fn load(&self) -> Result<Vec<(u64, SignedTx)>, StorageError> {
        Ok(Vec::new())
    }
}

struct Fixture {
    addr: Addr<Mempool>,
    admission: Admission,
    journal: Arc<RecordingJournal>,
    stats: Arc<NodeStats>,
}

fn start(persist: bool) -> Fixture {
    let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
    let journal = Arc::new(RecordingJournal::default());
    let stats = Arc::new(NodeStats::default());
    let pool = Pool::new(super::tests::config(100));
    let admission = Admission::new(
        Arc::new(Mutex::new(Shared::new(pool))),
        storage,
        persist.then(|| journal.clone() as Arc<dyn Journal>),
        stats.clone(),
        NodeMetrics::default(),
    );
    let addr = Mempool::new(admission.clone()).start();
    Fixture {
        addr,
        admission,
        journal,
        stats,
    }
}

fn select(max: usize) -> Select {
    Select {
        max,
        max_gas: u64::MAX,
        max_bytes: u64::MAX,
    }
}

fn ids(txs: &[VerifiedTx]) -> Vec<Hash> {
    txs.iter().map(VerifiedTx::id).collect()
}

async fn pending(m: &Addr<Mempool>, id: Hash) -> bool {
    m.send(IsPending(id)).await.unwrap()
}

#[test]
fn admit_is_journaled_before_it_is_acknowledged_and_committed_rows_go_lazily() {
    System::new().block_on(async {
        let f = start(true);
        let (a, b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let txs = vec![deploy(&a, 0), deploy(&a, 1), deploy(&b, 0)];
        let results = f.addr.send(Admit(txs.clone())).await.unwrap();
        let admitted: Vec<Hash> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(admitted, ids(&txs));
        // One journal write, in arrival order, before the answer came back.
        assert_eq!(
            f.journal.calls(),
            vec![JournalCall::Write {
                put: ids(&txs),
                remove: vec![],
                settle: vec![]
            }]
        );
        for t in &txs {
            assert!(pending(&f.addr, t.id()).await);
        }
        assert_eq!(f.stats.mempool_size.load(Ordering::Relaxed), 3);
        assert_eq!(
            f.addr
                .send(AccountPending {
                    sender: a.public(),
                    state_nonce: 0
                })
                .await
                .unwrap(),
            (2, 2)
        );

        // Select takes at most `max`, and what it took stays pending while in flight.
        let chosen = f.addr.send(select(2)).await.unwrap();
        assert_eq!(chosen.len(), 2);
        for t in &chosen {
            assert!(pending(&f.addr, t.id()).await, "in flight is still pending");
        }
        // The block included the chosen ones: they leave the pool; their journal rows are
        // queued for removal, not written at once (the block commit did not touch them).
        let mut nonces = BTreeMap::new();
        for t in &chosen {
            let next = nonces.entry(t.tx().sender).or_insert(0);
            *next = (*next).max(t.tx().nonce + 1);
        }
        f.addr
            .send(BlockDone {
                included: ids(&chosen),
                nonces,
                dropped: vec![],
            })
            .await
            .unwrap();
        for t in &chosen {
            assert!(!pending(&f.addr, t.id()).await);
        }
        assert_eq!(f.stats.mempool_size.load(Ordering::Relaxed), 1);
        assert_eq!(
            f.journal.calls().len(),
            1,
            "no journal write for included txs yet"
        );
        let rest = f.addr.send(select(10)).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert!(!chosen.iter().any(|t| t.id() == rest[0].id()));
        // The next journal write carries the removals: here the timer's flush; an admission's
        // write would carry them the same way, before its own rows.
        f.admission.flush();
        assert_eq!(
            f.journal.calls().last(),
            Some(&JournalCall::Write {
                put: vec![],
                remove: vec![],
                settle: ids(&chosen)
            })
        );
        let c = deploy(&b, 1);
        f.addr.send(Admit(vec![c.clone()])).await.unwrap()[0]
            .as_ref()
            .unwrap();
        assert_eq!(
            f.journal.calls().last(),
            Some(&JournalCall::Write {
                put: vec![c.id()],
                remove: vec![],
                settle: vec![]
            }),
            "nothing forgotten twice"
        );
        System::current().stop();
    });
}

#[test]
fn a_dropped_transaction_leaves_the_pool_and_the_journal() {
    System::new().block_on(async {
        let f = start(true);
        let a = Keypair::from_seed([1; 32]);
        let t = deploy(&a, 0);
        f.addr.send(Admit(vec![t.clone()])).await.unwrap()[0]
            .as_ref()
            .unwrap();
        let chosen = f.addr.send(select(10)).await.unwrap();
        assert_eq!(ids(&chosen), vec![t.id()]);
        f.addr
            .send(BlockDone {
                included: vec![],
                nonces: BTreeMap::new(),
                dropped: vec![(
                    t.id(),
                    DropReason::GasLimit {
                        limit: 1_000,
                        max: 10,
                    },
                )],
            })
            .await
            .unwrap();
        assert!(!pending(&f.addr, t.id()).await);
        f.admission.flush();
        assert_eq!(
            f.journal.calls().last(),
            Some(&JournalCall::Write {
                put: vec![],
                remove: vec![t.id()],
                settle: vec![]
            })
        );
        assert_eq!(f.stats.mempool_size.load(Ordering::Relaxed), 0);
        System::current().stop();
    });
}

#[test]
fn return_in_flight_makes_a_failed_selection_selectable_again() {
    System::new().block_on(async {
        let f = start(true);
        let a = Keypair::from_seed([1; 32]);
        let t = deploy(&a, 0);
        f.addr.send(Admit(vec![t.clone()])).await.unwrap();
        assert_eq!(ids(&f.addr.send(select(10)).await.unwrap()), vec![t.id()]);
        assert!(
            f.addr.send(select(10)).await.unwrap().is_empty(),
            "in flight: not selected twice"
        );
        f.addr.send(ReturnInFlight).await.unwrap();
        assert_eq!(ids(&f.addr.send(select(10)).await.unwrap()), vec![t.id()]);
        assert!(pending(&f.addr, t.id()).await);
        assert_eq!(
            f.journal.calls().len(),
            1,
            "the failed attempt journals nothing"
        );
        System::current().stop();
    });
}

#[test]
fn refused_admissions_change_nothing_and_journal_nothing() {
    System::new().block_on(async {
        let f = start(true);
        let a = Keypair::from_seed([1; 32]);
        // A call to a contract nobody deployed or is deploying.
        let stray = call(&a, 0, Address([9; 32]));
        let r = f.addr.send(Admit(vec![stray.clone()])).await.unwrap();
        assert!(
            matches!(r[0], Err(MempoolError::UnknownContract(_))),
            "{r:?}"
        );
        // The same transaction twice: the second is refused.
        let d = deploy(&a, 0);
        let r = f
            .addr
            .send(Admit(vec![d.clone(), d.clone()]))
            .await
            .unwrap();
        assert!(r[0].is_ok() && r[1].is_err(), "{r:?}");
        assert!(!pending(&f.addr, stray.id()).await);
        assert_eq!(f.stats.mempool_size.load(Ordering::Relaxed), 1);
        assert_eq!(
            f.journal.calls(),
            vec![JournalCall::Write {
                put: vec![d.id()],
                remove: vec![],
                settle: vec![]
            }],
            "only the admitted transaction is journaled"
        );
        // A call to the contract the pending deploy creates is admitted.
        let c = call(&Keypair::from_seed([2; 32]), 0, d.tx().target());
        assert!(f.addr.send(Admit(vec![c.clone()])).await.unwrap()[0].is_ok());
        assert!(pending(&f.addr, c.id()).await);
        System::current().stop();
    });
}

#[test]
fn without_persist_nothing_is_journaled() {
    System::new().block_on(async {
        let f = start(false);
        let a = Keypair::from_seed([1; 32]);
        let t = deploy(&a, 0);
        assert!(f.addr.send(Admit(vec![t.clone()])).await.unwrap()[0].is_ok());
        let chosen = f.addr.send(select(10)).await.unwrap();
        f.addr
            .send(BlockDone {
                included: vec![],
                nonces: BTreeMap::new(),
                dropped: vec![(t.id(), DropReason::Timeout)],
            })
            .await
            .unwrap();
        assert_eq!(chosen.len(), 1);
        f.admission.flush();
        assert!(f.journal.calls().is_empty(), "{:?}", f.journal.calls());
        System::current().stop();
    });
}

//! Group commit for the mempool journal: concurrent admissions share one durable write.
//!
//! Role: an admitting thread queues its batch's journal operations (`enqueue`, under the pool
//! lock, so the queue's order is the order in which the pool changed) and then waits for its
//! ticket (`wait`, with no lock held). Whoever waits while no write is under way becomes the
//! leader: it takes everything queued so far, writes it in one `Journal::write` (one redb
//! transaction, one fsync), and wakes every waiter whose ticket that write covered. Batches that
//! arrive during a write queue up and go out together in the next one, so under load one fsync
//! serves many HTTP requests, and no thread waits behind the chain database (the journal is its
//! own file).
//!
//! Invariants:
//! - Operations are written in the order they were queued, and a write holds every operation
//!   queued before it began: tickets settle in order.
//! - A ticket's answer is its write's answer: a failed write fails exactly the tickets it held
//!   (the caller refuses those batches and takes them back out of the pool); later writes are
//!   tried afresh.
//! - Removals (`forget`) need no answer and are written with the next write, whoever leads it
//!   (an admission, or `flush` from the mempool actor's timer when nothing else writes); a
//!   removal lost in a failed write or a crash is harmless: restore re-admits the row against
//!   committed state and forgets it then (see `storage::journal`).
//! - At most one write runs at a time; a leader that panics inside the journal still settles
//!   its tickets as failed (a drop guard), so no waiter hangs.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::pool::Departure;
use crate::storage::{JournalOp, StorageError};

use super::Journal;

/// Most operations the next queue is given room for up front (about 600 KiB).
const QUEUE_ROOM: usize = 8192;

/// A batch's place in the journal queue; `wait` on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

#[derive(Debug, Default)]
struct Queue {
    ops: Vec<JournalOp>,
    /// The next ticket to hand out.
    next: u64,
    /// Every ticket below this is settled.
    settled: u64,
    /// Settled tickets whose write failed, until their waiter reads the answer.
    failed: HashMap<u64, Arc<StorageError>>,
    /// A write is under way.
    leading: bool,
    /// Writes done (successful or not), for tests and the group-size figure.
    writes: u64,
}

/// The journal behind a group-commit queue; see the module comment.
pub struct GroupCommit {
    journal: Arc<dyn Journal>,
    queue: Mutex<Queue>,
    done: Condvar,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

/// Settles a leader's tickets even if the journal write panics.
struct Lead<'a> {
    group: &'a GroupCommit,
    from: u64,
    upto: u64,
    result: Option<Result<(), StorageError>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let result = self.result.take().unwrap_or_else(|| {
            Err(StorageError::Corrupt(
                "the journal write panicked; the batch was not journaled".into(),
            ))
        });
        let mut q = self.group.lock();
        q.leading = false;
        q.settled = self.upto;
        q.writes += 1;
        if let Err(e) = result {
            let e = Arc::new(e);
            for t in self.from..self.upto {
                q.failed.insert(t, e.clone());
            }
        }
        drop(q);
        self.group.done.notify_all();
    }
}

impl GroupCommit {
    pub fn new(journal: Arc<dyn Journal>) -> Self {
        GroupCommit {
            journal,
            queue: Mutex::new(Queue::default()),
            done: Condvar::new(),
        }
    }

    /// The journal written to.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is only changed in whole steps under the lock; a panic elsewhere does not
        // leave it half-changed.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one batch's operations; the batch is durable once `wait` on the ticket says so.
    pub fn enqueue(&self, ops: Vec<JournalOp>) -> Ticket {
        let mut q = self.lock();
        q.ops.extend(ops);
        let t = q.next;
        q.next += 1;
        Ticket(t)
    }

    /// Queues removals that need no answer (transactions that left the pool); they go out
    /// with the next write.
    pub fn forget(&self, departed: &[Departure]) {
        if departed.is_empty() {
            return;
        }
        let mut q = self.lock();
        q.ops.extend(super::departure_ops(departed));
    }

    /// Operations queued and not yet being written.
    pub fn queued(&self) -> usize {
        self.lock().ops.len()
    }

    /// Writes done so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Blocks until the write holding `ticket` is done; its answer.
    pub fn wait(&self, ticket: Ticket) -> Result<(), Arc<StorageError>> {
        let mut q = self.lock();
        loop {
            if ticket.0 < q.settled {
                return match q.failed.remove(&ticket.0) {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            if !q.leading {
                q = self.lead(q);
                continue;
            }
            q = self.done.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Writes what is queued if no write is under way (the mempool actor's timer: removals
    /// queued while no admission wrote). Returns at once if another write runs; its leader or
    /// the next one takes the rest.
    pub fn flush(&self) {
        let q = self.lock();
        if !q.leading && !q.ops.is_empty() {
            drop(self.lead(q));
        }
    }

    /// Becomes the leader: writes everything queued, with the queue unlocked meanwhile.
    fn lead<'a>(&'a self, mut q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        q.leading = true;
        // The next queue starts with room for as many (under load each write carries about
        // as much as the last), instead of growing by reallocation one batch at a time; at
        // most `QUEUE_ROOM`, so an idle node does not keep a burst's room.
        let room = q.ops.len().min(QUEUE_ROOM);
        let ops = std::mem::replace(&mut q.ops, Vec::with_capacity(room));
        let mut lead = Lead {
            group: self,
            from: q.settled,
            upto: q.next,
            result: None,
        };
        drop(q);
        lead.result = Some(self.journal.write(&ops));
        drop(lead);
        self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SignedTx;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::mpsc;

    /// Records writes; can be told to fail, or to block until released.
    #[derive(Default)]
    struct Probe {
        writes: Mutex<Vec<Vec<JournalOp>>>,
        fail: AtomicBool,
        gate: Mutex<Option<mpsc::Receiver<()>>>,
        entered: AtomicUsize,
    }

    impl Journal for Probe {
        fn write(&self, ops: &[JournalOp]) -> Result<(), StorageError> {
            self.entered.fetch_add(1, Ordering::SeqCst);
            if let Some(rx) = self.gate.lock().unwrap().as_ref() {
                rx.recv().unwrap();
            }
            self.writes.lock().unwrap().push(ops.to_vec());
            if self.fail.load(Ordering::SeqCst) {
                return Err(StorageError::Corrupt("injected".into()));
            }
            Ok(())
        }
        fn load(&self) -> Result<Vec<(u64, SignedTx)>, StorageError> {
            Ok(Vec::new())
        }
    }

    fn rm(seq: u64) -> JournalOp {
        JournalOp::Remove(seq)
    }

    fn gone(seq: u64, committed: bool) -> Departure {
        Departure { seq, committed }
    }

    #[test]
    fn batches_queued_during_a_write_share_the_next_one() {
        let (tx, rx) = mpsc::channel();
        let probe = Arc::new(Probe {
            gate: Mutex::new(Some(rx)),
            ..Probe::default()
        });
        let g = Arc::new(GroupCommit::new(probe.clone()));
        // The first batch leads a write, which blocks in the journal.
        let t0 = g.enqueue(vec![rm(0)]);
        let first = {
            let g = g.clone();
            std::thread::spawn(move || g.wait(t0))
        };
        while probe.entered.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        // Three more batches and a removal queue up meanwhile, each waiting on its own thread.
        let waiters: Vec<_> = (1..=3u8)
            .map(|b| {
                let t = g.enqueue(vec![rm(b.into())]);
                let g = g.clone();
                std::thread::spawn(move || g.wait(t))
            })
            .collect();
        g.forget(&[gone(9, true)]);
        tx.send(()).unwrap();
        first.join().unwrap().unwrap();
        // Let the second write through too.
        tx.send(()).unwrap();
        for w in waiters {
            w.join().unwrap().unwrap();
        }
        let writes = probe.writes.lock().unwrap().clone();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(writes[0], vec![rm(0)]);
        // Queue order, in one write.
        let mut second = writes[1].clone();
        assert_eq!(second.pop(), Some(JournalOp::Settle(9)));
        second.sort_by_key(|op| format!("{op:?}"));
        assert_eq!(second, vec![rm(1), rm(2), rm(3)]);
        assert_eq!(g.writes(), 2);
        assert_eq!(g.queued(), 0);
    }

    #[test]
    fn a_failed_write_fails_exactly_its_tickets() {
        let probe = Arc::new(Probe::default());
        let g = GroupCommit::new(probe.clone());
        let ok = g.enqueue(vec![rm(1)]);
        g.wait(ok).unwrap();
        probe.fail.store(true, Ordering::SeqCst);
        let (a, b) = (g.enqueue(vec![rm(2)]), g.enqueue(vec![rm(3)]));
        let e = g.wait(a).unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        // b was in the same write: same answer, without another write.
        assert!(g.wait(b).is_err());
        assert_eq!(probe.writes.lock().unwrap().len(), 2);
        probe.fail.store(false, Ordering::SeqCst);
        let c = g.enqueue(vec![rm(4)]);
        g.wait(c).unwrap();
        // An old ticket's answer is still the old one's (settled, not failed any more).
        g.wait(ok).unwrap();
    }

    #[test]
    fn flush_writes_queued_removals_and_nothing_when_idle() {
        let probe = Arc::new(Probe::default());
        let g = GroupCommit::new(probe.clone());
        g.flush();
        assert!(probe.writes.lock().unwrap().is_empty());
        g.forget(&[gone(1, false), gone(2, true)]);
        g.forget(&[]);
        g.flush();
        assert_eq!(
            *probe.writes.lock().unwrap(),
            vec![vec![rm(1), JournalOp::Settle(2)]]
        );
    }
}

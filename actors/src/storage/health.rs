//! Detecting a failed store: the first I/O error on the database file marks it failed for good.
//!
//! Role: after an I/O error (a full disk, EIO) redb refuses every later operation on that
//! `Database` (`PreviousIo`) until it is closed and opened again, and opening repairs the file to
//! its last committed state. Nothing inside the process can bring the store back, so the node must
//! notice, refuse work it cannot make durable, and get itself restarted. This module provides the
//! two pieces storage needs for that:
//!
//! - `StorageHealth`: a set-once flag with the first failure's reason (the operation, the file and
//!   the OS error). It is shared with `NodeStats`, so `/health`, the systemd watchdog, admission
//!   and the block producer read it without touching storage.
//! - `Watched`: a `StorageBackend` wrapper through which every byte the database reads or writes
//!   passes. It marks the health on any failed I/O call and logs one `ERROR` naming storage and
//!   the OS error. Watching the backend rather than the callers means a failure is caught
//!   wherever it happens (a block commit, a journal write, an executor's snapshot read) with the
//!   OS error intact; the callers' later errors only say `PreviousIo`.
//!
//! Invariants: the flag only goes from healthy to failed (never back: a reopened store is a new
//! `Storage` with a new `StorageHealth`); the reason is the first failure's; a failure is logged at
//! `ERROR` once, and repeats are rate-limited.

use std::io;
use std::ops::Bound;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redb::{BackendError, StorageBackend};

use crate::ratelimit::LogLimiter;

static REPEAT_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// Whether the node's store still works. Healthy until the first I/O failure, failed after.
#[derive(Debug, Default)]
pub struct StorageHealth {
    failed: AtomicBool,
    reason: OnceLock<String>,
}

impl StorageHealth {
    /// True once the store has failed; it stays failed until the node reopens storage.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The first failure: what the store was doing, on which file, and the OS error.
    pub fn failure(&self) -> Option<&str> {
        if self.is_failed() {
            self.reason.get().map(String::as_str)
        } else {
            None
        }
    }

    /// Marks the store failed. Returns true for the first failure (whose reason is kept).
    pub fn mark_failed(&self, reason: String) -> bool {
        let first = self.reason.set(reason).is_ok();
        // The reason is stored before the flag, so a reader that sees the flag sees a reason.
        self.failed.store(true, Ordering::Release);
        first
    }
}

/// A backend that reports its I/O failures to a `StorageHealth`.
#[derive(Debug)]
pub(crate) struct Watched<B> {
    inner: B,
    health: std::sync::Arc<StorageHealth>,
    /// The file, for the log line and the reason ("memory" for the in-memory backend).
    name: String,
}

impl<B: StorageBackend> Watched<B> {
    pub(crate) fn new(inner: B, health: std::sync::Arc<StorageHealth>, name: String) -> Self {
        Watched {
            inner,
            health,
            name,
        }
    }

    fn watch<T>(&self, op: &str, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            self.report(op, e, e.raw_os_error());
        }
        result
    }

    fn report(&self, op: &str, e: &dyn std::fmt::Display, os_error: Option<i32>) {
        let reason = format!("{op} {}: {e}", self.name);
        if self.health.mark_failed(reason) {
            tracing::error!(
                file = %self.name,
                op,
                error = %e,
                os_error,
                "storage failed: I/O error on the database file; no more blocks or \
                 transactions until the node reopens it (free disk space, then restart)"
            );
        } else if let Some(suppressed) = REPEAT_LOG.allow() {
            tracing::error!(
                file = %self.name,
                op,
                error = %e,
                suppressed,
                "storage failed: I/O error on the database file (repeated)"
            );
        }
    }
}

// Every method delegates. The five I/O methods and `unlock_range` are watched: a failure of any
// of them makes redb refuse every later operation. `close` is not: it runs when the database is
// dropped, after the node has decided to stop. Acquiring locks is not either: that happens when
// the database is opened, and a conflict there is an open error the node reports itself.
impl<B: StorageBackend> StorageBackend for Watched<B> {
    fn len(&self) -> Result<u64, io::Error> {
        self.watch("reading the length of", self.inner.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.watch("reading", self.inner.read(offset, out))
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.watch("resizing", self.inner.set_len(len))
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.watch("syncing", self.inner.sync_data())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.watch("writing", self.inner.write(offset, data))
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        let result = self.inner.unlock_range(start, end);
        if let Err(e) = &result {
            let os_error = match e {
                BackendError::Io(io) => io.raw_os_error(),
                _ => None,
            };
            self.report("unlocking a range of", e, os_error);
        }
        result
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

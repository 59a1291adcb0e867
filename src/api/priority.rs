//! Scheduling priority of the threads that verify and admit submissions.
//!
//! Under a flood (more signed transactions offered than blocks can commit), signature
//! verification on the API's blocking pool wants every core, and so does block production (the
//! mempool's selection, execution, the commit). With equal priorities the scheduler shares the
//! cores among all runnable threads, so the more requests verify at once, the less CPU the one
//! block in production gets: blocks grow, each takes longer, and the committed rate falls below
//! what the node sustains at a lower offered load (measured: RUNBOOK "What bounds the node
//! now"), while the backlog and the memory it holds grow. Admission can always wait (the
//! client retries, the mempool refuses when full); the chain's progress should not.
//!
//! So a blocking-pool thread lowers its own priority (`api.admission_nice`, default
//! [`ADMISSION_NICE`]) the first time it
//! verifies or admits a batch: when block production is runnable it gets the core first, and
//! when it is not (between blocks, an idle producer) verification still uses every core, since a
//! lower priority only matters when there is contention.
//!
//! Invariants:
//! - Only the calling thread changes, once (a thread-local flag), and only towards a lower
//!   priority, which needs no privilege (raising it back would need `CAP_SYS_NICE`, so a thread
//!   stays lowered for its life; the blocking pool's other users, backups and offline reads,
//!   are no more urgent than admission).
//! - It changes no decision: what is accepted and in which order is the same, only when it runs.
//! - A failure (a seccomp filter, a non-Linux build) leaves the thread as it was: the node works,
//!   only without the priority split; it is logged once.

use std::cell::Cell;

/// The niceness the admission threads take: +10 gives a thread about a tenth of the CPU weight of
/// a normal (0) one when both are runnable on a core (Linux's weight table: 110 against 1024).
pub const ADMISSION_NICE: i32 = 10;

thread_local! {
    static LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Lowers the calling thread's priority to `nice` (`api.admission_nice`; 0: leave it) unless
/// already done on this thread. Cheap after the first call (one thread-local read).
pub fn lower_this_thread(nice: i32) {
    if nice <= 0 || LOWERED.with(Cell::get) {
        return;
    }
    LOWERED.with(|l| l.set(true));
    if let Err(e) = set_this_thread_nice(nice) {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                error = %e,
                "could not lower the admission threads' priority; block production shares the cores with them"
            );
        });
    }
}

#[cfg(target_os = "linux")]
fn set_this_thread_nice(nice: i32) -> std::io::Result<()> {
    // On Linux `setpriority(PRIO_PROCESS, tid)` applies to that one thread (see setpriority(2),
    // BUGS): each thread has its own nice value. Never lower than it already is (a unit may start
    // the whole node niced).
    let tid = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(tid))?;
    if now >= nice {
        return Ok(());
    }
    rustix::process::setpriority_process(Some(tid), nice)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_this_thread_nice(_nice: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "per-thread priority is only set on Linux",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// This thread's nice value.
    fn this_thread_nice() -> std::io::Result<i32> {
        Ok(rustix::process::getpriority_process(Some(
            rustix::thread::gettid(),
        ))?)
    }

    #[test]
    fn lowers_only_the_calling_thread_once() {
        let main_before = this_thread_nice().unwrap();
        let (first, second) = std::thread::spawn(|| {
            let before = this_thread_nice().unwrap();
            lower_this_thread(ADMISSION_NICE);
            let first = this_thread_nice().unwrap();
            lower_this_thread(ADMISSION_NICE);
            (
                before.max(ADMISSION_NICE).eq(&first),
                this_thread_nice().unwrap(),
            )
        })
        .join()
        .unwrap();
        assert!(first, "the thread takes ADMISSION_NICE (or stays lower)");
        assert!(second >= ADMISSION_NICE);
        assert_eq!(
            this_thread_nice().unwrap(),
            main_before,
            "other threads keep theirs"
        );
    }

    #[test]
    fn zero_leaves_the_thread_alone() {
        let (before, after) = std::thread::spawn(|| {
            let before = this_thread_nice().unwrap();
            lower_this_thread(0);
            (before, this_thread_nice().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn never_raises_a_thread_that_is_already_lower() {
        let nice = std::thread::spawn(|| {
            set_this_thread_nice(ADMISSION_NICE + 5).unwrap();
            lower_this_thread(ADMISSION_NICE);
            this_thread_nice().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(nice, ADMISSION_NICE + 5);
    }
}

//! The node's one health rule: is this node fit to serve, and would a restart help?
//!
//! Role: turn what the node shows at one instant (an [`Observation`], read from atomics) into a
//! [`Verdict`] for the node's role. Every consumer asks this module and nothing else: `/health`
//! on the API and the health listener (status, `checks`, `reason`), the systemd watchdog
//! ([`Verdict::watchdog_ok`]) and the `STATUS=` line sent to systemd ([`Verdict::status_line`]).
//!
//! Invariants:
//! - Actix-free and pure: the same observation always gives the same verdict, so the rule is
//!   unit-tested without a node, and the callers read only atomics (never an actor message), so
//!   a verdict is available while an actor is stuck. Imports no actor module (only `metrics`
//!   for the stats it reads).
//! - Problems are reported in a fixed order (storage, supervisor, head, running); `reason` is
//!   the first, because the first is the cause of the others (a failed store stops the head).
//! - Two questions, one rule: a node is *healthy* when it has no problem at all; the watchdog
//!   asks only whether a process restart is the fix ([`Problem::restart_fixes`]): a failed store
//!   (reopening repairs it) or a stalled supervisor (nothing in-process can recover it). A stale
//!   head is unhealthy but left to the supervisor, which replaces a stuck producer itself, and a
//!   node that is starting or stopping is not restarted for it.
//! - Role-aware: the sequencer's head goes stale when it stops producing (check
//!   `block_production`); a follower's when it stops applying blocks (check `head`). The
//!   sequencer also reports whether it takes transactions (`accepting_transactions`,
//!   informational: refusing them while stopping is correct, not a fault).
//! - Degraded, not unhealthy: the bridge's anchoring backlog above `bridge.max_backlog`
//!   ([`Problem::BridgeBacklog`], check `bridge`) means the node serves but its blocks are not
//!   reaching the L0. `/health` answers 200 with `status: "degraded"` and the `reason` (load
//!   balancers keep sending traffic; operators and alerts see it), and neither the watchdog nor
//!   the supervisor restarts for it: a restart does not fix an unreachable L0
//!   ([`Problem::degrades_only`]). It comes last in the order, so any real fault is the reason.
//! - Extending it: a later check (the bridge's anchoring backlog, a follower's sync lag) is one
//!   more optional field of [`Observation`], one threshold in [`HealthRule`], one [`Problem`]
//!   variant placed in the order above; callers need no change.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::metrics::NodeStats;

/// What the process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Orders transactions and produces blocks.
    Sequencer,
    /// Re-executes and verifies the sequencer's blocks.
    Follower,
}

impl Role {
    /// The role as operators write it (`--role=...`) and read it in `STATUS=` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sequencer => "sequencer",
            Role::Follower => "follower",
        }
    }

    /// The `checks` key of the head-freshness check.
    fn head_check(self) -> &'static str {
        match self {
            Role::Sequencer => "block_production",
            Role::Follower => "head",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The thresholds of the rule for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRule {
    pub role: Role,
    /// The supervisor is stalled after this long without a heartbeat round.
    pub supervisor_stall: Duration,
    /// The head is stale after this long without a new block.
    pub head_stale: Duration,
    /// With the bridge on: committed blocks not yet anchored beyond which the node is degraded
    /// (`bridge.max_backlog`); `None` with the bridge off.
    pub max_bridge_backlog: Option<u64>,
}

/// The head may go this long without a block however short `block_time` is: a block of slow
/// calls, or a busy host, is not an outage.
const MIN_HEAD_STALE: Duration = Duration::from_secs(10);

/// The supervisor may go this long between rounds however short its interval is: a loaded host
/// delays timers, and that is not a stall.
const MIN_SUPERVISOR_STALL: Duration = Duration::from_secs(1);

impl HealthRule {
    /// The rule for a node of `role` whose supervisor heartbeats every `heartbeat_interval`
    /// (`supervisor.heartbeat_interval`) and whose blocks come every `block_time`: the
    /// supervisor is stalled after three intervals (counted as at least [`MIN_SUPERVISOR_STALL`]
    /// each), the head stale after five block intervals (at least [`MIN_HEAD_STALE`]).
    pub fn new(role: Role, heartbeat_interval: Duration, block_time: Duration) -> Self {
        HealthRule {
            role,
            supervisor_stall: heartbeat_interval
                .max(MIN_SUPERVISOR_STALL)
                .saturating_mul(3),
            head_stale: block_time.saturating_mul(5).max(MIN_HEAD_STALE),
            max_bridge_backlog: None,
        }
    }

    /// The same rule, also judging the bridge's backlog against `max_backlog`.
    pub fn with_bridge(mut self, max_backlog: u64) -> Self {
        self.max_bridge_backlog = Some(max_backlog);
        self
    }

    /// Judges one observation.
    pub fn assess(&self, o: &Observation) -> Verdict {
        let mut problems = Vec::new();
        if let Some(reason) = &o.storage_failure {
            problems.push(Problem::StorageFailed(reason.clone()));
        }
        // After storage, before the head: a halted sync is why a follower's head stops.
        if let Some(reason) = &o.sync_halted {
            problems.push(Problem::SyncHalted(reason.clone()));
        }
        // Like the head below, judged from the node's start until the first round is in: the
        // supervisor runs on its own thread and may not have finished one when READY is sent.
        let heartbeat_age = o
            .now_ms
            .saturating_sub(o.last_heartbeat_ms.max(o.started_ms));
        let supervisor_ok = u128::from(heartbeat_age) <= self.supervisor_stall.as_millis();
        if !supervisor_ok {
            problems.push(Problem::SupervisorStalled {
                for_ms: heartbeat_age,
            });
        }
        // A node that has made no block yet is judged from its start, not from the epoch.
        let since_block = o
            .now_ms
            .saturating_sub(o.last_block_at_ms.max(o.started_ms));
        let head_ok = u128::from(since_block) <= self.head_stale.as_millis();
        if !head_ok {
            problems.push(Problem::StaleHead {
                for_ms: since_block,
            });
        }
        if !o.running {
            problems.push(Problem::NotRunning);
        }
        let bridge_ok = match self.max_bridge_backlog {
            Some(max) if o.bridge_backlog > max => {
                problems.push(Problem::BridgeBacklog {
                    blocks: o.bridge_backlog,
                    max,
                });
                Some(false)
            }
            Some(_) => Some(true),
            None => None,
        };
        let storage_ok = o.storage_failure.is_none();
        let mut checks = vec![
            ("storage", storage_ok),
            ("supervisor", supervisor_ok),
            (self.role.head_check(), head_ok),
        ];
        if self.role == Role::Follower {
            checks.push(("sync", o.sync_halted.is_none()));
        }
        if let Some(accepting) = o.accepting {
            checks.push(("accepting_transactions", accepting && storage_ok));
        }
        if let Some(ok) = bridge_ok {
            checks.push(("bridge", ok));
        }
        Verdict {
            role: self.role,
            checks,
            problems,
            height: o.height,
            mempool_size: o.mempool_size,
        }
    }
}

/// What the node shows at one instant. Read from atomics only (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Unix ms now.
    pub now_ms: u64,
    /// Unix ms when the node started.
    pub started_ms: u64,
    /// True between "all listeners bound" and the start of a stop.
    pub running: bool,
    /// Why the store failed, once it has.
    pub storage_failure: Option<String>,
    /// Unix ms of the supervisor's last heartbeat round.
    pub last_heartbeat_ms: u64,
    /// Unix ms of the last block committed (0: none since start).
    pub last_block_at_ms: u64,
    /// Whether new transactions are taken; `None` for a role that takes none.
    pub accepting: Option<bool>,
    /// Height of the committed head.
    pub height: u64,
    /// Pending transactions; `None` for a role without a mempool.
    pub mempool_size: Option<u64>,
    /// Committed blocks not anchored on the L0 yet (judged only with the bridge on).
    pub bridge_backlog: u64,
    /// Why a follower's sync halted (the sequencer served a chain that does not verify); set
    /// by the caller, `read` leaves it `None`.
    pub sync_halted: Option<String>,
}

impl Observation {
    /// Reads the node's live numbers. `accepting` is `None` for a role without a mempool (then
    /// the mempool size is not reported either).
    pub fn read(stats: &NodeStats, accepting: Option<bool>, now_ms: u64) -> Self {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let uptime_ms = u64::try_from(stats.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Observation {
            now_ms,
            started_ms: now_ms.saturating_sub(uptime_ms),
            running: stats.running.load(Ordering::Relaxed),
            storage_failure: stats.storage_health.failure().map(str::to_owned),
            last_heartbeat_ms: get(&stats.last_heartbeat_ms),
            last_block_at_ms: get(&stats.last_block_at_ms),
            accepting,
            height: get(&stats.block_height),
            mempool_size: accepting.map(|_| get(&stats.mempool_size)),
            bridge_backlog: get(&stats.bridge_backlog),
            sync_halted: None,
        }
    }
}

/// One thing wrong with the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The store failed (an I/O error); only reopening it repairs it.
    StorageFailed(String),
    /// A follower refused the sequencer's chain and stopped syncing: an operator must act
    /// (RUNBOOK "Follower"); a restart alone refetches the same chain.
    SyncHalted(String),
    /// The supervisor has not completed a heartbeat round for this long: actors that die or
    /// hang are no longer replaced.
    SupervisorStalled { for_ms: u64 },
    /// No block for this long.
    StaleHead { for_ms: u64 },
    /// Starting or stopping.
    NotRunning,
    /// More committed blocks than allowed are not anchored on the L0 (degraded only).
    BridgeBacklog { blocks: u64, max: u64 },
}

impl Problem {
    /// Whether restarting the process is the fix (what the systemd watchdog acts on).
    pub fn restart_fixes(&self) -> bool {
        matches!(
            self,
            Problem::StorageFailed(_) | Problem::SupervisorStalled { .. }
        )
    }

    /// Whether the node still serves with this problem (`/health` 200, status `degraded`).
    pub fn degrades_only(&self) -> bool {
        matches!(self, Problem::BridgeBacklog { .. })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::StorageFailed(reason) => write!(f, "storage failed: {reason}"),
            Problem::SyncHalted(reason) => write!(f, "sync halted: {reason}"),
            Problem::SupervisorStalled { .. } => f.write_str("supervisor stopped heartbeating"),
            Problem::StaleHead { for_ms } => write!(f, "no block for {for_ms} ms"),
            Problem::NotRunning => f.write_str("not running (starting or stopping)"),
            Problem::BridgeBacklog { blocks, max } => write!(
                f,
                "bridge backlog: {blocks} blocks not anchored on the L0 (max {max})"
            ),
        }
    }
}

/// The rule's answer for one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub role: Role,
    /// Each check by its `/health` name, in order; `true` is passing.
    pub checks: Vec<(&'static str, bool)>,
    /// Everything wrong, in the module's fixed order.
    pub problems: Vec<Problem>,
    pub height: u64,
    pub mempool_size: Option<u64>,
}

impl Verdict {
    /// No problem at all: `/health` answers 200.
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// The first problem: what `/health` names as `reason`.
    pub fn reason(&self) -> Option<&Problem> {
        self.problems.first()
    }

    /// Only problems the node serves with (or none): `/health` answers 200, with status
    /// `degraded` when there is one.
    pub fn serving(&self) -> bool {
        self.problems.iter().all(Problem::degrades_only)
    }

    /// `healthy`, `degraded` or `unhealthy`: the `/health` `status`.
    pub fn status(&self) -> &'static str {
        if self.healthy() {
            "healthy"
        } else if self.serving() {
            "degraded"
        } else {
            "unhealthy"
        }
    }

    /// Whether to pet the systemd watchdog: no problem that a restart would fix.
    pub fn watchdog_ok(&self) -> bool {
        !self.problems.iter().any(Problem::restart_fixes)
    }

    /// The `STATUS=` text for systemd (`systemctl status` shows it): role, health, height and,
    /// for a role with a mempool, its size. One line, fields separated by `; `.
    pub fn status_line(&self) -> String {
        let health = match self.reason() {
            None => "healthy".to_owned(),
            Some(p) => format!("{} ({p})", self.status()),
        };
        let mut line = format!("{}: {health}; height {}", self.role, self.height);
        if let Some(size) = self.mempool_size {
            line.push_str(&format!("; mempool {size}"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn rule(role: Role) -> HealthRule {
        HealthRule::new(role, Duration::from_secs(1), Duration::from_secs(1))
    }

    /// A sequencer one minute up, heartbeating, with a block a second ago.
    fn fine() -> Observation {
        Observation {
            now_ms: NOW,
            started_ms: NOW - 60_000,
            running: true,
            storage_failure: None,
            last_heartbeat_ms: NOW - 500,
            last_block_at_ms: NOW - 1_000,
            accepting: Some(true),
            height: 42,
            mempool_size: Some(7),
            bridge_backlog: 0,
            sync_halted: None,
        }
    }

    #[test]
    fn a_bridge_backlog_degrades_but_never_restarts() {
        let rule = rule(Role::Sequencer).with_bridge(100);
        let mut o = fine();
        o.bridge_backlog = 100;
        let v = rule.assess(&o);
        assert!(v.healthy() && check(&v, "bridge"));
        o.bridge_backlog = 101;
        let v = rule.assess(&o);
        assert!(!v.healthy() && v.serving() && v.watchdog_ok());
        assert_eq!(v.status(), "degraded");
        assert!(!check(&v, "bridge"));
        assert_eq!(
            v.reason(),
            Some(&Problem::BridgeBacklog {
                blocks: 101,
                max: 100
            })
        );
        assert!(
            v.status_line()
                .contains("degraded (bridge backlog: 101 blocks")
        );
        // A real fault comes first and makes the node unhealthy.
        o.storage_failure = Some("disk full".into());
        let v = rule.assess(&o);
        assert_eq!(v.status(), "unhealthy");
        assert!(matches!(v.reason(), Some(Problem::StorageFailed(_))));
        // With the bridge off the backlog is not judged and no `bridge` check is shown.
        let v = super::tests::rule(Role::Sequencer).assess(&Observation {
            bridge_backlog: 10_000,
            ..fine()
        });
        assert!(v.healthy() && v.checks.iter().all(|(n, _)| *n != "bridge"));
    }

    fn check(v: &Verdict, name: &str) -> bool {
        v.checks
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no check {name} in {:?}", v.checks))
            .1
    }

    #[test]
    fn thresholds_come_from_the_settings() {
        let r = rule(Role::Sequencer);
        assert_eq!(r.supervisor_stall, Duration::from_secs(3));
        // Five block intervals, never under ten seconds.
        assert_eq!(r.head_stale, Duration::from_secs(10));
        let slow = HealthRule::new(
            Role::Sequencer,
            Duration::from_secs(2),
            Duration::from_secs(10),
        );
        assert_eq!(slow.head_stale, Duration::from_secs(50));
        assert_eq!(slow.supervisor_stall, Duration::from_secs(6));
        let fast = HealthRule::new(
            Role::Sequencer,
            Duration::from_millis(100),
            Duration::from_millis(100),
        );
        assert_eq!(fast.supervisor_stall, Duration::from_secs(3));
    }

    #[test]
    fn a_working_sequencer_is_healthy() {
        let v = rule(Role::Sequencer).assess(&fine());
        assert!(v.healthy() && v.watchdog_ok(), "{v:?}");
        assert_eq!(v.reason(), None);
        let names: Vec<_> = v.checks.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "storage",
                "supervisor",
                "block_production",
                "accepting_transactions"
            ]
        );
        assert!(v.checks.iter().all(|(_, ok)| *ok));
        assert_eq!(v.status_line(), "sequencer: healthy; height 42; mempool 7");
    }

    #[test]
    fn a_stale_head_is_unhealthy_but_left_to_the_supervisor() {
        let mut o = fine();
        o.last_block_at_ms = NOW - 10_001;
        let v = rule(Role::Sequencer).assess(&o);
        assert!(!v.healthy());
        assert!(!check(&v, "block_production"));
        assert_eq!(v.reason(), Some(&Problem::StaleHead { for_ms: 10_001 }));
        assert_eq!(v.reason().unwrap().to_string(), "no block for 10001 ms");
        assert!(v.watchdog_ok(), "the supervisor replaces a stuck producer");
        // Exactly at the threshold is still fresh.
        o.last_block_at_ms = NOW - 10_000;
        assert!(rule(Role::Sequencer).assess(&o).healthy());
    }

    #[test]
    fn a_node_without_blocks_yet_is_judged_from_its_start() {
        let mut o = fine();
        o.last_block_at_ms = 0;
        o.started_ms = NOW - 2_000;
        assert!(rule(Role::Sequencer).assess(&o).healthy());
        o.started_ms = NOW - 20_000;
        let v = rule(Role::Sequencer).assess(&o);
        assert_eq!(v.reason(), Some(&Problem::StaleHead { for_ms: 20_000 }));
    }

    #[test]
    fn a_stalled_supervisor_is_unhealthy_and_stops_the_watchdog() {
        let mut o = fine();
        o.last_heartbeat_ms = NOW - 3_001;
        let v = rule(Role::Sequencer).assess(&o);
        assert!(!v.healthy() && !v.watchdog_ok());
        assert!(!check(&v, "supervisor"));
        assert_eq!(
            v.reason().unwrap().to_string(),
            "supervisor stopped heartbeating"
        );
        // A heartbeat round from the future (clock step) is not a stall.
        o.last_heartbeat_ms = NOW + 5_000;
        assert!(rule(Role::Sequencer).assess(&o).healthy());
    }

    #[test]
    fn a_supervisor_without_a_round_yet_is_judged_from_the_start() {
        let mut o = fine();
        o.last_heartbeat_ms = 0;
        o.started_ms = NOW - 100;
        let v = rule(Role::Sequencer).assess(&o);
        assert!(v.healthy() && v.watchdog_ok(), "{v:?}");
        o.started_ms = NOW - 3_001;
        let v = rule(Role::Sequencer).assess(&o);
        assert_eq!(
            v.reason(),
            Some(&Problem::SupervisorStalled { for_ms: 3_001 })
        );
    }

    #[test]
    fn a_failed_store_comes_first_and_stops_the_watchdog() {
        let mut o = fine();
        o.storage_failure = Some("disk full".into());
        // The failed store also stops blocks and the supervisor; storage is named as the cause.
        o.last_block_at_ms = NOW - 60_000;
        o.last_heartbeat_ms = NOW - 60_000;
        let v = rule(Role::Sequencer).assess(&o);
        assert!(!v.healthy() && !v.watchdog_ok());
        assert_eq!(v.reason().unwrap().to_string(), "storage failed: disk full");
        assert_eq!(v.problems.len(), 3);
        assert!(!check(&v, "storage"));
        assert!(
            !check(&v, "accepting_transactions"),
            "a failed store takes no transactions"
        );
        assert_eq!(
            v.status_line(),
            "sequencer: unhealthy (storage failed: disk full); height 42; mempool 7"
        );
    }

    #[test]
    fn a_node_starting_or_stopping_is_unhealthy_but_not_restarted() {
        let mut o = fine();
        o.running = false;
        o.accepting = Some(false);
        let v = rule(Role::Sequencer).assess(&o);
        assert!(!v.healthy() && v.watchdog_ok());
        assert_eq!(v.reason(), Some(&Problem::NotRunning));
        assert!(!check(&v, "accepting_transactions"));
        // Refusing transactions is reported, not a problem of its own.
        o.running = true;
        let v = rule(Role::Sequencer).assess(&o);
        assert!(v.healthy());
        assert!(!check(&v, "accepting_transactions"));
    }

    #[test]
    fn a_follower_has_a_head_check_and_no_mempool() {
        let mut o = fine();
        o.accepting = None;
        o.mempool_size = None;
        let v = rule(Role::Follower).assess(&o);
        assert!(v.healthy());
        let names: Vec<_> = v.checks.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["storage", "supervisor", "head", "sync"]);
        assert_eq!(v.status_line(), "follower: healthy; height 42");
        o.last_block_at_ms = NOW - 30_000;
        let v = rule(Role::Follower).assess(&o);
        assert!(!check(&v, "head") && v.watchdog_ok());
    }

    #[test]
    fn a_halted_follower_is_unhealthy_and_not_restarted() {
        let mut o = fine();
        o.accepting = None;
        o.mempool_size = None;
        o.last_block_at_ms = NOW - 30_000;
        o.sync_halted = Some("block 5 does not verify".into());
        let v = rule(Role::Follower).assess(&o);
        assert!(!v.healthy() && !check(&v, "sync"));
        // Named first: the halt is why the head stopped; a restart would not fix it.
        assert_eq!(
            v.reason().map(ToString::to_string).as_deref(),
            Some("sync halted: block 5 does not verify")
        );
        assert!(v.watchdog_ok());
    }

    #[test]
    fn observation_reads_the_live_numbers() {
        let stats = NodeStats::default();
        stats.running.store(true, Ordering::Relaxed);
        stats.block_height.store(9, Ordering::Relaxed);
        stats.mempool_size.store(3, Ordering::Relaxed);
        stats.last_heartbeat_ms.store(NOW - 10, Ordering::Relaxed);
        let o = Observation::read(&stats, Some(true), NOW);
        assert!(o.running && o.started_ms <= NOW);
        assert_eq!((o.height, o.mempool_size), (9, Some(3)));
        assert_eq!(o.storage_failure, None);
        let o = Observation::read(&stats, None, NOW);
        assert_eq!(o.mempool_size, None, "no mempool, no size");
        stats.storage_health.mark_failed("injected".into());
        let o = Observation::read(&stats, Some(true), NOW);
        assert_eq!(o.storage_failure.as_deref(), Some("injected"));
    }
}

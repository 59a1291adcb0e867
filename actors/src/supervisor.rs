//! Supervision of the node's actors: heartbeats, restarts, and the restart-storm exit.
//!
//! How it works (see stack-notes §5 for what actix does and does not do on its own):
//! - Every supervised actor runs alone on its own `Arbiter` (thread), so a handler that blocks
//!   can only stall that one actor, never the supervisor or the HTTP workers.
//! - Callers never hold a raw `Addr` of one incarnation: they hold a `Slot`, which always yields
//!   the current address; after a restart the next `get()` reaches the new instance.
//! - Every `heartbeat_interval` the supervisor sends `Heartbeat` to each actor with a deadline of
//!   `heartbeat_timeout`. A closed mailbox (the actor's task died in a panic) means "dead". No
//!   answer in time means "stuck" only if the actor also made no progress: an actor with a
//!   progress source (the executor: contract calls finished, and each `execution.timeout`
//!   slice a verification call runs past its first deadline) whose count moved since the
//!   heartbeat was sent is busy with legal work that the heartbeat waits behind, and is left
//!   alone (stack-notes §8). A call ends, or reports a slice, at least every
//!   `execution.timeout`, which settings keep strictly below `heartbeat_timeout`, so a busy
//!   executor always shows progress within a deadline, and a wedged one (no calls running)
//!   never does. Actors without a progress
//!   source answer heartbeats between short handlers, so for them silence is stuck: the mempool's
//!   handlers are bounded, and the block producer awaits the executor asynchronously, so it
//!   answers heartbeats while a block runs; a late producer heartbeat means its own thread is
//!   blocked, which no executor progress could excuse.
//! - Stuck or dead, a fresh instance is built from the actor's factory on a fresh Arbiter, the
//!   slot is pointed at it, and the old Arbiter is asked to stop (a blocked thread finishes or
//!   leaks on its own; nothing can pre-empt it).
//! - Factories rebuild actors from durable or shared state (storage, the shared pool, the VM),
//!   so a restart loses nothing committed and does nothing twice.
//! - Every restart is logged at WARN with actor and reason and counted in
//!   `accumen_actor_restarts_total{actor,reason}`. More than `max_restarts` restarts within
//!   `restart_window` is a restart storm: the supervisor logs an ERROR and stops the actix
//!   System with a non-zero exit code, so systemd restarts the whole process.
//! - An operator can list the children ([`ListActors`]) and restart one by name
//!   ([`RestartActor`], the admin listener's `POST /admin/actors/{name}/restart`): the same
//!   replacement as above, logged at WARN and counted with `reason="operator"`. Operator
//!   restarts do NOT count toward the restart-storm limit: the storm rule detects a node that
//!   cannot keep its actors alive by itself, and a deliberate restart is no evidence of that (an
//!   operator restarting the bridge twice during an L0 incident must not make the node exit).
//!   What bounds them instead: one actor cannot be restarted again by an operator before its
//!   current incarnation has answered a heartbeat (409 `restart_in_progress`), so a client in a
//!   loop makes at most one new Arbiter per actor per heartbeat, not an unbounded thread churn.
//! - Each heartbeat is tagged with the incarnation it was sent to; an answer (or a timeout, or
//!   a closed mailbox) from an incarnation that has since been replaced is ignored, so replacing
//!   an actor between rounds never makes the supervisor restart its fresh successor.
//! - At a graceful stop the node sends `StopSupervision` last (after the role's actors finished
//!   their work and the listeners closed): no more heartbeats or restarts, every child's Arbiter
//!   is asked to stop, and the supervisor stops.
//! - Its settings are the operator's `supervisor.*` keys: [`SupervisorConfig`] is deserialized
//!   straight from the node's configuration, so keys and defaults have one definition.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::metrics::{NodeMetrics, NodeStats, now_ms};

/// Values of the `reason` label of `accumen_actor_restarts_total`, every one exported at 0.
pub const RESTART_REASONS: [&str; 3] = ["stuck", "dead", "operator"];

/// Exit code of the process after a restart storm.
pub const RESTART_STORM_EXIT: i32 = 70;

/// A long block makes every heartbeat late; say so once per interval, not once per heartbeat.
static BUSY_LOG: crate::ratelimit::LogLimiter =
    crate::ratelimit::LogLimiter::new(Duration::from_secs(10));

/// Liveness probe every supervised actor answers.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Heartbeat;

/// Test-only fault injection: only with the `test-hooks` cargo feature (and in this crate's unit
/// tests); absent from a normal build, debug or release.
#[cfg(any(test, feature = "test-hooks"))]
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub enum TestHook {
    /// Block the actor's thread for this long.
    Hang(Duration),
    /// Panic inside a handler.
    Panic,
}

/// The current address of a supervised actor.
#[derive(Debug)]
pub struct Slot<A: Actor>(Arc<RwLock<Addr<A>>>);

impl<A: Actor> Clone for Slot<A> {
    fn clone(&self) -> Self {
        Slot(self.0.clone())
    }
}

impl<A: Actor> Slot<A> {
    /// A slot holding `addr`.
    pub fn new(addr: Addr<A>) -> Self {
        Slot(Arc::new(RwLock::new(addr)))
    }

    /// The address of the actor's current incarnation.
    pub fn get(&self) -> Addr<A> {
        // The lock only guards a pointer swap; a poisoned lock still holds a valid Addr.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, addr: Addr<A>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = addr;
    }
}

impl<A: Actor> Slot<A> {
    /// A typed sender for one message type that always reaches the current incarnation.
    pub fn port<M>(&self) -> Port<M>
    where
        A: Handler<M>,
        A::Context: actix::dev::ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let slot = self.clone();
        Port(Arc::new(move || slot.get().recipient()))
    }
}

/// A typed sender for the messages one actor uses of another: `Port<Select>` instead of a
/// `Slot<Mempool>`, so the sender does not know the receiver's type and a test can hand it a
/// recording fake ([`Port::fixed`]). Built from a [`Slot`], it resolves the receiver's current
/// incarnation on every send, so it survives supervisor restarts exactly as the slot does.
pub struct Port<M: Message + Send>(Arc<dyn Fn() -> Recipient<M> + Send + Sync>)
where
    M::Result: Send;

impl<M: Message + Send> Clone for Port<M>
where
    M::Result: Send,
{
    fn clone(&self) -> Self {
        Port(self.0.clone())
    }
}

impl<M: Message + Send> std::fmt::Debug for Port<M>
where
    M::Result: Send,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Port")
    }
}

impl<M: Message + Send + 'static> Port<M>
where
    M::Result: Send,
{
    /// A port to one fixed recipient (an unsupervised actor, or a test fake).
    pub fn fixed(recipient: Recipient<M>) -> Self {
        Port(Arc::new(move || recipient.clone()))
    }

    /// The current recipient.
    pub fn recipient(&self) -> Recipient<M> {
        (self.0)()
    }

    /// Sends and waits for the answer (see `Recipient::send`).
    pub fn send(&self, msg: M) -> actix::dev::RecipientRequest<M> {
        self.recipient().send(msg)
    }

    /// Sends without waiting; a full or closed mailbox drops the message.
    pub fn do_send(&self, msg: M) {
        self.recipient().do_send(msg)
    }
}

type PingFuture = Pin<Box<dyn Future<Output = Result<(), MailboxError>>>>;

/// Reads a monotonic count of work an actor has finished, without sending it a message.
pub type ProgressSource = Arc<dyn Fn() -> u64 + Send + Sync>;

/// One supervised actor, type-erased for the supervisor.
pub trait Child: Send {
    /// The actor's name in logs and metrics.
    fn name(&self) -> &'static str;
    /// Sends a heartbeat with a deadline.
    fn ping(&self, timeout: Duration) -> PingFuture;
    /// False once the current incarnation has died (its task ended, e.g. in a panic).
    fn alive(&self) -> bool;
    /// Work finished so far, if the actor reports it (see the module comment); `None` for an
    /// actor whose silence alone means stuck.
    fn progress(&self) -> Option<u64> {
        None
    }
    /// Replaces the actor with a fresh instance on a fresh Arbiter.
    fn restart(&mut self);
    /// Asks the actor's Arbiter to stop (the node's ordered shutdown; never restarted after).
    fn stop(&mut self);
    /// Delivers a test hook to the current incarnation.
    #[cfg(any(test, feature = "test-hooks"))]
    fn hook(&self, hook: TestHook);
}

type Factory<A> = Arc<dyn Fn() -> A + Send + Sync>;

/// A supervised actor: its slot, its factory and the Arbiter it runs on.
pub struct ChildSpec<A: Actor> {
    name: &'static str,
    slot: Slot<A>,
    factory: Factory<A>,
    arbiter: Arbiter,
    progress: Option<ProgressSource>,
}

/// Bounds every supervised actor type meets.
pub trait SupervisedActor:
    Actor<Context = Context<Self>> + Handler<Heartbeat> + HookHandler
{
}
impl<A> SupervisedActor for A where A: Actor<Context = Context<A>> + Handler<Heartbeat> + HookHandler
{}

/// With `test-hooks`, supervised actors also take test hooks; otherwise this is empty.
#[cfg(any(test, feature = "test-hooks"))]
pub trait HookHandler: Actor + Handler<TestHook> {}
#[cfg(any(test, feature = "test-hooks"))]
impl<A: Actor + Handler<TestHook>> HookHandler for A {}
#[cfg(not(any(test, feature = "test-hooks")))]
pub trait HookHandler {}
#[cfg(not(any(test, feature = "test-hooks")))]
impl<A> HookHandler for A {}

impl<A: Actor> std::fmt::Debug for ChildSpec<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .finish()
    }
}

impl<A: SupervisedActor> ChildSpec<A> {
    /// Starts the first instance of an actor on its own Arbiter.
    pub fn start(name: &'static str, factory: impl Fn() -> A + Send + Sync + 'static) -> Self {
        let factory: Factory<A> = Arc::new(factory);
        let arbiter = Arbiter::new();
        let f = factory.clone();
        let addr = A::start_in_arbiter(&arbiter.handle(), move |_| f());
        ChildSpec {
            name,
            slot: Slot::new(addr),
            factory,
            arbiter,
            progress: None,
        }
    }

    /// Gives the actor a progress source, so that a late heartbeat while the count moves means
    /// busy, not stuck. The source must outlive incarnations (read shared state, not the actor).
    pub fn with_progress(mut self, source: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(source));
        self
    }

    /// The slot callers use to reach this actor.
    pub fn slot(&self) -> Slot<A> {
        self.slot.clone()
    }
}

impl<A: SupervisedActor> Child for ChildSpec<A> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn ping(&self, timeout: Duration) -> PingFuture {
        let addr = self.slot.get();
        Box::pin(async move { addr.send(Heartbeat).timeout(timeout).await })
    }

    fn alive(&self) -> bool {
        self.slot.get().connected()
    }

    fn progress(&self) -> Option<u64> {
        self.progress.as_ref().map(|p| p())
    }

    fn restart(&mut self) {
        let arbiter = Arbiter::new();
        let f = self.factory.clone();
        let addr = A::start_in_arbiter(&arbiter.handle(), move |_| f());
        self.slot.set(addr);
        let old = std::mem::replace(&mut self.arbiter, arbiter);
        old.stop();
    }

    fn stop(&mut self) {
        self.arbiter.stop();
    }

    #[cfg(any(test, feature = "test-hooks"))]
    fn hook(&self, hook: TestHook) {
        self.slot.get().do_send(hook);
    }
}

/// Supervisor settings: the operator's `supervisor.*` keys, deserialized straight from the
/// node's configuration (the shell's `Settings` embeds this type, so the keys, their defaults
/// and the supervisor read one definition). Validation (each value at least the shell's
/// `MIN_INTERVAL`, `execution.timeout` below `heartbeat_timeout`) lives with the rest of the
/// settings rules in the shell, because it compares keys across sections.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// How often each supervised actor is pinged.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// An actor that has not answered within this, and has not made progress either (the
    /// executor reports calls finished), is treated as stuck and replaced. Must exceed
    /// `execution.timeout`: every call ends within that, so a busy executor always shows
    /// progress before this deadline.
    #[serde(with = "humantime_serde")]
    pub heartbeat_timeout: Duration,
    /// Restarts allowed within `restart_window` before the node gives up and exits.
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            // Twice the longest `execution.timeout` any shipped profile uses (low-latency: 5s),
            // leaving room for what happens between calls and is not cut by that timeout
            // (compiling a module on a cache miss, instantiation, merging, a loaded host).
            heartbeat_timeout: Duration::from_secs(10),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
        }
    }
}

/// The supervisor actor.
pub struct Supervisor {
    children: Vec<Box<dyn Child>>,
    waiting: Vec<bool>,
    /// Each child's progress when its outstanding heartbeat was sent.
    progress_at_ping: Vec<Option<u64>>,
    /// Each child's incarnation: 0 for the first instance, +1 on every restart.
    incarnation: Vec<u64>,
    /// When each child's current incarnation last answered a heartbeat; `None` until it has.
    answered: Vec<Option<Instant>>,
    /// Why each child's current incarnation was started; `None` for the first.
    last_reason: Vec<Option<&'static str>>,
    /// Set by `StopSupervision`: no restarts, heartbeats or operator restarts after it.
    stopping: bool,
    config: SupervisorConfig,
    metrics: NodeMetrics,
    stats: Arc<NodeStats>,
    /// Automatic restarts within `restart_window` (the storm rule; operator restarts excluded).
    restarts: VecDeque<Instant>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.children.iter().map(|c| c.name()).collect();
        f.debug_struct("Supervisor")
            .field("children", &names)
            .finish()
    }
}

impl Supervisor {
    pub fn new(
        children: Vec<Box<dyn Child>>,
        config: SupervisorConfig,
        metrics: NodeMetrics,
        stats: Arc<NodeStats>,
    ) -> Self {
        let n = children.len();
        let waiting = vec![false; n];
        let progress_at_ping = vec![None; n];
        // Export every series at 0 from the start: `increase()` needs a sample before the first
        // restart, or the first restart would never raise an alert.
        for child in &children {
            for reason in RESTART_REASONS {
                let _ = metrics.actor_restarts.get_or_create(&vec![
                    ("actor".to_string(), child.name().to_string()),
                    ("reason".to_string(), reason.to_string()),
                ]);
            }
        }
        Supervisor {
            children,
            waiting,
            progress_at_ping,
            incarnation: vec![0; n],
            answered: vec![None; n],
            last_reason: vec![None; n],
            stopping: false,
            config,
            metrics,
            stats,
            restarts: VecDeque::new(),
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.stats
            .last_heartbeat_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        for i in 0..self.children.len() {
            if self.waiting[i] {
                // The previous heartbeat is still within its deadline.
                continue;
            }
            self.waiting[i] = true;
            self.progress_at_ping[i] = self.children[i].progress();
            let ping = self.children[i].ping(self.config.heartbeat_timeout);
            let incarnation = self.incarnation[i];
            ctx.spawn(ping.into_actor(self).map(move |res, act, ctx| {
                if act.stopping || act.incarnation[i] != incarnation {
                    // Sent to an incarnation that has been replaced since: its answer says
                    // nothing about the current one (whose own heartbeat may be outstanding).
                    return;
                }
                act.waiting[i] = false;
                match res {
                    Ok(()) => act.answered[i] = Some(Instant::now()),
                    Err(MailboxError::Timeout) if act.children[i].alive() => {
                        if act.progressed(i) {
                            // Busy, not stuck: the next round pings again and compares anew,
                            // so an actor that stops progressing is caught one deadline later.
                            if let Some(suppressed) = BUSY_LOG.allow() {
                                tracing::warn!(
                                    actor = act.children[i].name(),
                                    suppressed,
                                    "actor busy: heartbeat not answered within \
                                     supervisor.heartbeat_timeout but work is progressing; \
                                     not restarted"
                                );
                            }
                        } else {
                            act.restart(i, "stuck", ctx)
                        }
                    }
                    // A heartbeat queued just before a panic can time out instead of failing
                    // fast; a dead actor is "dead" whichever way the ping ended.
                    Err(MailboxError::Timeout | MailboxError::Closed) => {
                        act.restart(i, "dead", ctx)
                    }
                }
            }));
        }
    }

    /// Whether child `i` reported progress since its last heartbeat was sent.
    fn progressed(&self, i: usize) -> bool {
        match (self.progress_at_ping[i], self.children[i].progress()) {
            (Some(before), Some(now)) => now != before,
            _ => false,
        }
    }

    /// Replaces child `i` with a fresh incarnation, logged and counted under `reason`.
    fn replace(&mut self, i: usize, reason: &'static str) {
        let name = self.children[i].name();
        self.metrics.restarted(name, reason);
        self.children[i].restart();
        self.incarnation[i] += 1;
        self.answered[i] = None;
        self.last_reason[i] = Some(reason);
        // A heartbeat still outstanding belongs to the old incarnation and will be ignored;
        // the next round pings the new one.
        self.waiting[i] = false;
    }

    fn restart(&mut self, i: usize, reason: &'static str, _ctx: &mut Context<Self>) {
        let name = self.children[i].name();
        tracing::warn!(actor = name, reason, "actor restarted by supervisor");
        self.replace(i, reason);
        let now = Instant::now();
        self.restarts.push_back(now);
        while let Some(first) = self.restarts.front() {
            if now.duration_since(*first) > self.config.restart_window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        if self.restarts.len() > self.config.max_restarts as usize {
            tracing::error!(
                restarts = self.restarts.len(),
                window = ?self.config.restart_window,
                "restart storm: more than supervisor.max_restarts actor restarts within \
                 supervisor.restart_window; exiting so that systemd restarts the node"
            );
            System::current().stop_with_code(RESTART_STORM_EXIT);
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.round(ctx);
        ctx.run_interval(self.config.heartbeat_interval, |act, ctx| act.round(ctx));
    }
}

/// Ends supervision, the last step of the node's ordered shutdown (the role's actors have
/// finished their work and the listeners are closed): no more heartbeats or restarts, every
/// child's Arbiter is asked to stop, and the supervisor stops itself.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopSupervision;

impl Handler<StopSupervision> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: StopSupervision, ctx: &mut Context<Self>) {
        self.stopping = true;
        for child in &mut self.children {
            tracing::debug!(actor = child.name(), "stopping");
            child.stop();
        }
        ctx.stop();
    }
}

/// What an operator sees of one supervised actor (`GET /admin/actors`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActorInfo {
    pub name: &'static str,
    /// `running`: the current incarnation answered a heartbeat; `restarting`: it was (re)started
    /// and has not answered one yet, or its task died and the next heartbeat replaces it.
    pub state: &'static str,
    /// 0 for the first instance, +1 per restart (any reason).
    pub incarnation: u64,
    /// Why the current incarnation was started: `stuck`, `dead`, `operator`; `None` for the first.
    pub last_restart_reason: Option<&'static str>,
    /// Milliseconds since the current incarnation last answered a heartbeat; `None` if it has not.
    pub last_heartbeat_ms_ago: Option<u64>,
}

/// Lists every supervised actor in supervision order.
#[derive(Debug, Message)]
#[rtype(result = "Vec<ActorInfo>")]
pub struct ListActors;

impl Supervisor {
    fn info(&self, i: usize, now: Instant) -> ActorInfo {
        let answered = self.answered[i];
        let state = if !self.children[i].alive() || answered.is_none() {
            "restarting"
        } else {
            "running"
        };
        ActorInfo {
            name: self.children[i].name(),
            state,
            incarnation: self.incarnation[i],
            last_restart_reason: self.last_reason[i],
            last_heartbeat_ms_ago: answered
                .map(|t| u64::try_from(now.duration_since(t).as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

impl Handler<ListActors> for Supervisor {
    type Result = MessageResult<ListActors>;
    fn handle(&mut self, _: ListActors, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        MessageResult(
            (0..self.children.len())
                .map(|i| self.info(i, now))
                .collect(),
        )
    }
}

/// An operator's restart of one actor by name: the supervisor's own replacement (fresh
/// instance from the factory on a fresh Arbiter), counted as `reason="operator"`, outside the
/// storm rule (module comment).
#[derive(Debug, Message)]
#[rtype(result = "Result<ActorInfo, RestartError>")]
pub struct RestartActor {
    pub name: String,
}

/// Why an operator restart was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartError {
    #[error("no supervised actor named {name:?}; actors: {}", .known.join(", "))]
    Unknown {
        name: String,
        known: Vec<&'static str>,
    },
    #[error(
        "actor {name} was restarted and has not answered a heartbeat yet; retry once it is \
         running (GET /admin/actors)"
    )]
    InProgress { name: &'static str },
    #[error("the node is stopping: supervision has ended")]
    Stopping,
}

impl Handler<RestartActor> for Supervisor {
    type Result = Result<ActorInfo, RestartError>;
    fn handle(&mut self, msg: RestartActor, _: &mut Context<Self>) -> Self::Result {
        if self.stopping {
            return Err(RestartError::Stopping);
        }
        let Some(i) = self.children.iter().position(|c| c.name() == msg.name) else {
            return Err(RestartError::Unknown {
                name: msg.name,
                known: self.children.iter().map(|c| c.name()).collect(),
            });
        };
        let name = self.children[i].name();
        if self.answered[i].is_none() && self.children[i].alive() {
            return Err(RestartError::InProgress { name });
        }
        tracing::warn!(
            actor = name,
            reason = "operator",
            "actor restarted by operator"
        );
        self.replace(i, "operator");
        Ok(self.info(i, Instant::now()))
    }
}

/// Delivers a test hook to the named actor; false if no actor has that name.
#[cfg(any(test, feature = "test-hooks"))]
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct InjectFault {
    pub actor: String,
    pub hook: TestHook,
}

#[cfg(any(test, feature = "test-hooks"))]
impl Handler<InjectFault> for Supervisor {
    type Result = bool;
    fn handle(&mut self, msg: InjectFault, _ctx: &mut Context<Self>) -> bool {
        match self.children.iter().find(|c| c.name() == msg.actor) {
            Some(c) => {
                c.hook(msg.hook);
                true
            }
            None => false,
        }
    }
}

/// What a test hook does inside the actor that receives it (shared by `supervised!` and the
/// generic actors that implement the handlers by hand).
#[cfg(any(test, feature = "test-hooks"))]
pub fn apply_test_hook(actor: &str, hook: TestHook) {
    match hook {
        TestHook::Hang(d) => {
            tracing::warn!(actor, ?d, "test hook: hanging");
            std::thread::sleep(d)
        }
        TestHook::Panic => panic!("test hook: panic in {actor}"),
    }
}

/// Implements `Heartbeat` (and, with `test-hooks`, `TestHook`) for an actor. Used inside this
/// crate only: the `cfg` below is evaluated in the crate that expands the macro.
#[macro_export]
macro_rules! supervised {
    ($actor:ty) => {
        impl ::actix::Handler<$crate::supervisor::Heartbeat> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::supervisor::Heartbeat, _: &mut Self::Context) {}
        }

        #[cfg(any(test, feature = "test-hooks"))]
        impl ::actix::Handler<$crate::supervisor::TestHook> for $actor {
            type Result = ();
            fn handle(&mut self, hook: $crate::supervisor::TestHook, _: &mut Self::Context) {
                match hook {
                    $crate::supervisor::TestHook::Hang(d) => {
                        ::tracing::warn!(actor = stringify!($actor), ?d, "test hook: hanging");
                        ::std::thread::sleep(d)
                    }
                    $crate::supervisor::TestHook::Panic => {
                        panic!("test hook: panic in {}", stringify!($actor))
                    }
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    struct Worker {
        generation: u32,
    }
    impl Actor for Worker {
        type Context = Context<Self>;
    }
    crate::supervised!(Worker);

    #[derive(Message)]
    #[rtype(result = "u32")]
    struct Generation;
    impl Handler<Generation> for Worker {
        type Result = u32;
        fn handle(&mut self, _: Generation, _: &mut Context<Self>) -> u32 {
            self.generation
        }
    }

    /// A "worker" whose factory counts the incarnations it built (`generation` = that count
    /// before it).
    fn counted_worker() -> (ChildSpec<Worker>, Arc<AtomicU32>) {
        let built = Arc::new(AtomicU32::new(0));
        let b = built.clone();
        let spec = ChildSpec::start("worker", move || Worker {
            generation: b.fetch_add(1, Ordering::SeqCst),
        });
        (spec, built)
    }

    /// A test's heartbeat timing and storm limit (the storm window is a minute in every test).
    fn timing(interval: Duration, timeout: Duration, max_restarts: u32) -> SupervisorConfig {
        SupervisorConfig {
            heartbeat_interval: interval,
            heartbeat_timeout: timeout,
            max_restarts,
            restart_window: Duration::from_secs(60),
        }
    }

    /// A supervisor over `spec` alone, counting into `metrics`.
    fn supervise<A: SupervisedActor>(
        spec: ChildSpec<A>,
        config: SupervisorConfig,
        metrics: &NodeMetrics,
    ) -> Addr<Supervisor> {
        Supervisor::new(
            vec![Box::new(spec)],
            config,
            metrics.clone(),
            Arc::default(),
        )
        .start()
    }

    fn restarts(m: &NodeMetrics, reason: &str) -> u64 {
        m.actor_restarts
            .get_or_create(&vec![
                ("actor".to_string(), "worker".to_string()),
                ("reason".to_string(), reason.to_string()),
            ])
            .get()
    }

    async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            actix::clock::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn stuck_and_dead_actors_are_replaced_and_counted() {
        let sys = System::new();
        sys.block_on(async {
            let (spec, _built) = counted_worker();
            let slot = spec.slot();
            let metrics = NodeMetrics::default();
            let config = timing(Duration::from_millis(50), Duration::from_millis(150), 10);
            let sup = supervise(spec, config, &metrics);
            assert_eq!(slot.get().send(Generation).await.unwrap(), 0);

            // A hung handler: detected as stuck, replaced, and the slot reaches the new one.
            assert!(
                sup.send(InjectFault {
                    actor: "worker".into(),
                    hook: TestHook::Hang(Duration::from_secs(2))
                })
                .await
                .unwrap()
            );
            wait_for("stuck restart", || restarts(&metrics, "stuck") == 1).await;
            assert_eq!(slot.get().send(Generation).await.unwrap(), 1);

            // A panicking handler: replaced. It is counted as "dead" when the closed mailbox is
            // seen, or as "stuck" when a heartbeat queued before the panic times out first.
            assert!(
                sup.send(InjectFault {
                    actor: "worker".into(),
                    hook: TestHook::Panic
                })
                .await
                .unwrap()
            );
            wait_for("restart after the panic", || {
                restarts(&metrics, "dead") + restarts(&metrics, "stuck") == 2
            })
            .await;
            assert_eq!(slot.get().send(Generation).await.unwrap(), 2);
            assert!(
                !sup.send(InjectFault {
                    actor: "nobody".into(),
                    hook: TestHook::Panic
                })
                .await
                .unwrap()
            );
            System::current().stop();
        });
    }

    /// Blocks the worker's thread for `steps` × `step`, reporting one unit of progress per step,
    /// like the executor running a long block of calls that each end in time.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Work {
        steps: u32,
        step: Duration,
        done: Arc<AtomicU64>,
    }
    impl Handler<Work> for Worker {
        type Result = ();
        fn handle(&mut self, w: Work, _: &mut Context<Self>) {
            for _ in 0..w.steps {
                std::thread::sleep(w.step);
                w.done.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn a_busy_actor_that_makes_progress_is_not_stuck_but_a_silent_one_is() {
        let sys = System::new();
        sys.block_on(async {
            let done = Arc::new(AtomicU64::new(0));
            let d = done.clone();
            let (spec, built) = counted_worker();
            let spec = spec.with_progress(move || d.load(Ordering::SeqCst));
            let slot = spec.slot();
            let metrics = NodeMetrics::default();
            let config = timing(Duration::from_millis(50), Duration::from_millis(300), 10);
            let _sup = supervise(spec, config, &metrics);

            // Busy for many heartbeat deadlines, finishing a unit of work every 20 ms: every
            // heartbeat in that time is late, none of them is a restart.
            let work = slot.get().send(Work {
                steps: 75,
                step: Duration::from_millis(20),
                done: done.clone(),
            });
            work.await.unwrap();
            assert_eq!(done.load(Ordering::SeqCst), 75);
            // One more full round after the work, so a verdict on its last heartbeat is in.
            let rounds = slot.get().send(Generation);
            assert_eq!(
                rounds.await.unwrap(),
                0,
                "the same incarnation did all the work"
            );
            actix::clock::sleep(Duration::from_millis(400)).await;
            assert_eq!(restarts(&metrics, "stuck") + restarts(&metrics, "dead"), 0);
            assert_eq!(built.load(Ordering::SeqCst), 1);

            // The same actor blocked without progress: stuck, replaced.
            slot.get().do_send(TestHook::Hang(Duration::from_secs(2)));
            wait_for("stuck restart", || restarts(&metrics, "stuck") == 1).await;
            assert_eq!(slot.get().send(Generation).await.unwrap(), 1);
            System::current().stop();
        });
    }

    /// The shutdown's last step: children stop, nothing is restarted for it, the supervisor ends.
    #[test]
    fn stop_supervision_stops_every_child_without_restarting_it() {
        let sys = System::new();
        sys.block_on(async {
            let spec = ChildSpec::start("worker", || Worker { generation: 0 });
            let slot = spec.slot();
            let metrics = NodeMetrics::default();
            let config = SupervisorConfig {
                heartbeat_interval: Duration::from_millis(20),
                heartbeat_timeout: Duration::from_millis(100),
                ..SupervisorConfig::default()
            };
            let sup = supervise(spec, config, &metrics);
            assert_eq!(slot.get().send(Generation).await.unwrap(), 0);
            sup.send(StopSupervision).await.unwrap();
            wait_for("the child to stop", || !slot.get().connected()).await;
            wait_for("the supervisor to stop", || !sup.connected()).await;
            // Several heartbeat intervals later the stopped child is still the same, stopped one.
            actix::clock::sleep(Duration::from_millis(200)).await;
            assert!(!slot.get().connected());
            assert_eq!(restarts(&metrics, "stuck") + restarts(&metrics, "dead"), 0);
            System::current().stop();
        });
    }

    #[test]
    fn restart_storm_stops_the_system_with_an_error_code() {
        let sys = System::new();
        sys.block_on(async {
            let spec = ChildSpec::start("worker", || Worker { generation: 0 });
            let slot = spec.slot();
            let config = timing(Duration::from_millis(20), Duration::from_millis(100), 1);
            let _sup = supervise(spec, config, &NodeMetrics::default());
            slot.get().do_send(TestHook::Panic);
            actix::clock::sleep(Duration::from_millis(200)).await;
            slot.get().do_send(TestHook::Panic);
        });
        assert_eq!(sys.run_with_code().ok(), Some(RESTART_STORM_EXIT));
    }

    async fn list(sup: &Addr<Supervisor>) -> ActorInfo {
        sup.send(ListActors).await.unwrap().remove(0)
    }

    /// The worker's listing once it has answered a heartbeat.
    async fn running(sup: &Addr<Supervisor>) -> ActorInfo {
        let mut info = list(sup).await;
        while info.state != "running" {
            actix::clock::sleep(Duration::from_millis(10)).await;
            info = list(sup).await;
        }
        info
    }

    /// An operator restart is the supervisor's replacement: fresh instance from the factory,
    /// reachable through the slot, counted as "operator", outside the storm rule, refused while
    /// the previous one has not answered a heartbeat, and unknown names list the known ones.
    #[test]
    fn operator_restart_replaces_the_actor_counts_it_and_is_outside_the_storm_rule() {
        let sys = System::new();
        sys.block_on(async {
            let (spec, built) = counted_worker();
            let slot = spec.slot();
            let metrics = NodeMetrics::default();
            // The timeout is long, so a loaded machine never adds a "stuck" restart of its own;
            // one restart allowed, so two operator restarts would be a storm if they counted.
            let config = timing(Duration::from_millis(20), Duration::from_secs(2), 1);
            let sup = supervise(spec, config, &metrics);
            // Every reason's series exists at 0 from the start.
            assert_eq!(restarts(&metrics, "operator"), 0);

            for n in 1..=3u64 {
                let info = running(&sup).await;
                assert_eq!(info.incarnation, n - 1);
                assert!(info.last_heartbeat_ms_ago.is_some());
                let after = sup
                    .send(RestartActor {
                        name: "worker".into(),
                    })
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(after.incarnation, n);
                assert_eq!(after.state, "restarting");
                assert_eq!(after.last_restart_reason, Some("operator"));
                assert_eq!(after.last_heartbeat_ms_ago, None);
                assert_eq!(slot.get().send(Generation).await.unwrap(), n as u32);
                if n == 1 {
                    // Refused until the new incarnation has answered a heartbeat: nothing changes.
                    let again = sup
                        .send(RestartActor {
                            name: "worker".into(),
                        })
                        .await
                        .unwrap();
                    // It may have answered already on a fast machine; only a refusal is checked.
                    if let Err(e) = again {
                        assert_eq!(e, RestartError::InProgress { name: "worker" });
                        assert_eq!(built.load(Ordering::SeqCst), 2);
                    } else {
                        wait_for("the extra restart", || built.load(Ordering::SeqCst) == 3).await;
                        return System::current().stop();
                    }
                }
            }
            assert_eq!(restarts(&metrics, "operator"), 3);
            assert_eq!(restarts(&metrics, "stuck") + restarts(&metrics, "dead"), 0);
            assert_eq!(built.load(Ordering::SeqCst), 4);
            // Rounds go on with the fresh incarnation: no stale heartbeat restarts it.
            running(&sup).await;
            actix::clock::sleep(Duration::from_millis(300)).await;
            assert_eq!(list(&sup).await.incarnation, 3);
            assert_eq!(built.load(Ordering::SeqCst), 4);

            let unknown = sup
                .send(RestartActor {
                    name: "nobody".into(),
                })
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(
                unknown.to_string(),
                "no supervised actor named \"nobody\"; actors: worker"
            );
            assert_eq!(built.load(Ordering::SeqCst), 4);

            // After StopSupervision (the stop order) nothing is restarted: the supervisor
            // refuses (`Stopping`) or is already gone (a closed mailbox).
            sup.send(StopSupervision).await.unwrap();
            let after_stop = sup
                .send(RestartActor {
                    name: "worker".into(),
                })
                .await;
            assert!(
                matches!(after_stop, Err(_) | Ok(Err(RestartError::Stopping))),
                "{after_stop:?}"
            );
            assert_eq!(built.load(Ordering::SeqCst), 4);
            System::current().stop();
        });
        // Not a storm: the system stopped normally.
        assert_eq!(sys.run_with_code().ok(), Some(0));
    }

    /// An actor replaced while a heartbeat to its old incarnation is outstanding: the old
    /// heartbeat's timeout must not restart the new incarnation.
    #[test]
    fn a_stale_heartbeat_never_restarts_the_fresh_incarnation() {
        let sys = System::new();
        sys.block_on(async {
            let (spec, built) = counted_worker();
            let slot = spec.slot();
            let metrics = NodeMetrics::default();
            let config = timing(Duration::from_millis(20), Duration::from_millis(500), 10);
            let sup = supervise(spec, config, &metrics);
            running(&sup).await;
            // The old incarnation hangs, so its next heartbeat is outstanding when the operator
            // replaces it (allowed: it had answered a heartbeat, so it counts as running).
            slot.get()
                .do_send(TestHook::Hang(Duration::from_millis(1000)));
            actix::clock::sleep(Duration::from_millis(60)).await;
            let after = sup
                .send(RestartActor {
                    name: "worker".into(),
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(after.incarnation, 1);
            // Past the old heartbeat's deadline and the hang: still incarnation 1.
            actix::clock::sleep(Duration::from_millis(1300)).await;
            let info = list(&sup).await;
            assert_eq!((info.incarnation, info.state), (1, "running"));
            assert_eq!(restarts(&metrics, "stuck") + restarts(&metrics, "dead"), 0);
            assert_eq!(built.load(Ordering::SeqCst), 2);
            System::current().stop();
        });
    }
}

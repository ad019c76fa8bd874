//! The virtual-actor machinery shared by every entity kind (cart, SKU, catalog, order).
//!
//! ```text
//!  caller ──► Directory<E> ──(activate on first message)──► Host<E> actor  ──► Entity::handle
//!                 │  id → OnceCell<ActorRef>                    │ linked to
//!                 │                                             ▼
//!                 └── sweeper task (passivation)          Supervisor<E> (one per kind)
//! ```
//!
//! - **Directory**: a concurrent map id → slot owned by the engine (never ractor's
//!   process-global registry). A slot is a `OnceCell`, so two concurrent first messages to
//!   one id start exactly one actor.
//! - **Host**: one ractor actor per resident entity. It loads the state in `pre_start`,
//!   runs each command through [`Entity::handle`] (validate → new state from a pure domain
//!   function → write to the store → swap), then hands the reply to the durability barrier
//!   and takes the next message. Every reply, reads included, waits until the actor's last
//!   write is durable.
//! - **Passivation**: a sweeper asks every resident actor to passivate now and then; an
//!   actor idle for longer than the configured period removes itself from the directory,
//!   answers whatever is still queued with "moved" (the caller retries on a fresh
//!   activation) and drains; later sends are refused and also retried. An entity never has
//!   two live actors that both write.
//! - **Supervision**: a supervisor per kind overrides `handle_supervisor_evt`. A panicking
//!   entity is removed from the directory and counted; the next message re-activates it
//!   from its persisted state. Nobody else notices.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::OnceCell;

use tracing::Instrument;

use crate::clock::Clock;
use crate::domain::Millis;
use crate::storage::{Barrier, StorageError};

/// One kind of entity (cart, SKU …): how to load it and how to handle its commands.
///
/// Business errors belong in `Reply`; `handle` never fails the actor.
pub(crate) trait Entity: Send + Sync + Sized + 'static {
    /// Kind name for logs and metrics.
    const KIND: &'static str;
    /// In-memory state of one entity.
    type State: Send + 'static;
    /// Commands the entity accepts.
    type Cmd: Send + 'static;
    /// The reply to every command.
    type Reply: Send + 'static;

    /// Loads the state of `id` from the store (activation).
    fn load(&self, id: &str) -> Result<Self::State, StorageError>;

    /// Handles one command. Writes go to the store before the state is changed; the
    /// returned [`Effect`] says whether anything was written.
    fn handle(
        &self,
        id: &str,
        state: &mut Self::State,
        cmd: Self::Cmd,
    ) -> impl Future<Output = Effect<Self::Reply>> + Send;

    /// Wall-clock time at which [`Entity::on_timer`] should run, if any.
    fn timer_due(&self, _state: &Self::State) -> Option<Millis> {
        None
    }

    /// Runs when the timer is due; returns whether it wrote.
    fn on_timer(&self, _id: &str, _state: &mut Self::State) -> bool {
        false
    }

    /// Whether an idle entity may be stopped (e.g. not while it has a timer to keep).
    fn may_passivate(&self, _state: &Self::State) -> bool {
        true
    }

    /// Writes what commands answered with [`Effect::deferred`] changed, in one write;
    /// returns whether it wrote. The host calls it once the commands queued before are
    /// handled, and holds their replies until it returns. On `Err` the entity must put
    /// its state back to what the store holds.
    fn flush(&self, _id: &str, _state: &mut Self::State) -> Result<bool, StorageError> {
        Ok(false)
    }

    /// Called with the barrier ticket of each write this entity made.
    fn wrote_at(&self, _ticket: u64) {}

    /// Whether the entity should leave memory right away (it does not exist).
    fn evict_now(&self, _state: &Self::State) -> bool {
        false
    }
}

/// What handling a command produced.
pub(crate) struct Effect<R> {
    /// The reply, released once durable.
    pub reply: R,
    /// Whether the store was written (a barrier ticket is taken after it).
    pub wrote: bool,
    /// Whether the state changed in memory only, to be written by [`Entity::flush`].
    pub deferred: bool,
}

impl<R> Effect<R> {
    pub fn new(reply: R, wrote: bool) -> Self {
        Self {
            reply,
            wrote,
            deferred: false,
        }
    }
    pub fn read(reply: R) -> Self {
        Self::new(reply, false)
    }
    pub fn wrote(reply: R) -> Self {
        Self::new(reply, true)
    }
    pub fn deferred(reply: R) -> Self {
        Self {
            deferred: true,
            ..Self::new(reply, false)
        }
    }
}

/// What a call to an entity answers: the actor's answer, or why there was none.
pub(crate) type Answer<T, F> = Result<Result<T, F>, CallError>;

/// Why a call did not produce a reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The actor did not answer in time (it may still process the command).
    #[error("the {0} actor did not answer in time")]
    Timeout(&'static str),
    /// The actor failed while handling the command.
    #[error("the {0} actor failed")]
    Failed(&'static str),
    /// The reply could not be made durable.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) enum Undelivered {
    /// The actor is passivating; try again on a fresh activation.
    Moved,
    Storage(StorageError),
}

type Reply<E> = Result<<E as Entity>::Reply, Undelivered>;

pub(crate) enum HostMsg<E: Entity> {
    /// A command whose reply waits until the entity's writes are durable; with the
    /// caller's span, so that the work it causes is traced under the caller's request.
    Call(E::Cmd, RpcReplyPort<Reply<E>>, tracing::Span),
    /// A command answered as soon as it is applied (see [`Directory::call_applied`]).
    CallApplied(E::Cmd, RpcReplyPort<Reply<E>>, tracing::Span),
    Passivate(Duration),
    /// Write what the commands handled since the last flush changed (see [`Entity::flush`]).
    Flush,
    Timer,
    Panic,
}

/// Counters per kind.
#[derive(Debug, Default)]
pub struct KindStats {
    /// Actors started from the store.
    pub activated: AtomicU64,
    /// Actors stopped because they were idle.
    pub passivated: AtomicU64,
    /// Actors that panicked.
    pub panicked: AtomicU64,
    /// Calls that timed out.
    pub timeouts: AtomicU64,
    /// Actors started and not yet reaped by the supervisor (it processes each actor's
    /// termination, which frees the actor's mailbox and state).
    pub alive: AtomicI64,
}

type Slot<E> = Arc<OnceCell<ActorRef<HostMsg<E>>>>;

/// A kind's directory as the engine stops it, whatever the kind.
pub(crate) trait Stoppable: Send + Sync {
    /// [`Directory::shutdown`].
    fn stop(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl<E: Entity> Stoppable for Directory<E> {
    fn stop(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.shutdown())
    }
}

/// Settings of one kind's directory.
#[derive(Debug, Clone)]
pub(crate) struct DirectoryConfig {
    pub passivate_after: Duration,
    pub call_timeout: Duration,
    /// Above this many resident actors, idle ones go after [`PRESSURE_IDLE`].
    pub max_resident: usize,
    /// The clock entity timers ([`Entity::timer_due`]) are read against.
    pub clock: Clock,
}

/// How long an actor must have been idle to be passivated while its kind is over
/// [`DirectoryConfig::max_resident`].
const PRESSURE_IDLE: Duration = Duration::from_millis(500);

/// id → actor for one kind, plus its supervisor and sweeper.
pub(crate) struct Directory<E: Entity> {
    /// A weak handle to this directory, given to each actor so it can remove itself.
    me: Weak<Directory<E>>,
    entity: Arc<E>,
    barrier: Barrier,
    slots: DashMap<Arc<str>, Slot<E>>,
    supervisor: std::sync::OnceLock<ActorCell>,
    config: DirectoryConfig,
    pub stats: KindStats,
    sweeper: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Most actors that have left the directory but whose termination the supervisor has not
/// processed yet, before a new activation waits for it (see [`Directory::activate`]).
const MAX_UNREAPED: i64 = 10_000;

/// How many times a call is re-routed to a fresh activation before it gives up.
const MAX_REROUTES: usize = 8;

impl<E: Entity> Directory<E> {
    /// Starts the kind's supervisor and passivation sweeper.
    pub async fn start(
        entity: E,
        barrier: Barrier,
        config: DirectoryConfig,
    ) -> Result<Arc<Self>, ActorProcessingErr> {
        let dir = Arc::new_cyclic(|me| Directory {
            me: me.clone(),
            entity: Arc::new(entity),
            barrier,
            slots: DashMap::new(),
            supervisor: std::sync::OnceLock::new(),
            config,
            stats: KindStats::default(),
            sweeper: std::sync::Mutex::new(None),
        });
        let (sup, _) = Actor::spawn(
            None,
            Supervisor::<E> {
                dir: Arc::downgrade(&dir),
            },
            (),
        )
        .await?;
        let _ = dir.supervisor.set(sup.get_cell());
        let weak = Arc::downgrade(&dir);
        let period = (dir.config.passivate_after / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(30));
        // The resident count is checked every tick (at most a second apart); the idle
        // sweep runs every `period`, or at once when the count is over the cap.
        let tick_every = period.min(Duration::from_secs(1));
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(tick_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let ticks_per_sweep = (period.as_millis() / tick_every.as_millis()).max(1);
            let mut ticks = 0u128;
            loop {
                tick.tick().await;
                let Some(dir) = weak.upgrade() else { return };
                ticks += 1;
                let over = dir.resident() > dir.config.max_resident;
                if over {
                    dir.sweep(PRESSURE_IDLE);
                } else if ticks.is_multiple_of(ticks_per_sweep) {
                    dir.sweep(dir.config.passivate_after);
                }
            }
        });
        *dir.sweeper.lock().expect("sweeper lock") = Some(sweeper);
        Ok(dir)
    }

    /// Number of resident actors.
    pub fn resident(&self) -> usize {
        self.slots.len()
    }

    /// Asks every resident actor to passivate if it has been idle for `idle`.
    fn sweep(&self, idle: Duration) {
        if idle < self.config.passivate_after {
            tracing::debug!(
                kind = E::KIND,
                resident = self.resident(),
                "over the resident cap: passivating idle actors early"
            );
        }
        for entry in self.slots.iter() {
            if let Some(actor) = entry.value().get() {
                let _ = actor.cast(HostMsg::Passivate(idle));
            }
        }
    }

    /// Sends `cmd` to entity `id`, activating it if needed, and waits for the durable reply.
    pub async fn call(&self, id: &str, cmd: impl Fn() -> E::Cmd) -> Result<E::Reply, CallError> {
        self.call_within(id, cmd, self.config.call_timeout).await
    }

    /// Sends `cmd` and returns as soon as the entity applied it, before its writes are
    /// durable. Only for steps of a saga whose own acknowledgement waits for everything
    /// written before it (a barrier ticket covers every write applied before it was taken)
    /// and whose steps are idempotent, so that a crash simply repeats them.
    pub async fn call_applied(
        &self,
        id: &str,
        cmd: impl Fn() -> E::Cmd,
    ) -> Result<E::Reply, CallError> {
        self.send(id, cmd, self.config.call_timeout, false).await
    }

    /// [`Directory::call`] with its own timeout (long-running commands such as a checkout).
    pub async fn call_within(
        &self,
        id: &str,
        cmd: impl Fn() -> E::Cmd,
        timeout: Duration,
    ) -> Result<E::Reply, CallError> {
        self.send(id, cmd, timeout, true).await
    }

    async fn send(
        &self,
        id: &str,
        cmd: impl Fn() -> E::Cmd,
        timeout: Duration,
        durable: bool,
    ) -> Result<E::Reply, CallError> {
        for _ in 0..MAX_REROUTES {
            let actor = self.activate(id).await?;
            let (tx, rx) = ractor::concurrency::oneshot();
            let caller = tracing::Span::current();
            let msg = if durable {
                HostMsg::Call(cmd(), tx.into(), caller)
            } else {
                HostMsg::CallApplied(cmd(), tx.into(), caller)
            };
            if actor.cast(msg).is_err() {
                // Stopped or draining: forget that actor and go again.
                self.forget(id, &actor);
                continue;
            }
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(Ok(reply))) => return Ok(reply),
                Ok(Ok(Err(Undelivered::Moved))) => continue,
                Ok(Ok(Err(Undelivered::Storage(e)))) => return Err(CallError::Storage(e)),
                Ok(Err(_)) => return Err(CallError::Failed(E::KIND)),
                Err(_) => {
                    self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(CallError::Timeout(E::KIND));
                }
            }
        }
        Err(CallError::Failed(E::KIND))
    }

    /// Makes one actor panic (test hook for supervision).
    pub async fn panic_entity(&self, id: &str) -> Result<(), CallError> {
        let actor = self.activate(id).await?;
        let _ = actor.cast(HostMsg::Panic);
        Ok(())
    }

    /// Stops every actor of this kind and the supervisor.
    pub async fn shutdown(&self) {
        let sweeper = self.sweeper.lock().expect("sweeper lock").take();
        if let Some(s) = sweeper {
            // Wait for it to be gone: mid-sweep it holds the directory, and with it the store.
            s.abort();
            let _ = s.await;
        }
        if let Some(sup) = self.supervisor.get() {
            sup.stop_children_and_wait(None, Some(Duration::from_secs(10)))
                .await;
            let _ = sup.stop_and_wait(None, Some(Duration::from_secs(5))).await;
        }
        self.slots.clear();
    }

    async fn activate(&self, id: &str) -> Result<ActorRef<HostMsg<E>>, CallError> {
        let slot = match self.slots.get(id) {
            Some(s) => s.value().clone(),
            None => self.slots.entry(Arc::from(id)).or_default().value().clone(),
        };
        let result = slot
            .get_or_try_init(|| async {
                let supervisor = self
                    .supervisor
                    .get()
                    .cloned()
                    .ok_or(CallError::Failed(E::KIND))?;
                self.wait_for_reaper().await;
                let host = Host::<E> {
                    entity: self.entity.clone(),
                    barrier: self.barrier.clone(),
                    clock: self.config.clock.clone(),
                };
                let weak = self.me.clone();
                let (actor, _) =
                    Actor::spawn_linked(None, host, (Arc::<str>::from(id), weak), supervisor)
                        .await
                        .map_err(|e| {
                            tracing::warn!(kind = E::KIND, id, error = %e, "activation failed");
                            // A load that failed is the store's error, kept as such.
                            match &e {
                                ractor::SpawnErr::StartupFailed(cause) => cause
                                    .downcast_ref::<StorageError>()
                                    .map_or(CallError::Failed(E::KIND), |s| {
                                        CallError::Storage(s.clone())
                                    }),
                                _ => CallError::Failed(E::KIND),
                            }
                        })?;
                self.stats.activated.fetch_add(1, Ordering::Relaxed);
                self.stats.alive.fetch_add(1, Ordering::Relaxed);
                Ok::<_, CallError>(actor)
            })
            .await;
        match result {
            Ok(a) => Ok(a.clone()),
            Err(e) => {
                self.slots
                    .remove_if(id, |_, s| Arc::ptr_eq(s, &slot) && s.get().is_none());
                Err(e)
            }
        }
    }

    /// Backpressure on activation. A stopped actor's memory (mailbox, state) is freed when
    /// the kind's supervisor processes its termination; under a storm of activations and
    /// passivations (a working set larger than the resident cap) activations can outrun
    /// that one task, and the backlog — each entry a whole dead actor — would grow memory
    /// without bound. So a new activation waits while more than [`MAX_UNREAPED`] actors
    /// are gone from the directory but not yet reaped (at most the call timeout).
    async fn wait_for_reaper(&self) {
        let deadline = Instant::now() + self.config.call_timeout;
        while self.stats.alive.load(Ordering::Relaxed) - self.resident() as i64 > MAX_UNREAPED
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Removes `id` from the directory if it still maps to `actor`.
    fn forget(&self, id: &str, actor: &ActorRef<HostMsg<E>>) {
        let gone = actor.get_id();
        self.slots
            .remove_if(id, |_, s| s.get().is_some_and(|a| a.get_id() == gone));
    }

    /// Removes whatever entry maps to the actor with this id (after a panic).
    fn forget_actor(&self, gone: ractor::ActorId) {
        self.slots
            .retain(|_, s| s.get().is_none_or(|a| a.get_id() != gone));
    }
}

/// The ractor actor hosting one entity. Holds only shared handles (config), as ractor
/// actors do; the entity's data lives in [`HostState`].
struct Host<E: Entity> {
    entity: Arc<E>,
    barrier: Barrier,
    clock: Clock,
}

struct HostState<E: Entity> {
    id: Arc<str>,
    dir: Weak<Directory<E>>,
    state: E::State,
    /// The last barrier ticket of this entity's writes; every reply waits for it.
    last_ticket: u64,
    last_active: Instant,
    /// When the scheduled timer fires (wall clock), if one is scheduled.
    timer_at: Option<Millis>,
    /// Set once the actor has left the directory; queued calls are answered `Moved`.
    passivating: bool,
    /// Replies held until the next flush, in order.
    held: Vec<Held<E>>,
    /// Whether a `Flush` is in the mailbox.
    flush_queued: bool,
}

/// A reply waiting for the entity's next flush.
struct Held<E: Entity> {
    reply: RpcReplyPort<Reply<E>>,
    out: E::Reply,
    durable: bool,
}

impl<E: Entity> Host<E> {
    /// Takes the barrier ticket for a write this entity just applied to the store.
    fn record_write(&self, st: &mut HostState<E>) {
        st.last_ticket = self.barrier.ticket();
        self.entity.wrote_at(st.last_ticket);
    }

    fn arm_timer(&self, myself: &ActorRef<HostMsg<E>>, st: &mut HostState<E>) {
        let Some(due) = self.entity.timer_due(&st.state) else {
            return;
        };
        if st.timer_at.is_some_and(|at| at <= due) {
            return;
        }
        st.timer_at = Some(due);
        let (clock, me) = (self.clock.clone(), myself.clone());
        tokio::spawn(async move {
            clock.sleep_until(due).await;
            let _ = me.cast(HostMsg::Timer);
        });
    }

    /// Runs one command; the reply is released once the entity's writes are durable, or at
    /// once for a `CallApplied`.
    async fn call(
        &self,
        myself: &ActorRef<HostMsg<E>>,
        st: &mut HostState<E>,
        cmd: E::Cmd,
        reply: RpcReplyPort<Reply<E>>,
        durable: bool,
    ) {
        st.last_active = Instant::now();
        let effect = self.entity.handle(&st.id, &mut st.state, cmd).await;
        if effect.wrote {
            self.record_write(st);
        }
        let held = Held {
            reply,
            out: effect.reply,
            durable,
        };
        if effect.deferred || !st.held.is_empty() {
            // Behind every message queued so far: the flush covers them all.
            st.held.push(held);
            if !st.flush_queued {
                st.flush_queued = myself.cast(HostMsg::Flush).is_ok();
                if !st.flush_queued {
                    self.flush(st);
                }
            }
        } else {
            self.release(st, held);
        }
        self.arm_timer(myself, st);
        if st.held.is_empty() && self.entity.evict_now(&st.state) {
            self.passivate(myself, st);
        }
    }

    /// Sends a reply: once the entity's writes are durable, or at once for a
    /// `CallApplied` (whose writes are applied by now).
    fn release(&self, st: &HostState<E>, held: Held<E>) {
        let Held {
            reply,
            out,
            durable,
        } = held;
        if durable {
            self.barrier.on_durable(st.last_ticket, move |r| {
                let _ = reply.send(r.map(|()| out).map_err(Undelivered::Storage));
            });
        } else {
            let _ = reply.send(Ok(out));
        }
    }

    /// Writes what the held replies' commands changed, then releases them (or, if the
    /// write failed, answers each with the failure: nothing of theirs was written).
    fn flush(&self, st: &mut HostState<E>) {
        st.flush_queued = false;
        let held = std::mem::take(&mut st.held);
        match self.entity.flush(&st.id, &mut st.state) {
            Ok(wrote) => {
                if wrote {
                    self.record_write(st);
                }
                for h in held {
                    self.release(st, h);
                }
            }
            Err(e) => {
                for h in held {
                    let _ = h.reply.send(Err(Undelivered::Storage(e.clone())));
                }
            }
        }
    }

    /// Leaves the directory and drains: queued calls get `Moved`, later sends fail.
    fn passivate(&self, myself: &ActorRef<HostMsg<E>>, st: &mut HostState<E>) {
        st.passivating = true;
        if let Some(dir) = st.dir.upgrade() {
            dir.forget(&st.id, myself);
            dir.stats.passivated.fetch_add(1, Ordering::Relaxed);
        }
        let _ = myself.drain();
    }
}

impl<E: Entity> Actor for Host<E> {
    type Msg = HostMsg<E>;
    type State = HostState<E>;
    type Arguments = (Arc<str>, Weak<Directory<E>>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (id, dir): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let state = self.entity.load(&id)?;
        let mut st = HostState {
            id,
            dir,
            state,
            // The loaded state may include writes not yet durable (a predecessor's last
            // write): replies wait for everything written so far.
            last_ticket: self.barrier.current(),
            last_active: Instant::now(),
            timer_at: None,
            passivating: false,
            held: Vec::new(),
            flush_queued: false,
        };
        self.arm_timer(&myself, &mut st);
        Ok(st)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HostMsg::Call(_, reply, _) | HostMsg::CallApplied(_, reply, _) if st.passivating => {
                let _ = reply.send(Err(Undelivered::Moved));
            }
            HostMsg::Call(cmd, reply, caller) => {
                self.call(&myself, st, cmd, reply, true)
                    .instrument(call_span(E::KIND, caller))
                    .await
            }
            HostMsg::CallApplied(cmd, reply, caller) => {
                self.call(&myself, st, cmd, reply, false)
                    .instrument(call_span(E::KIND, caller))
                    .await
            }
            HostMsg::Flush => self.flush(st),
            HostMsg::Timer => {
                if !st.held.is_empty() {
                    self.flush(st);
                }
                st.timer_at = None;
                let due = self
                    .entity
                    .timer_due(&st.state)
                    .is_some_and(|d| d <= self.clock.now());
                if !st.passivating && due && self.entity.on_timer(&st.id, &mut st.state) {
                    self.record_write(st);
                }
                self.arm_timer(&myself, st);
            }
            HostMsg::Passivate(idle) => {
                if !st.passivating
                    && st.held.is_empty()
                    && st.last_active.elapsed() >= idle
                    && self.entity.may_passivate(&st.state)
                {
                    self.passivate(&myself, st);
                }
            }
            HostMsg::Panic => panic!("test-requested panic in {} {}", E::KIND, st.id),
        }
        Ok(())
    }
}

/// One per kind: isolates entity failures.
struct Supervisor<E: Entity> {
    dir: Weak<Directory<E>>,
}

impl<E: Entity> Actor for Supervisor<E> {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    /// Overrides ractor's default, which would stop the supervisor (and so every entity
    /// of the kind) whenever one child stops, even a normal passivation.
    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        evt: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let (
            SupervisionEvent::ActorTerminated(..) | SupervisionEvent::ActorFailed(..),
            Some(dir),
        ) = (&evt, self.dir.upgrade())
        {
            dir.stats.alive.fetch_sub(1, Ordering::Relaxed);
        }
        if let SupervisionEvent::ActorFailed(cell, err) = evt {
            tracing::error!(kind = E::KIND, actor = %cell.get_id(), error = %err, "entity actor failed; it will be re-activated from the store on its next message");
            if let Some(dir) = self.dir.upgrade() {
                dir.stats.panicked.fetch_add(1, Ordering::Relaxed);
                dir.forget_actor(cell.get_id());
            }
        }
        Ok(())
    }
}

/// The span of one actor call: `actor_call{kind}` (debug level) under the caller's span,
/// or the caller's span itself when debug spans are off, so that what the call does (a
/// saga's steps, say) is traced under the request that caused it either way. Never the
/// entity's id: cart and order ids are capabilities and stay out of logs.
fn call_span(kind: &'static str, caller: tracing::Span) -> tracing::Span {
    let span = tracing::debug_span!(parent: &caller, "actor_call", kind);
    if span.is_disabled() { caller } else { span }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use tokio::sync::Notify;

    use super::*;
    use crate::storage::{Store, StoreOptions};

    /// A counter that coalesces its writes, counting its flushes; a flush can be made to
    /// fail once.
    #[derive(Default)]
    struct Counter {
        flushes: AtomicUsize,
        fail_next: AtomicBool,
    }

    enum Cmd {
        /// Keeps the actor busy until notified, so that later commands queue up.
        Hold(Arc<Notify>, Arc<Notify>),
        Add(u64),
        Get,
    }

    /// (as written, as in memory)
    type Count = (u64, u64);

    impl Entity for Counter {
        const KIND: &'static str = "counter";
        type State = Count;
        type Cmd = Cmd;
        type Reply = u64;

        fn load(&self, _: &str) -> Result<Count, StorageError> {
            Ok((0, 0))
        }

        async fn handle(&self, _: &str, st: &mut Count, cmd: Cmd) -> Effect<u64> {
            match cmd {
                Cmd::Hold(entered, go) => {
                    entered.notify_one();
                    go.notified().await;
                    Effect::read(st.1)
                }
                Cmd::Add(n) => {
                    st.1 += n;
                    Effect::deferred(st.1)
                }
                Cmd::Get => Effect::read(st.1),
            }
        }

        fn flush(&self, _: &str, st: &mut Count) -> Result<bool, StorageError> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            if self.fail_next.swap(false, Ordering::SeqCst) {
                st.1 = st.0;
                return Err(StorageError::io(
                    "loading",
                    std::io::Error::other("injected"),
                ));
            }
            st.0 = st.1;
            Ok(true)
        }
    }

    /// Queues 20 `Add(1)` behind a held command, releases it, and returns the replies.
    async fn queued_adds(dir: &Arc<Directory<Counter>>) -> Vec<Result<u64, CallError>> {
        let (entered, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let hold = {
            let (dir, entered, go) = (dir.clone(), entered.clone(), go.clone());
            tokio::spawn(async move {
                dir.call("c", || Cmd::Hold(entered.clone(), go.clone()))
                    .await
            })
        };
        entered.notified().await;
        let adds: Vec<_> = (0..20)
            .map(|_| {
                let dir = dir.clone();
                tokio::spawn(async move { dir.call("c", || Cmd::Add(1)).await })
            })
            .collect();
        // Let every add reach the mailbox (ordering, not speed: nothing is timed).
        tokio::time::sleep(Duration::from_millis(100)).await;
        go.notify_one();
        hold.await.unwrap().unwrap();
        let mut out = Vec::new();
        for a in adds {
            out.push(a.await.unwrap());
        }
        out
    }

    async fn start(dir: &std::path::Path) -> (Store, Arc<Directory<Counter>>) {
        start_with(dir, Duration::from_secs(60)).await
    }

    async fn start_with(
        dir: &std::path::Path,
        passivate_after: Duration,
    ) -> (Store, Arc<Directory<Counter>>) {
        let store = Store::open(dir, &StoreOptions::default()).unwrap();
        let d = Directory::start(
            Counter::default(),
            store.barrier().clone(),
            DirectoryConfig {
                passivate_after,
                call_timeout: Duration::from_secs(10),
                max_resident: 10,
                clock: Clock::system(),
            },
        )
        .await
        .unwrap();
        (store, d)
    }

    /// Waits (bounded) until `f` holds.
    async fn eventually(f: impl Fn() -> bool) -> bool {
        for _ in 0..500 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        f()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn activations_wait_while_too_many_stopped_actors_are_unreaped() {
        let tmp = tempfile::tempdir().unwrap();
        let (_store, dir) = start(tmp.path()).await;
        dir.call("resident", || Cmd::Get).await.unwrap();
        // As if the supervisor were far behind.
        dir.stats
            .alive
            .fetch_add(MAX_UNREAPED + 10, Ordering::SeqCst);
        let waiting = {
            let dir = dir.clone();
            tokio::spawn(async move { dir.call("new", || Cmd::Add(1)).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "a new activation waits for the reaper"
        );
        assert_eq!(
            dir.call("resident", || Cmd::Get).await.unwrap(),
            0,
            "resident actors are not held up"
        );
        dir.stats
            .alive
            .fetch_sub(MAX_UNREAPED + 10, Ordering::SeqCst);
        assert_eq!(waiting.await.unwrap().unwrap(), 1);
        dir.shutdown().await;
    }

    /// The activation backpressure counts actors started and not yet reaped; if a way of
    /// stopping were not counted, the count would drift up and stall activations.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_stopped_actor_is_reaped_passivated_or_panicked() {
        let tmp = tempfile::tempdir().unwrap();
        let (_store, dir) = start_with(tmp.path(), Duration::from_millis(100)).await;
        for i in 0..50 {
            dir.call(&format!("c{i}"), || Cmd::Get).await.unwrap();
        }
        assert_eq!(dir.stats.alive.load(Ordering::SeqCst), 50);
        dir.panic_entity("c0").await.unwrap();
        assert!(
            eventually(|| dir.resident() == 0 && dir.stats.alive.load(Ordering::SeqCst) == 0).await,
            "resident {}, alive {}",
            dir.resident(),
            dir.stats.alive.load(Ordering::SeqCst)
        );
        assert_eq!(dir.stats.panicked.load(Ordering::SeqCst), 1);
        // And activations go on as before.
        assert_eq!(dir.call("c0", || Cmd::Add(3)).await.unwrap(), 3);
        assert_eq!(dir.stats.alive.load(Ordering::SeqCst), 1);
        dir.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_commands_share_one_flush_and_no_reply_precedes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (_store, dir) = start(tmp.path()).await;
        let replies = queued_adds(&dir).await;
        let mut values: Vec<u64> = replies.into_iter().map(|r| r.unwrap()).collect();
        values.sort_unstable();
        assert_eq!(values, (1..=20).collect::<Vec<_>>());
        assert_eq!(
            dir.entity.flushes.load(Ordering::SeqCst),
            1,
            "20 queued commands, one write"
        );
        assert_eq!(dir.call("c", || Cmd::Get).await.unwrap(), 20);
        dir.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_flush_fails_every_held_reply_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (_store, dir) = start(tmp.path()).await;
        dir.entity.fail_next.store(true, Ordering::SeqCst);
        let replies = queued_adds(&dir).await;
        assert!(
            replies
                .iter()
                .all(|r| matches!(r, Err(CallError::Storage(_)))),
            "no command whose write failed may be acknowledged"
        );
        assert_eq!(dir.call("c", || Cmd::Get).await.unwrap(), 0);
        assert_eq!(dir.call("c", || Cmd::Add(2)).await.unwrap(), 2);
        dir.shutdown().await;
    }
}

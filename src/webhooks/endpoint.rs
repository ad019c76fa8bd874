//! One endpoint's delivery: its actor, the only writer of the endpoint's record, and the
//! worker task beside it that does the I/O.
//!
//! The worker asks the actor what to do ([`Msg::Next`]): deliver from an offset (with the
//! URL, the keys and the event types of that moment), or wait — for a retry's time, for an
//! admin while failing. It reads a batch of events after the offset, waits until they are
//! durable, and posts each event the endpoint wants, in order, reporting every attempt
//! ([`Msg::Report`]); the actor records the attempt, moves the offset past a delivered
//! event (a plain write) or schedules the retry of a failed one, and says whether to go
//! on. After each batch the worker waits until the offset's writes are durable, so after
//! a crash at most the batch in flight is delivered again.
//!
//! An admin's change bumps the endpoint's generation: a report from a delivery started
//! before it is recorded as an attempt but moves nothing, and the worker starts over from
//! what the actor says now.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::Notify;

use super::Shared;
use super::sender::{Message, Sent};
use crate::domain::Millis;
use crate::domain::event::LoggedEvent;
use crate::domain::webhook::{Attempt, Endpoint, event_id, payload, signature_header};
use crate::storage::{StorageError, webhook_attempt_key};

/// Events read per batch: at most this many are delivered again after a crash.
pub const BATCH: usize = 64;

/// Attempts kept per endpoint; older ones are dropped as new ones are recorded.
pub const ATTEMPTS_KEPT: u64 = 10_000;

/// An admin's change to an endpoint. The caller has checked the settings (the engine's
/// use cases do, with the domain's checks and the SSRF rules); the actor applies them.
#[derive(Debug, Clone)]
pub enum Change {
    /// New settings (each one optional), checked.
    Update {
        /// A new URL (as [`crate::domain::webhook::parse_url`] returned it).
        url: Option<String>,
        /// New event types (as [`crate::domain::webhook::check_event_types`] returned them).
        event_types: Option<Vec<String>>,
        /// A new description (as [`crate::domain::webhook::check_description`] returned it).
        description: Option<String>,
    },
    /// A new signing key; the old one signs on for the overlap.
    Rotate {
        /// The new key.
        key: Vec<u8>,
    },
    /// Deliver again every wanted event after this sequence number.
    Replay {
        /// The sequence number to start after.
        after_seq: u64,
    },
    /// Deliver again after the endpoint was marked failing (or retry now).
    Resume,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What the worker should do now.
pub enum Work {
    /// Deliver the wanted events after `offset`.
    Deliver(Job),
    /// Nothing until this time (a retry's), or until woken (`None`: failing).
    Wait(Option<Millis>),
}

/// A delivery round, as the endpoint was when it began.
pub struct Job {
    generation: u64,
    offset: u64,
    url: String,
    keys: Vec<Vec<u8>>,
    event_types: Vec<String>,
}

impl Job {
    fn wants(&self, kind: &str) -> bool {
        self.event_types.iter().any(|t| t == "*" || t == kind)
    }
}

/// What the worker reports.
pub enum Report {
    /// It tried to deliver the event at `seq`.
    Attempted {
        generation: u64,
        seq: u64,
        event_type: &'static str,
        sent: Sent,
    },
    /// Events through `seq` are not wanted.
    Passed { generation: u64, seq: u64 },
}

/// The actor's messages.
pub enum Msg {
    /// The endpoint now.
    Get(RpcReplyPort<Endpoint>),
    /// An admin's change (already checked where it can be: URLs, event types).
    Change(Change, RpcReplyPort<Result<Endpoint, StorageError>>),
    /// Removes the endpoint and its attempts, then stops.
    Delete(RpcReplyPort<Result<(), StorageError>>),
    /// From the worker: what to do now.
    Next(RpcReplyPort<Work>),
    /// From the worker: an outcome; the reply says whether to go on with the batch.
    Report(Report, RpcReplyPort<bool>),
}

/// The actor of one endpoint.
pub struct EndpointActor {
    pub(super) shared: Arc<Shared>,
    /// Mirrors the endpoint's offset for the lag metric.
    pub(super) offset: Arc<AtomicU64>,
}

/// Its state: the endpoint as stored, and the worker.
pub struct State {
    endpoint: Endpoint,
    kick: Arc<Notify>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl EndpointActor {
    /// Writes `next` and makes it the state (the state is unchanged if the write fails).
    fn save(&self, st: &mut State, next: Endpoint) -> Result<(), StorageError> {
        self.shared.store.tables().webhooks.put(&next.id, &next)?;
        self.offset.store(next.offset, Ordering::Release);
        st.endpoint = next;
        Ok(())
    }

    fn now(&self) -> Millis {
        self.shared.store.clock().now()
    }

    fn change(&self, st: &mut State, change: Change) -> Result<Endpoint, StorageError> {
        let now = self.now();
        let mut next = st.endpoint.clone();
        match change {
            Change::Update {
                url,
                event_types,
                description,
            } => {
                // A delivery under way for the old URL or types stops at its next event
                // and starts over with the new ones (a new generation).
                if let Some(url) = url {
                    next.url = url;
                    next.generation += 1;
                }
                if let Some(types) = event_types {
                    next.event_types = types;
                    next.generation += 1;
                }
                if let Some(d) = description {
                    next.description = d;
                }
                next.updated_at = now;
            }
            Change::Rotate { key } => {
                let overlap = ms(self.shared.settings.key_overlap);
                next.rotate(key, now, overlap);
            }
            Change::Replay { after_seq } => next.replay(after_seq, now),
            Change::Resume => next.resume(now),
        }
        self.save(st, next)?;
        st.kick.notify_one();
        Ok(st.endpoint.clone())
    }

    fn next(&self, st: &State) -> Work {
        let now = self.now();
        let e = &st.endpoint;
        match e.next_delivery_at(now) {
            None => Work::Wait(None),
            Some(at) if at > now => Work::Wait(Some(at)),
            Some(_) => Work::Deliver(Job {
                generation: e.generation,
                offset: e.offset,
                url: e.url.clone(),
                keys: e.signing_keys(now),
                event_types: e.event_types.clone(),
            }),
        }
    }

    fn report(&self, st: &mut State, report: Report) -> bool {
        let mut next = st.endpoint.clone();
        let (current, go_on, attempt) = match report {
            Report::Passed { generation, seq } => {
                let current = generation == next.generation;
                if current {
                    next.passed(seq);
                }
                (current, current, None)
            }
            Report::Attempted {
                generation,
                seq,
                event_type,
                sent,
            } => {
                let now = self.now();
                next.attempts_made += 1;
                let current = generation == next.generation;
                let delivered = sent.delivered();
                let outcome = if delivered { "delivered" } else { "failed" };
                metrics::counter!("emporium_webhook_deliveries_total",
                    "endpoint" => next.id.clone(), "outcome" => outcome)
                .increment(1);
                metrics::histogram!("emporium_webhook_delivery_seconds", "endpoint" => next.id.clone())
                    .record(f64::from(sent.latency_ms) / 1000.0);
                if current {
                    if delivered {
                        next.delivered(seq);
                    } else {
                        let s = &self.shared.settings;
                        let jitter = f64::from(getrandom::u32().unwrap_or(0)) / f64::from(u32::MAX);
                        let gave_up = next.failed(
                            seq,
                            sent.error.as_deref().unwrap_or("failed"),
                            now,
                            ms(s.retry_base),
                            ms(s.retry_period),
                            jitter,
                        );
                        if gave_up {
                            tracing::warn!(endpoint = %next.id, seq, "webhook endpoint failing: an event failed for the whole retry period; deliveries wait for an admin to resume it");
                            metrics::counter!("emporium_webhook_endpoints_failed_total")
                                .increment(1);
                        }
                    }
                }
                let attempt = Attempt {
                    number: next.attempts_made,
                    seq,
                    event_type: event_type.to_owned(),
                    at: now,
                    status: sent.status,
                    latency_ms: sent.latency_ms,
                    delivered,
                    error: sent.error,
                    response: sent.response,
                };
                (current, current && delivered, Some(attempt))
            }
        };
        let tables = self.shared.store.tables();
        let written = (|| {
            if let Some(a) = &attempt {
                tables
                    .webhook_attempts
                    .put(&webhook_attempt_key(&next.id, a.number), a)?;
                if a.number > ATTEMPTS_KEPT {
                    tables
                        .webhook_attempts
                        .remove(&webhook_attempt_key(&next.id, a.number - ATTEMPTS_KEPT))?;
                }
            }
            self.save(st, next)
        })();
        if let Err(e) = written {
            tracing::warn!(error = %e, "a webhook attempt could not be recorded; the event will be delivered again");
            return false;
        }
        current && go_on
    }

    /// Removes the record, then the attempts (a crash between leaves attempts of an
    /// endpoint nobody can list; they are harmless).
    fn delete(&self, st: &State) -> Result<(), StorageError> {
        let tables = self.shared.store.tables();
        tables.webhooks.remove(&st.endpoint.id)?;
        loop {
            let page =
                tables
                    .webhook_attempts
                    .scan_prefix(st.endpoint.id.as_bytes(), None, 1000)?;
            if page.is_empty() {
                return Ok(());
            }
            for (k, _) in page {
                tables.webhook_attempts.remove(&k)?;
            }
        }
    }
}

impl Actor for EndpointActor {
    type Msg = Msg;
    type State = State;
    type Arguments = Endpoint;

    async fn pre_start(
        &self,
        _: ActorRef<Msg>,
        endpoint: Endpoint,
    ) -> Result<State, ActorProcessingErr> {
        Ok(State {
            endpoint,
            kick: Arc::new(Notify::new()),
            worker: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Msg>,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        st.worker = Some(tokio::spawn(work(
            myself,
            self.shared.clone(),
            st.kick.clone(),
        )));
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<Msg>, st: &mut State) -> Result<(), ActorProcessingErr> {
        if let Some(w) = st.worker.take() {
            w.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Get(r) => {
                let _ = r.send(st.endpoint.clone());
            }
            Msg::Change(c, r) => {
                let _ = r.send(self.change(st, c));
            }
            Msg::Next(r) => {
                let _ = r.send(self.next(st));
            }
            Msg::Report(report, r) => {
                let _ = r.send(self.report(st, report));
            }
            Msg::Delete(r) => {
                let done = self.delete(st);
                let ok = done.is_ok();
                let _ = r.send(done);
                if ok {
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }
}

/// Asks the actor, waiting at most `timeout` (`None`: as long as it takes); `None` if it
/// is gone or did not answer in time.
pub(super) async fn ask<T: Send + 'static>(
    actor: &ActorRef<Msg>,
    msg: impl FnOnce(RpcReplyPort<T>) -> Msg,
    timeout: Option<Duration>,
) -> Option<T> {
    match actor.call(msg, timeout).await {
        Ok(ractor::rpc::CallResult::Success(v)) => Some(v),
        _ => None,
    }
}

/// The worker: delivers while the actor lives.
async fn work(actor: ActorRef<Msg>, shared: Arc<Shared>, kick: Arc<Notify>) {
    let store = &shared.store;
    let clock = store.clock().clone();
    loop {
        // Registered before reading, so an append in between is not missed.
        let appended = store.events_appended();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let Some(work) = ask(&actor, Msg::Next, None).await else {
            return;
        };
        let job = match work {
            Work::Wait(until) => {
                tokio::select! {
                    () = kick.notified() => {}
                    () = async {
                        match until {
                            Some(at) => clock.sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                    () = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                continue;
            }
            Work::Deliver(job) => job,
        };
        let batch = match store.events_after(job.offset, BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "webhooks cannot read the event log");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = &mut appended => {}
                () = kick.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        // Only durable events go out: a crash cannot take back what a receiver was told.
        let barrier = store.barrier();
        if let Err(e) = barrier.wait(barrier.current()).await {
            tracing::error!(error = %e, "events are not durable; webhooks wait");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if deliver_batch(&actor, &shared, &job, &batch).await.is_none() {
            return;
        }
        // What the batch moved is durable before the next one starts: a crash delivers
        // again at most the batch in flight. (A ticket of our own: the offset's writes
        // are plain puts, which take none.)
        let _ = barrier.wait(barrier.ticket()).await;
    }
}

/// Delivers the wanted events of `batch` in order until one fails or the actor says stop;
/// `None` if the actor is gone.
async fn deliver_batch(
    actor: &ActorRef<Msg>,
    shared: &Shared,
    job: &Job,
    batch: &[LoggedEvent],
) -> Option<()> {
    let mut passed = None;
    for event in batch {
        let kind = event.event.kind();
        if !job.wants(kind) {
            passed = Some(event.seq);
            continue;
        }
        passed = None;
        let id = event_id(event.seq);
        let body = payload(event);
        let timestamp = shared.store.clock().now() / 1000;
        let signature = signature_header(&job.keys, &id, timestamp, &body);
        let sent = shared
            .sender
            .post(Message {
                url: &job.url,
                id: &id,
                timestamp,
                signature: &signature,
                body,
            })
            .await;
        let report = Report::Attempted {
            generation: job.generation,
            seq: event.seq,
            event_type: kind,
            sent,
        };
        if !ask(actor, |r| Msg::Report(report, r), None).await? {
            return Some(());
        }
    }
    if let Some(seq) = passed {
        let passed = Report::Passed {
            generation: job.generation,
            seq,
        };
        ask(actor, |r| Msg::Report(passed, r), None).await?;
    }
    Some(())
}

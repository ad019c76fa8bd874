//! Webhooks: every domain event, delivered to the shop's other systems — signed, in log
//! order per endpoint, at least once, replayable.
//!
//! Each endpoint has its own delivery actor (`endpoint.rs`): it owns the endpoint's record
//! (settings, keys, offset, retry state) and is its only writer; a worker task beside it
//! reads the event log from the endpoint's offset and posts the events it wants, one at a
//! time, through the shared [`Sender`], reporting each attempt to the actor, which records
//! it and moves the offset. A slow or failing endpoint holds up only its own worker. The
//! actors are children of one supervisor, which starts a panicked endpoint again from its
//! stored record.

mod endpoint;
pub mod sender;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::domain::webhook::{Attempt, Endpoint};
use crate::storage::{StorageError, Store, webhook_attempt_key};
pub use endpoint::Change;
use endpoint::{EndpointActor, Msg};
pub use sender::Sender;

/// How deliveries behave (the engine's [`crate::Config::webhooks`]).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Deliver to loopback addresses (tests, and a receiver on the same machine). Private,
    /// link-local and other internal addresses are never reached.
    pub allow_loopback: bool,
    /// How long an event is retried before its endpoint is marked failing (3 days).
    pub retry_period: Duration,
    /// The first retry's wait; doubled for each further one, capped at an hour (5 s).
    pub retry_base: Duration,
    /// Connecting to a receiver (5 s).
    pub connect_timeout: Duration,
    /// The whole request, from connecting to the response's body (15 s).
    pub response_timeout: Duration,
    /// How long a rotated-out secret keeps signing beside the new one (24 h).
    pub key_overlap: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_loopback: false,
            retry_period: Duration::from_secs(3 * 24 * 3600),
            retry_base: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(15),
            key_overlap: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why a webhook use case failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No such endpoint.
    #[error("no such webhook endpoint")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The endpoint's actor did not answer (stopping, or overloaded).
    #[error("the webhook endpoint's actor is not answering")]
    Unavailable,
}

/// A running endpoint: its actor and how far it has delivered (read for the lag metric
/// without asking the actor).
struct Running {
    actor: ActorRef<Msg>,
    offset: Arc<AtomicU64>,
}

/// What the actors and the registry share.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) settings: WebhookSettings,
    pub(crate) sender: Sender,
    running: Mutex<HashMap<String, Running>>,
}

impl Shared {
    /// Starts the actor of `endpoint` under `supervisor`.
    async fn spawn(
        self: &Arc<Self>,
        endpoint: Endpoint,
        supervisor: ActorCell,
    ) -> Result<(), WebhookError> {
        let id = endpoint.id.clone();
        let offset = Arc::new(AtomicU64::new(endpoint.offset));
        let (actor, _) = Actor::spawn_linked(
            None,
            EndpointActor {
                shared: self.clone(),
                offset: offset.clone(),
            },
            endpoint,
            supervisor,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a webhook endpoint's actor did not start");
            WebhookError::Unavailable
        })?;
        self.running
            .lock()
            .expect("webhooks lock")
            .insert(id, Running { actor, offset });
        Ok(())
    }

    fn actor(&self, id: &str) -> Result<ActorRef<Msg>, WebhookError> {
        self.running
            .lock()
            .expect("webhooks lock")
            .get(id)
            .map(|r| r.actor.clone())
            .ok_or(WebhookError::NotFound)
    }
}

/// The webhook deliveries of one engine: every endpoint's actor, and the use cases.
#[derive(Clone)]
pub struct Webhooks {
    shared: Arc<Shared>,
    supervisor: ActorRef<()>,
}

/// How long a use case waits for an endpoint's actor.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls an endpoint's actor for a use case (bounded by [`CALL_TIMEOUT`]).
async fn ask<T: Send + 'static>(
    actor: &ActorRef<Msg>,
    msg: impl FnOnce(ractor::RpcReplyPort<T>) -> Msg,
) -> Result<T, WebhookError> {
    endpoint::ask(actor, msg, Some(CALL_TIMEOUT))
        .await
        .ok_or(WebhookError::Unavailable)
}

impl Webhooks {
    /// Starts a delivery actor for every stored endpoint.
    pub async fn start(store: Store, settings: WebhookSettings) -> Result<Webhooks, WebhookError> {
        let sender = Sender::new(
            settings.allow_loopback,
            settings.connect_timeout,
            settings.response_timeout,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "the webhook HTTP client could not be built");
            WebhookError::Unavailable
        })?;
        let shared = Arc::new(Shared {
            store,
            settings,
            sender,
            running: Mutex::new(HashMap::new()),
        });
        let (supervisor, _) = Actor::spawn(
            None,
            Supervisor {
                shared: Arc::downgrade(&shared),
            },
            (),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the webhook supervisor did not start");
            WebhookError::Unavailable
        })?;
        let endpoints: Vec<Endpoint> = shared
            .store
            .tables()
            .webhooks
            .values()
            .collect::<Result<_, _>>()?;
        for e in endpoints {
            shared.spawn(e, supervisor.get_cell()).await?;
        }
        Ok(Webhooks { shared, supervisor })
    }

    /// Stores a new endpoint (durably) and starts delivering to it.
    pub async fn create(&self, endpoint: Endpoint) -> Result<Endpoint, WebhookError> {
        // A fresh random id: no actor can hold it yet, so this write has no rival.
        self.shared
            .store
            .tables()
            .webhooks
            .put(&endpoint.id, &endpoint)?;
        let barrier = self.shared.store.barrier();
        barrier.wait(barrier.ticket()).await?;
        self.shared
            .spawn(endpoint.clone(), self.supervisor.get_cell())
            .await?;
        Ok(endpoint)
    }

    /// One endpoint as its actor has it.
    pub async fn get(&self, id: &str) -> Result<Endpoint, WebhookError> {
        ask(&self.shared.actor(id)?, Msg::Get).await
    }

    /// Every endpoint, oldest first.
    pub async fn list(&self) -> Result<Vec<Endpoint>, WebhookError> {
        let actors: Vec<ActorRef<Msg>> = self
            .shared
            .running
            .lock()
            .expect("webhooks lock")
            .values()
            .map(|r| r.actor.clone())
            .collect();
        let mut out = Vec::with_capacity(actors.len());
        for a in actors {
            match ask(&a, Msg::Get).await {
                Ok(e) => out.push(e),
                // Deleted meanwhile: not listed.
                Err(_) if a.get_status() != ractor::ActorStatus::Running => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Applies an admin's change (durably) and wakes the endpoint's worker.
    pub async fn change(&self, id: &str, change: Change) -> Result<Endpoint, WebhookError> {
        let e = ask(&self.shared.actor(id)?, |r| Msg::Change(change, r)).await??;
        let barrier = self.shared.store.barrier();
        barrier.wait(barrier.ticket()).await?;
        Ok(e)
    }

    /// Stops delivering to an endpoint and removes it with its attempts.
    pub async fn delete(&self, id: &str) -> Result<(), WebhookError> {
        let actor = self.shared.actor(id)?;
        ask(&actor, Msg::Delete).await??;
        self.shared
            .running
            .lock()
            .expect("webhooks lock")
            .remove(id);
        let barrier = self.shared.store.barrier();
        barrier.wait(barrier.ticket()).await?;
        Ok(())
    }

    /// An endpoint's attempts, newest first: at most `limit`, older than attempt `before`
    /// if given; and the cursor of the next page.
    pub fn attempts(
        &self,
        id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Attempt>, Option<u64>), WebhookError> {
        self.shared.actor(id)?;
        let after = before.map(|n| webhook_attempt_key(id, n));
        let page = self.shared.store.tables().webhook_attempts.scan_prefix(
            id.as_bytes(),
            after.as_deref(),
            limit,
        )?;
        let items: Vec<Attempt> = page.into_iter().map(|(_, a)| a).collect();
        let next = (items.len() == limit)
            .then(|| items.last().map(|a| a.number))
            .flatten()
            .filter(|&n| n > 1);
        Ok((items, next))
    }

    /// Each endpoint's id and offset (the last event delivered or passed over).
    pub fn offsets(&self) -> Vec<(String, u64)> {
        self.shared
            .running
            .lock()
            .expect("webhooks lock")
            .iter()
            .map(|(id, r)| (id.clone(), r.offset.load(Ordering::Acquire)))
            .collect()
    }

    /// Stops every endpoint's actor (and so its worker); what they delivered is stored.
    pub async fn stop(&self) {
        let actors: Vec<ActorRef<Msg>> = self
            .shared
            .running
            .lock()
            .expect("webhooks lock")
            .drain()
            .map(|(_, r)| r.actor)
            .collect();
        for a in actors {
            let _ = a.stop_and_wait(None, Some(Duration::from_secs(5))).await;
        }
        self.supervisor.stop(None);
    }
}

/// Restarts a panicked endpoint actor from its stored record.
struct Supervisor {
    shared: std::sync::Weak<Shared>,
}

impl Actor for Supervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    /// Overrides ractor's default, which would stop the supervisor (and every endpoint)
    /// when one child stops — a deleted endpoint's actor stops normally.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        evt: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, err) = evt else {
            return Ok(());
        };
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let id = {
            let mut running = shared.running.lock().expect("webhooks lock");
            let id = running
                .iter()
                .find(|(_, r)| r.actor.get_id() == cell.get_id())
                .map(|(id, _)| id.clone());
            if let Some(id) = &id {
                running.remove(id);
            }
            id
        };
        let Some(id) = id else { return Ok(()) };
        tracing::error!(error = %err, "a webhook endpoint's actor failed; starting it again from the store");
        metrics::counter!("emporium_webhook_actor_restarts_total").increment(1);
        match shared.store.tables().webhooks.get(&id) {
            Ok(Some(e)) => {
                if let Err(e) = shared.spawn(e, myself.get_cell()).await {
                    tracing::error!(error = %e, "the webhook endpoint could not be started again");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "the webhook endpoint could not be read"),
        }
        Ok(())
    }
}

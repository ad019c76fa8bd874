//! Notifications: email from stored templates, fed by the event log.
//!
//! Two stages, so that a slow or broken mail server never holds up the event log:
//!
//! 1. The [`Notifier`] is an event-log subscriber. For an event that warrants a mail
//!    (`OrderPlaced` → receipt, `OrderShipped`, `OrderCancelled`, `OrderRefunded`,
//!    `PaymentFailed`, `CartAbandoned`) it renders the template and stores a
//!    [`Notification`] keyed by the event's sequence number, with a queue entry, in one
//!    atomic write. Keyed by the event, a redelivered event finds its notification and
//!    adds nothing: one event, one mail.
//! 2. The sender task takes queued notifications and hands them to the [`mailer::Mailer`],
//!    retrying failures with exponential backoff up to a bounded number of attempts; the
//!    outcome (sent, or failed with the last error) is stored and listed by the admin API.
//!
//! A crash between a send and the record of it sends the message again on restart; the
//! message keeps its id (the outbox file name, the SMTP `Message-ID`), so the outbox still
//! holds one file per notification and mail clients see one message.

pub mod mailer;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::actors::{Delivery, Subscriber};
use crate::domain::event::{DomainEvent, LoggedEvent};
use crate::domain::order::Order;
use crate::domain::{Millis, now_millis};
use crate::storage::{Mark, StorageError, Store, WriteBatch};
use mailer::{Email, Mailer};
use templates::Template;

/// Where a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Accepted by the mailer.
    Sent,
    /// Attempts exhausted, or it could not be rendered.
    Failed,
}

impl NotificationStatus {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Pending => "pending",
            NotificationStatus::Sent => "sent",
            NotificationStatus::Failed => "failed",
        }
    }
}

/// One email, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The sequence number of the event that caused it (its key).
    pub seq: u64,
    /// Template name.
    pub template: String,
    /// The order or cart it is about.
    pub subject_id: String,
    /// Recipient.
    pub to: String,
    /// Rendered subject.
    pub subject: String,
    /// Rendered text part.
    pub text: String,
    /// Rendered HTML part.
    pub html: String,
    /// Where it is.
    pub status: NotificationStatus,
    /// Send attempts made.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: Millis,
    /// When the next attempt is due.
    pub next_attempt_at: Millis,
    /// When it was sent.
    pub sent_at: Option<Millis>,
}

impl Notification {
    /// The message id: the outbox file name and the `Message-ID`.
    pub fn message_id(&self) -> String {
        format!("{}-{:012}", self.template, self.seq)
    }
}

/// Settings of the notifier.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The `From:` address.
    pub from: String,
    /// Attempts before a message is marked failed.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one (capped at 10 minutes).
    pub retry_base: Duration,
}

/// The subscriber name (its offset key).
pub const SUBSCRIBER: &str = "notifier";

/// Short display form of an order id: `0123-4567`.
fn order_number(id: &str) -> String {
    let head: String = id.chars().take(8).collect();
    match head.len() {
        8 => format!("{}-{}", &head[..4], &head[4..]),
        _ => head,
    }
}

/// A line as templates see it (orders and carts alike).
fn line_context(sku: &str, name: &str, quantity: u32, unit_price: u64, line_total: u64) -> Value {
    json!({"sku": sku, "name": name, "quantity": quantity, "unit_price": unit_price,
           "line_total": line_total})
}

fn order_context(o: &Order) -> Value {
    json!({
        "id": o.id, "number": order_number(&o.id), "email": o.email, "status": o.status.as_str(),
        "currency": o.currency, "subtotal": o.subtotal, "total": o.total,
        "items": o.lines.iter()
            .map(|l| line_context(l.sku.as_str(), &l.name, l.quantity, l.unit_price, l.line_total))
            .collect::<Vec<_>>(),
        "shipping_address": {
            "name": o.shipping_address.name, "line1": o.shipping_address.line1,
            "line2": o.shipping_address.line2, "city": o.shipping_address.city,
            "postal_code": o.shipping_address.postal_code, "country": o.shipping_address.country,
        },
        "carrier": o.shipment.as_ref().and_then(|s| s.carrier.clone()),
        "tracking": o.shipment.as_ref().and_then(|s| s.tracking.clone()),
    })
}

/// The current template `name`: the stored override, or the built-in default.
pub fn template(store: &Store, name: &str) -> Result<Option<Template>, StorageError> {
    if !templates::NAMES.contains(&name) {
        return Ok(None);
    }
    Ok(store
        .tables()
        .templates
        .get(name)?
        .or_else(|| templates::default_template(name)))
}

/// The event-log subscriber that turns events into stored notifications.
pub struct Notifier {
    store: Store,
    /// Wakes the sender when something is queued.
    wake: Arc<tokio::sync::Notify>,
    currency: String,
}

impl Notifier {
    pub(crate) fn new(store: Store, wake: Arc<tokio::sync::Notify>, currency: String) -> Self {
        Notifier {
            store,
            wake,
            currency,
        }
    }

    /// Which template, about what, to whom, with which context — or nothing to send.
    fn plan(
        &self,
        event: &DomainEvent,
    ) -> Result<Option<(&'static str, String, String, Value)>, StorageError> {
        let tables = self.store.tables();
        let order = |id: &str| tables.orders.get(id);
        let (name, id) = match event {
            DomainEvent::OrderPlaced { order_id, .. } => ("order_confirmation", order_id),
            DomainEvent::OrderShipped { order_id, .. } => ("order_shipped", order_id),
            DomainEvent::OrderCancelled { order_id } => ("order_cancelled", order_id),
            DomainEvent::OrderRefunded { order_id, .. } => ("order_refunded", order_id),
            DomainEvent::PaymentFailed { order_id, reason } => {
                let Some(o) = order(order_id)? else {
                    return Ok(None);
                };
                let ctx = json!({"order": order_context(&o), "reason": reason, "shop": "Emporium"});
                return Ok(Some(("payment_failed", o.id, o.email, ctx)));
            }
            DomainEvent::CartAbandoned { cart_id } => {
                let Some(cart) = tables.carts.get(cart_id)? else {
                    return Ok(None);
                };
                let Some(email) = cart.email.clone() else {
                    return Ok(None);
                };
                let priced = tables.price_cart(&cart)?;
                if priced.lines.is_empty() {
                    return Ok(None);
                }
                let items: Vec<Value> = priced
                    .lines
                    .into_iter()
                    .map(|l| {
                        line_context(
                            l.sku.as_str(),
                            &l.name,
                            l.quantity,
                            l.unit_price,
                            l.line_total,
                        )
                    })
                    .collect();
                let ctx = json!({"cart": {"id": cart.id, "items": items, "total": priced.total,
                                          "currency": self.currency}, "shop": "Emporium"});
                return Ok(Some(("cart_abandoned", cart.id, email, ctx)));
            }
            _ => return Ok(None),
        };
        let Some(o) = order(id)? else {
            return Ok(None);
        };
        let ctx = json!({"order": order_context(&o), "shop": "Emporium"});
        Ok(Some((name, o.id, o.email, ctx)))
    }

    async fn note(&self, event: &LoggedEvent) -> Result<(), String> {
        let tables = self.store.tables();
        if tables
            .notifications
            .contains(&event.seq)
            .map_err(|e| e.to_string())?
        {
            return Ok(()); // redelivered: already noted
        }
        let Some((name, subject_id, to, ctx)) =
            self.plan(&event.event).map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let now = now_millis();
        let tpl = template(&self.store, name)
            .map_err(|e| e.to_string())?
            .ok_or("no such template")?;
        let mut n = Notification {
            seq: event.seq,
            template: name.to_owned(),
            subject_id,
            to,
            subject: String::new(),
            text: String::new(),
            html: String::new(),
            status: NotificationStatus::Pending,
            attempts: 0,
            last_error: None,
            created_at: now,
            next_attempt_at: now,
            sent_at: None,
        };
        match templates::render(name, &tpl, &ctx) {
            Ok(r) => {
                n.subject = r.subject;
                n.text = r.text;
                n.html = r.html;
            }
            Err(e) => {
                n.status = NotificationStatus::Failed;
                n.last_error = Some(format!("rendering: {e}"));
            }
        }
        let mut batch = WriteBatch::default();
        batch
            .put(&tables.notifications, &event.seq, &n)
            .map_err(|e| e.to_string())?;
        if n.status == NotificationStatus::Pending {
            batch
                .put(&tables.mail_queue, &event.seq, &Mark)
                .map_err(|e| e.to_string())?;
        }
        // No flush wait here: the dispatcher's offset is written after this, so whenever the
        // offset survives a crash this record does too (sled recovers a prefix of its log);
        // otherwise the event is delivered again and noted again.
        self.store.write(batch).map_err(|e| e.to_string())?;
        self.wake.notify_one();
        Ok(())
    }
}

impl Subscriber for Notifier {
    fn name(&self) -> &str {
        SUBSCRIBER
    }

    fn handle<'a>(&'a self, event: &'a LoggedEvent) -> Delivery<'a> {
        Box::pin(self.note(event))
    }
}

/// Sends queued notifications until the task is aborted.
pub(crate) async fn run_sender(
    store: Store,
    mailer: Arc<dyn Mailer>,
    config: NotifyConfig,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        let next_due = match send_due(&store, &*mailer, &config).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "the mail sender could not read its queue");
                Some(now_millis() + 1000)
            }
        };
        let wait = next_due.map_or(Duration::from_secs(5), |at| {
            Duration::from_millis((at - now_millis()).clamp(10, 5000) as u64)
        });
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Sends every due notification once; returns when the next one is due.
async fn send_due(
    store: &Store,
    mailer: &dyn Mailer,
    config: &NotifyConfig,
) -> Result<Option<Millis>, StorageError> {
    let tables = store.tables();
    let mut next_due: Option<Millis> = None;
    let queued = tables.mail_queue.scan_from(0, 1000)?;
    for (seq, _) in queued {
        let Some(mut n) = tables.notifications.get(&seq)? else {
            tables.mail_queue.remove(&seq)?;
            continue;
        };
        let now = now_millis();
        if n.next_attempt_at > now {
            next_due = Some(next_due.map_or(n.next_attempt_at, |d| d.min(n.next_attempt_at)));
            continue;
        }
        let email = Email {
            id: n.message_id(),
            from: config.from.clone(),
            to: n.to.clone(),
            subject: n.subject.clone(),
            text: n.text.clone(),
            html: n.html.clone(),
        };
        let outcome = match tokio::time::timeout(Duration::from_secs(30), mailer.send(&email)).await
        {
            Ok(r) => r,
            Err(_) => Err("the mailer did not answer in 30 s".into()),
        };
        n.attempts += 1;
        let label = match (&outcome, n.attempts >= config.max_attempts) {
            (Ok(()), _) => "sent",
            (Err(_), true) => "failed",
            (Err(_), false) => "retrying",
        };
        metrics::counter!("emporium_emails_total", "outcome" => label).increment(1);
        let done = match outcome {
            Ok(()) => {
                n.status = NotificationStatus::Sent;
                n.sent_at = Some(now_millis());
                n.last_error = None;
                true
            }
            Err(e) => {
                tracing::warn!(notification = %n.message_id(), attempt = n.attempts, error = %e, "sending failed");
                n.last_error = Some(e);
                if n.attempts >= config.max_attempts {
                    n.status = NotificationStatus::Failed;
                    true
                } else {
                    let backoff = config
                        .retry_base
                        .saturating_mul(1 << (n.attempts - 1).min(16))
                        .min(Duration::from_secs(600));
                    n.next_attempt_at = now_millis() + backoff.as_millis() as Millis;
                    next_due =
                        Some(next_due.map_or(n.next_attempt_at, |d| d.min(n.next_attempt_at)));
                    false
                }
            }
        };
        let mut batch = WriteBatch::default();
        batch.put(&tables.notifications, &seq, &n)?;
        if done {
            batch.remove(&tables.mail_queue, &seq);
        }
        store.write(batch)?;
    }
    Ok(next_due)
}

/// One page of notifications, newest last.
pub fn list(
    store: &Store,
    after: u64,
    limit: usize,
) -> Result<(Vec<Notification>, Option<u64>), StorageError> {
    let page = store
        .tables()
        .notifications
        .scan_from(after + 1, limit + 1)?;
    let more = page.len() > limit;
    let items: Vec<Notification> = page.into_iter().take(limit).map(|(_, n)| n).collect();
    let next = more.then(|| items.last().map(|n| n.seq)).flatten();
    Ok((items, next))
}

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
//! message keeps its id (the outbox's `X-Emporium-Id`, the SMTP `Message-ID`); the outbox
//! recognises a message its newest file already holds, so it holds one copy per
//! notification, and mail clients see one message.

pub mod mailer;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::dispatcher::{Delivery, DeliveryError, Subscriber};
use crate::domain::Millis;
use crate::domain::customer::{TokenPurpose, mailed_token, token_digest};
use crate::domain::event::{DomainEvent, LoggedEvent};
pub use crate::domain::notification::{Notification, NotificationStatus};
use crate::domain::order::Order;
use crate::storage::{Mark, StorageError, Store, WriteBatch};
use mailer::{Email, MailError, Mailer};
use templates::Template;

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
pub(crate) fn order_number(id: &str) -> String {
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

/// Basis points as a percentage for people: 1900 → `19%`, 725 → `7.25%`.
fn percent(bp: u64) -> String {
    let (whole, frac) = (bp / 100, bp % 100);
    match frac {
        0 => format!("{whole}%"),
        f if f % 10 == 0 => format!("{whole}.{}%", f / 10),
        f => format!("{whole}.{f:02}%"),
    }
}

/// A bill as templates see it (receipts and storefront pages alike): subtotal, discounts,
/// shipping, tax lines with their rate for people, whether tax is included, total.
pub(crate) fn bill_context(b: &crate::domain::pricing::Breakdown) -> Value {
    json!({
        "subtotal": b.subtotal, "shipping": b.shipping, "total": b.total,
        "tax_included": b.tax_included,
        "discounts": b.discounts.iter()
            .map(|d| json!({"code": d.code, "automatic": d.automatic, "amount": d.amount}))
            .collect::<Vec<_>>(),
        "tax": b.tax.iter()
            .map(|t| json!({"name": t.name, "rate": percent(t.rate_bp), "amount": t.amount}))
            .collect::<Vec<_>>(),
    })
}

fn order_context(o: &Order) -> Value {
    let mut context = json!({
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
        "shipping_method": o.pricing.shipping_method.as_ref().map(|(_, name)| name),
        "refunded": o.refunded_so_far(),
        "carrier": o.shipment.as_ref().and_then(|s| s.carrier.clone()),
        "tracking": o.shipment.as_ref().and_then(|s| s.tracking.clone()),
    });
    // The bill's fields sit in the order itself (`order.discounts`, `order.tax` …).
    if let (Value::Object(order), Value::Object(bill)) =
        (&mut context, bill_context(&o.pricing.breakdown))
    {
        order.extend(bill);
    }
    context
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
    /// What mailed tokens are derived with.
    tokens: TokenMail,
    /// Templates compiled once per version.
    compiled: templates::Cache,
}

/// What the notifier needs to mail customers their tokens.
#[derive(Clone)]
pub(crate) struct TokenMail {
    /// The engine's secret (see `domain::customer::mailed_token`).
    pub secret: Arc<[u8]>,
    /// How long a reset token works, for the mail's text.
    pub reset_ttl_minutes: i64,
    /// How long a verification token works, for the mail's text.
    pub verify_ttl_minutes: i64,
}

impl Notifier {
    pub(crate) fn new(
        store: Store,
        wake: Arc<tokio::sync::Notify>,
        currency: String,
        tokens: TokenMail,
    ) -> Self {
        Notifier {
            store,
            wake,
            currency,
            tokens,
            compiled: templates::Cache::default(),
        }
    }

    /// The mail of a token a customer asked for: the token is derived again from the
    /// event's nonce; a token superseded by a later request (or used) is not sent.
    fn token_mail(
        &self,
        name: &'static str,
        customer_id: &str,
        nonce: &str,
    ) -> Result<Option<(&'static str, String, String, Value)>, StorageError> {
        let Some(c) = self.store.tables().customers.get(customer_id)? else {
            return Ok(None);
        };
        let (purpose, ttl) = match name {
            "password_reset" => (TokenPurpose::Reset, self.tokens.reset_ttl_minutes),
            _ => (TokenPurpose::Verify, self.tokens.verify_ttl_minutes),
        };
        let token = mailed_token(&self.tokens.secret, purpose, customer_id, nonce);
        if c.pending(purpose)
            .is_none_or(|p| p.digest != token_digest(&token))
        {
            return Ok(None);
        }
        let ctx = json!({"customer": {"name": c.name, "email": c.email}, "token": token,
                         "expires_in_minutes": ttl, "shop": "Emporium"});
        Ok(Some((name, c.id, c.email, ctx)))
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
            DomainEvent::PaymentFailed {
                order_id,
                reason,
                notify,
            } => {
                let (true, Some(o)) = (*notify, order(order_id)?) else {
                    return Ok(None);
                };
                let ctx = json!({"order": order_context(&o), "reason": reason, "shop": "Emporium"});
                return Ok(Some(("payment_failed", o.id, o.email, ctx)));
            }
            DomainEvent::PasswordResetRequested { customer_id, nonce } => {
                return self.token_mail("password_reset", customer_id, nonce);
            }
            DomainEvent::EmailVerificationRequested { customer_id, nonce } => {
                return self.token_mail("email_verification", customer_id, nonce);
            }
            DomainEvent::CartAbandoned { cart_id } => {
                let Some(cart) = tables.carts.get(cart_id)? else {
                    return Ok(None);
                };
                let Some(email) = cart.email.clone() else {
                    return Ok(None);
                };
                let priced = crate::catalog::price_cart(tables, &cart)?;
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
                let ctx = json!({"cart": {"id": cart.id, "items": items, "total": priced.subtotal,
                                          "currency": self.currency}, "shop": "Emporium"});
                return Ok(Some(("cart_abandoned", cart.id, email, ctx)));
            }
            _ => return Ok(None),
        };
        let Some(o) = order(id)? else {
            return Ok(None);
        };
        let refund_amount = match event {
            DomainEvent::OrderRefunded { amount, .. } => *amount,
            _ => 0,
        };
        let ctx = json!({"order": order_context(&o), "refund_amount": refund_amount,
                         "shop": "Emporium"});
        Ok(Some((name, o.id, o.email, ctx)))
    }

    async fn note(&self, event: &LoggedEvent) -> Result<(), DeliveryError> {
        let tables = self.store.tables();
        if let Some(noted) = tables.notifications.get(&event.seq)? {
            // Redelivered: already noted. A crash between the two inserts below can have
            // left a pending notification without its queue entry; put it back.
            if noted.status == NotificationStatus::Pending
                && !tables.mail_queue.contains(&event.seq)?
            {
                tables.mail_queue.put(&event.seq, &Mark)?;
                self.wake.notify_one();
            }
            return Ok(());
        }
        let Some((name, subject_id, to, ctx)) = self.plan(&event.event)? else {
            return Ok(());
        };
        let now = self.store.clock().now();
        let tpl = template(&self.store, name)?.ok_or(DeliveryError::Missing("template"))?;
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
        match self.compiled.render(name, &tpl, &ctx) {
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
        // Two plain inserts, the notification first, not one multi-key write: a journal
        // entry would copy the whole rendered mail once more. The sender only looks at
        // queued ones, so it never finds a queue entry without its notification; a crash
        // between the two leaves a pending notification unqueued, and the redelivery (the
        // dispatcher's offset is written after this, and sled recovers a prefix of its
        // log) queues it above. No flush wait: the offset orders it.
        let stored = tables.notifications.put(&event.seq, &n);
        if let Err(StorageError::TooLarge(size)) = stored {
            // A mail too large to store cannot be sent either: record it as failed, with
            // the reason, and let the queue move on.
            tracing::warn!(
                seq = event.seq,
                template = name,
                size,
                "rendered mail over the record limit; not sent"
            );
            n.status = NotificationStatus::Failed;
            n.last_error = Some(format!(
                "the rendered mail is {size} bytes, over the store's {}-byte record limit; not sent",
                crate::storage::MAX_RECORD_BYTES
            ));
            n.text.clear();
            n.html.clear();
            n.subject = n.subject.chars().take(200).collect();
            tables.notifications.put(&event.seq, &n)?;
        } else {
            stored?;
        }
        if n.status == NotificationStatus::Pending {
            tables.mail_queue.put(&event.seq, &Mark)?;
        }
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
    let clock = store.clock().clone();
    loop {
        let next_due = match send_due(&store, &*mailer, &config).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "the mail sender could not read its queue");
                Some(clock.now() + 1000)
            }
        };
        // Wake when the next one is due, or at the latest every 5 s (a manual clock may
        // jump far past it), never spinning faster than every 10 ms.
        let now = clock.now();
        let at = next_due.map_or(now + 5000, |at| at.clamp(now + 10, now + 5000));
        tokio::select! {
            // Woken by a new notification: linger a moment so that the mails of a busy
            // moment go out as one group (one outbox file, two syncs) rather than one
            // group per wake-up — about three mails a group under a checkout load without
            // it.
            () = wake.notified() => tokio::time::sleep(SEND_LINGER).await,
            () = clock.sleep_until(at) => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// How long the sender gathers new mails after a wake-up before sending them.
const SEND_LINGER: Duration = Duration::from_millis(50);

/// Messages handed to the mailer at once ([`Mailer::send_all`]): the outbox makes a group
/// durable with two syncs instead of two per message; SMTP sessions overlap.
const SEND_PARALLEL: usize = 32;

/// Sends every due notification once, up to [`SEND_PARALLEL`] at a time, and records each
/// outcome (one store write per group); returns when the next one is due.
async fn send_due(
    store: &Store,
    mailer: &dyn Mailer,
    config: &NotifyConfig,
) -> Result<Option<Millis>, StorageError> {
    let tables = store.tables();
    let mut next_due: Option<Millis> = None;
    let mut due_later = |at: Millis| next_due = Some(next_due.map_or(at, |d| d.min(at)));
    let now = store.clock().now();
    let mut due: Vec<(u64, Notification)> = Vec::new();
    for (seq, _) in tables.mail_queue.scan_from(0, 1000)? {
        match tables.notifications.get(&seq)? {
            None => tables.mail_queue.remove(&seq)?,
            Some(n) if n.next_attempt_at > now => due_later(n.next_attempt_at),
            Some(n) => due.push((seq, n)),
        }
    }
    for group in due.chunks_mut(SEND_PARALLEL) {
        let emails: Vec<Email> = group
            .iter()
            .map(|(_, n)| Email {
                id: n.message_id(),
                from: config.from.clone(),
                to: n.to.clone(),
                subject: n.subject.clone(),
                text: n.text.clone(),
                html: n.html.clone(),
            })
            .collect();
        let outcomes =
            match tokio::time::timeout(Duration::from_secs(30), mailer.send_all(&emails)).await {
                Ok(r) => r,
                Err(_) => vec![Err(MailError::Timeout(Duration::from_secs(30))); emails.len()],
            };
        // Each outcome (the notification and its queue entry) is atomic; the group's go
        // out in as few writes as keep each under the journal's limit.
        let mut writer = crate::storage::GroupWriter::new(store);
        let sent_at = store.clock().now();
        for ((seq, n), outcome) in group.iter_mut().zip(outcomes) {
            let done = record_outcome(n, outcome, config, sent_at);
            if !done {
                due_later(n.next_attempt_at);
            }
            let mut one = WriteBatch::default();
            one.put(&tables.notifications, seq, n)?;
            if done {
                one.remove(&tables.mail_queue, seq);
            }
            writer.add(one, Vec::new())?;
        }
        writer.flush()?;
    }
    Ok(next_due)
}

/// Applies one send attempt's outcome to `n`; whether it is finished (sent, or failed for
/// good) rather than due again later.
fn record_outcome(
    n: &mut Notification,
    outcome: Result<(), MailError>,
    config: &NotifyConfig,
    now: Millis,
) -> bool {
    n.attempts += 1;
    let label = match (&outcome, n.attempts >= config.max_attempts) {
        (Ok(()), _) => "sent",
        (Err(_), true) => "failed",
        (Err(_), false) => "retrying",
    };
    metrics::counter!("emporium_emails_total", "outcome" => label).increment(1);
    match outcome {
        Ok(()) => {
            n.status = NotificationStatus::Sent;
            n.sent_at = Some(now);
            n.last_error = None;
            true
        }
        Err(e) => {
            tracing::warn!(notification = %n.message_id(), attempt = n.attempts, error = %e, "sending failed");
            n.last_error = Some(e.to_string());
            if n.attempts >= config.max_attempts {
                n.status = NotificationStatus::Failed;
                true
            } else {
                let backoff = config
                    .retry_base
                    .saturating_mul(1 << (n.attempts - 1).min(16))
                    .min(Duration::from_secs(600));
                n.next_attempt_at = now + backoff.as_millis() as Millis;
                false
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::notify::mailer::SendFuture;
    use crate::storage::StoreOptions;

    /// Counts sends per message id and the most in flight at once; fails the ids given.
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<HashMap<String, u32>>,
        in_flight: AtomicUsize,
        most: AtomicUsize,
        failing: Vec<String>,
    }

    impl Mailer for Recorder {
        fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
            Box::pin(async move {
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                if self.failing.contains(&email.id) {
                    return Err(MailError::Timeout(Duration::from_secs(1)));
                }
                *self
                    .sent
                    .lock()
                    .unwrap()
                    .entry(email.id.clone())
                    .or_default() += 1;
                Ok(())
            })
        }
    }

    fn queued(store: &Store, seq: u64) {
        let tables = store.tables();
        let n = Notification {
            seq,
            template: "order_confirmation".into(),
            subject_id: format!("o{seq}"),
            to: "a@b.co".into(),
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
            status: NotificationStatus::Pending,
            attempts: 0,
            last_error: None,
            created_at: 0,
            next_attempt_at: 0,
            sent_at: None,
        };
        let mut batch = WriteBatch::default();
        batch.put(&tables.notifications, &seq, &n).unwrap();
        batch.put(&tables.mail_queue, &seq, &Mark).unwrap();
        store.write(batch).unwrap();
    }

    #[tokio::test]
    async fn a_redelivered_event_queues_its_pending_notification_again_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let tables = store.tables();
        let wake = Arc::new(tokio::sync::Notify::new());
        let tokens = TokenMail {
            secret: Arc::from(&b"test secret"[..]),
            reset_ttl_minutes: 60,
            verify_ttl_minutes: 60,
        };
        let notifier = Notifier::new(store.clone(), wake, "EUR".into(), tokens);
        let logged = |seq| LoggedEvent {
            seq,
            at: 0,
            event: DomainEvent::OrderDelivered {
                order_id: format!("o{seq}"),
            },
        };
        // Seq 1: a crash came between the notification's insert and its queue entry's.
        queued(&store, 1);
        tables.mail_queue.remove(&1).unwrap();
        // Seq 2: already sent (its queue entry removed with the outcome).
        queued(&store, 2);
        let mut sent = tables.notifications.get(&2).unwrap().unwrap();
        sent.status = NotificationStatus::Sent;
        tables.notifications.put(&2, &sent).unwrap();
        tables.mail_queue.remove(&2).unwrap();

        for seq in [1, 2, 1] {
            notifier.note(&logged(seq)).await.unwrap();
        }
        assert!(tables.mail_queue.contains(&1).unwrap(), "queued again");
        assert!(
            !tables.mail_queue.contains(&2).unwrap(),
            "a sent one stays sent"
        );
        let n = tables.notifications.get(&1).unwrap().unwrap();
        assert_eq!(
            (n.subject.as_str(), n.attempts),
            ("s", 0),
            "not rendered again"
        );
    }

    #[tokio::test]
    async fn a_group_of_large_mails_records_its_outcomes_in_writes_under_the_journal_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        for seq in 1..=SEND_PARALLEL as u64 {
            queued(&store, seq);
            let mut n = store.tables().notifications.get(&seq).unwrap().unwrap();
            n.html = "x".repeat(8 * 1024);
            store.tables().notifications.put(&seq, &n).unwrap();
        }
        let config = NotifyConfig {
            from: "shop@example.com".into(),
            max_attempts: 3,
            retry_base: Duration::from_secs(60),
        };
        // One group of 32 outcomes of 8 KiB each: 256 KiB, four times the journal limit.
        let next = send_due(&store, &Recorder::default(), &config)
            .await
            .unwrap();
        assert_eq!(next, None);
        let tables = store.tables();
        for seq in 1..=SEND_PARALLEL as u64 {
            let n = tables.notifications.get(&seq).unwrap().unwrap();
            assert_eq!(n.status, NotificationStatus::Sent);
            assert!(!tables.mail_queue.contains(&seq).unwrap());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn due_mail_is_sent_in_parallel_groups_each_message_once_with_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        for seq in 1..=100 {
            queued(&store, seq);
        }
        let failing = store
            .tables()
            .notifications
            .get(&7)
            .unwrap()
            .unwrap()
            .message_id();
        let mailer = Recorder {
            failing: vec![failing.clone()],
            ..Default::default()
        };
        let config = NotifyConfig {
            from: "shop@example.com".into(),
            max_attempts: 3,
            retry_base: Duration::from_secs(60),
        };
        let next = send_due(&store, &mailer, &config).await.unwrap();

        let most = mailer.most.load(Ordering::SeqCst);
        assert!(
            (2..=SEND_PARALLEL).contains(&most),
            "{most} in flight at most"
        );
        let sent = mailer.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 99);
        assert!(sent.values().all(|&n| n == 1), "each message once");
        let tables = store.tables();
        for seq in 1..=100u64 {
            let n = tables.notifications.get(&seq).unwrap().unwrap();
            assert_eq!(n.attempts, 1);
            if seq == 7 {
                assert_eq!(n.status, NotificationStatus::Pending);
                let refused = MailError::Timeout(Duration::from_secs(1)).to_string();
                assert_eq!(n.last_error, Some(refused));
                assert!(tables.mail_queue.get(&seq).unwrap().is_some(), "due again");
                assert_eq!(next, Some(n.next_attempt_at));
            } else {
                assert_eq!(n.status, NotificationStatus::Sent);
                assert!(tables.mail_queue.get(&seq).unwrap().is_none());
            }
        }
    }
}

//! Engine configuration (the library's; the binary maps its flags onto it).

use std::path::PathBuf;
use std::time::Duration;

pub use crate::clock::Clock;
pub use crate::engine::{LoginLimits, PasswordCost};
pub use crate::payments::GatewayPolicy;
pub use crate::storage::Durability;
pub use crate::webhooks::WebhookSettings;

/// Everything [`crate::Engine::open`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the store and generated files live.
    pub data_dir: PathBuf,
    /// Whether replies wait for fsync (strict) or not (relaxed: demos and benches only).
    pub durability: Durability,
    /// ISO 4217 code of the store's currency.
    pub currency: String,
    /// An entity actor idle this long is stopped; its state stays in the store.
    pub passivate_after: Duration,
    /// Resident actors of one kind above which idle ones are passivated at once (after
    /// half a second) rather than after `passivate_after`: bounds memory under a surge of
    /// new carts (≈ 8 KB each). A soft cap: activations are never refused.
    pub max_resident_actors: usize,
    /// A cart unchanged this long is gone.
    pub cart_ttl: Duration,
    /// A reservation not committed or released within this time lapses.
    pub reservation_ttl: Duration,
    /// How long a caller waits for an actor's reply.
    pub call_timeout: Duration,
    /// How often stored carts are swept for expiry.
    pub cart_sweep_interval: Duration,
    /// sled's page cache size.
    pub cache_capacity_bytes: u64,
    /// Rebuild the search index from the store on open, whatever its state.
    pub rebuild_index: bool,
    /// How long a checkout request waits for its saga before answering 503 (the saga
    /// goes on; a retry with the same key gets its outcome).
    pub checkout_timeout: Duration,
    /// Timeouts and retries of payment gateway calls.
    pub gateway_policy: GatewayPolicy,
    /// How long the simulated gateway takes for `tok_slow`.
    pub simulated_gateway_delay: Duration,
    /// How often orders with outstanding work (a saga interrupted, a refund owed) are
    /// driven again in the background.
    pub recovery_interval: Duration,
    /// How long a checkout's idempotency key is remembered (at least 24 hours).
    pub idempotency_ttl: Duration,
    /// Send mail over SMTP (`smtp://host:port`) instead of writing `.eml` files to
    /// `data_dir/outbox`.
    pub smtp_url: Option<String>,
    /// The `From:` of every mail.
    pub mail_from: String,
    /// Send attempts before a mail is marked failed.
    pub mail_max_attempts: u32,
    /// Wait before the first retry of a failed send; doubled for each further one.
    pub mail_retry_base: Duration,
    /// A cart with items and an email, unchanged this long, gets a reminder (checked by
    /// the cart sweep, every `cart_sweep_interval`).
    pub abandoned_cart_after: Duration,
    /// Failed checkouts a cart may have per `failed_checkout_window`; the next one is
    /// refused (`429`) until the oldest leaves the window.
    pub failed_checkouts_per_window: usize,
    /// The window of `failed_checkouts_per_window`; at most one payment-failure mail goes
    /// per cart per window.
    pub failed_checkout_window: Duration,
    /// A failed checkout that charged nothing is deleted this long after it was made (by
    /// the cart sweep).
    pub failed_order_retention: Duration,
    /// A customer session lapses after this long unused (each use slides it).
    pub session_ttl: Duration,
    /// How long a mailed password-reset token works.
    pub password_reset_ttl: Duration,
    /// How long a mailed email-verification token works.
    pub email_verification_ttl: Duration,
    /// The cost of a password hash (Argon2id).
    pub password_cost: PasswordCost,
    /// Limits on failed sign-ins.
    pub login_limits: LoginLimits,
    /// Webhook deliveries: destinations allowed, retries, timeouts, secret rotation.
    pub webhooks: WebhookSettings,
    /// The clock every business time is read from (TTLs, expiry, retention, reminders,
    /// event times): the system clock, or a [`Clock::manual`] one in tests.
    pub clock: Clock,
}

impl Config {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            durability: Durability::Strict,
            currency: "USD".into(),
            passivate_after: Duration::from_secs(5 * 60),
            max_resident_actors: 100_000,
            cart_ttl: Duration::from_secs(7 * 24 * 3600),
            reservation_ttl: Duration::from_secs(10 * 60),
            call_timeout: Duration::from_secs(5),
            cart_sweep_interval: Duration::from_secs(3600),
            cache_capacity_bytes: 256 * 1024 * 1024,
            rebuild_index: false,
            checkout_timeout: Duration::from_secs(20),
            gateway_policy: GatewayPolicy::default(),
            simulated_gateway_delay: Duration::from_millis(1500),
            recovery_interval: Duration::from_secs(10),
            idempotency_ttl: Duration::from_secs(48 * 3600),
            smtp_url: None,
            mail_from: "Emporium <shop@emporium.local>".into(),
            mail_max_attempts: 6,
            mail_retry_base: Duration::from_secs(2),
            abandoned_cart_after: Duration::from_secs(24 * 3600),
            failed_checkouts_per_window: 5,
            failed_checkout_window: Duration::from_secs(3600),
            failed_order_retention: Duration::from_secs(30 * 24 * 3600),
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            password_reset_ttl: Duration::from_secs(3600),
            email_verification_ttl: Duration::from_secs(24 * 3600),
            password_cost: PasswordCost::default(),
            login_limits: LoginLimits::default(),
            webhooks: WebhookSettings::default(),
            clock: Clock::system(),
        }
    }
}

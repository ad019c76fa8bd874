//! Webhook endpoints, for the admin: create (the secret is shown once), list, read,
//! update, delete, rotate the secret, replay from a sequence number, resume a failing
//! endpoint, and the attempts made. Delivery itself is `crate::webhooks`.

use std::net::IpAddr;

use super::{Engine, EngineError};
use crate::domain::Invalid;
use crate::domain::webhook::{
    Attempt, Endpoint, SECRET_BYTES, check_description, check_event_types, forbidden_address,
    parse_url, secret_text,
};
use crate::webhooks::{Change, WebhookError};

/// Most attempts listed per page.
pub const MAX_ATTEMPTS_PAGE: usize = 500;

/// Most endpoints a store may have (each has an actor and a worker).
pub const MAX_ENDPOINTS: usize = 100;

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct WebhookDraft {
    /// Where to post.
    pub url: String,
    /// Event types, or `["*"]`.
    pub event_types: Vec<String>,
    /// For people.
    pub description: Option<String>,
}

impl From<WebhookError> for EngineError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::NotFound => EngineError::NotFound("webhook endpoint"),
            WebhookError::Storage(s) => s.into(),
            e @ WebhookError::Unavailable => {
                EngineError::unavailable_because("the webhook endpoint", e)
            }
        }
    }
}

fn new_key() -> Result<Vec<u8>, EngineError> {
    let mut key = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut key).map_err(|e| {
        EngineError::unavailable_because("randomness", std::io::Error::other(e.to_string()))
    })?;
    Ok(key)
}

impl Engine {
    /// Checks a URL: its shape, and — when it names an address — that a delivery may go
    /// there. A name is checked again at every send, against what it resolves to then.
    fn check_webhook_url(&self, url: &str) -> Result<String, EngineError> {
        let u = parse_url(url)?;
        // `localhost` names this machine by definition (RFC 6761), whatever DNS says.
        let ip = if u.host == "localhost" || u.host.ends_with(".localhost") {
            Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        } else {
            u.host.parse::<IpAddr>().ok()
        };
        if let Some(why) =
            ip.and_then(|ip| forbidden_address(ip, self.inner.config.webhooks.allow_loopback))
        {
            return Err(
                Invalid::new("url", format!("{why} addresses cannot receive webhooks")).into(),
            );
        }
        Ok(u.url)
    }

    /// Creates an endpoint that delivers the events appended from now on; returns it and
    /// its signing secret (`whsec_…`), which is shown this once.
    pub async fn create_webhook(
        &self,
        draft: WebhookDraft,
    ) -> Result<(Endpoint, String), EngineError> {
        let url = self.check_webhook_url(&draft.url)?;
        let event_types = check_event_types(&draft.event_types)?;
        let description = check_description(draft.description.as_deref().unwrap_or(""))?;
        if self.inner.webhooks.offsets().len() >= MAX_ENDPOINTS {
            return Err(Invalid::new("url", "a store has at most 100 webhook endpoints").into());
        }
        let key = new_key()?;
        let secret = secret_text(&key);
        let endpoint = Endpoint::new(
            uuid::Uuid::new_v4().simple().to_string(),
            url,
            event_types,
            description,
            key,
            self.event_log_end()?,
            self.now(),
        );
        let e = self.inner.webhooks.create(endpoint).await?;
        Ok((e, secret))
    }

    /// Every endpoint, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<Endpoint>, EngineError> {
        Ok(self.inner.webhooks.list().await?)
    }

    /// One endpoint.
    pub async fn webhook(&self, id: &str) -> Result<Endpoint, EngineError> {
        Ok(self.inner.webhooks.get(id).await?)
    }

    /// Changes an endpoint's URL, event types or description (each optional). New event
    /// types apply from the endpoint's offset on.
    pub async fn update_webhook(
        &self,
        id: &str,
        url: Option<String>,
        event_types: Option<Vec<String>>,
        description: Option<String>,
    ) -> Result<Endpoint, EngineError> {
        let url = url.map(|u| self.check_webhook_url(&u)).transpose()?;
        let event_types = event_types.map(|t| check_event_types(&t)).transpose()?;
        let description = description.map(|d| check_description(&d)).transpose()?;
        Ok(self
            .inner
            .webhooks
            .change(
                id,
                Change::Update {
                    url,
                    event_types,
                    description,
                },
            )
            .await?)
    }

    /// A new signing secret (shown this once); the old one signs beside it for the
    /// configured overlap (24 h), so receivers can switch without a failed delivery.
    pub async fn rotate_webhook_secret(&self, id: &str) -> Result<(Endpoint, String), EngineError> {
        let key = new_key()?;
        let secret = secret_text(&key);
        let e = self
            .inner
            .webhooks
            .change(id, Change::Rotate { key })
            .await?;
        Ok((e, secret))
    }

    /// Delivers again every wanted event after `after_seq` (0: the whole log), in order.
    pub async fn replay_webhook(&self, id: &str, after_seq: u64) -> Result<Endpoint, EngineError> {
        let end = self.event_log_end()?;
        if after_seq > end {
            return Err(Invalid::new("after_seq", format!("the log ends at {end}")).into());
        }
        Ok(self
            .inner
            .webhooks
            .change(id, Change::Replay { after_seq })
            .await?)
    }

    /// Resumes a failing endpoint (or retries a failed event now).
    pub async fn resume_webhook(&self, id: &str) -> Result<Endpoint, EngineError> {
        Ok(self.inner.webhooks.change(id, Change::Resume).await?)
    }

    /// Deletes an endpoint and its attempts.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), EngineError> {
        Ok(self.inner.webhooks.delete(id).await?)
    }

    /// An endpoint's attempts, newest first (`before`: the cursor of a previous page), and
    /// the next page's cursor.
    pub fn webhook_attempts(
        &self,
        id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Attempt>, Option<u64>), EngineError> {
        if !(1..=MAX_ATTEMPTS_PAGE).contains(&limit) {
            return Err(EngineError::BadQuery(
                "limit: must be between 1 and 500".into(),
            ));
        }
        Ok(self.inner.webhooks.attempts(id, before, limit)?)
    }

    /// Events each endpoint has still to deliver or pass over, by endpoint id.
    pub fn webhook_lags(&self) -> Vec<(String, u64)> {
        let end = self.event_log_end().unwrap_or(0);
        self.inner
            .webhooks
            .offsets()
            .into_iter()
            .map(|(id, at)| (id, end.saturating_sub(at)))
            .collect()
    }
}

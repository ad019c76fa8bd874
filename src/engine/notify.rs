//! Notifications and templates: the engine's face of `crate::notify`.

use std::sync::Arc;

use super::{Engine, EngineError};
use crate::domain::Invalid;
use crate::notify::mailer::{Mailer, OutboxMailer, SmtpMailer};
use crate::notify::templates::{self, Template};
use crate::notify::{self, Notification, Notifier, NotifyConfig};
use crate::storage::StorageError;

/// A template with its name, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct TemplateView {
    /// Template name.
    pub name: &'static str,
    /// The template (stored override or built-in default).
    pub template: Template,
    /// Whether it is a stored override.
    pub customized: bool,
}

impl Engine {
    /// Starts the notifier (an event-log subscriber) and the mail sender.
    pub(super) fn start_notifications(&self) -> Result<(), EngineError> {
        let config = &self.inner.config;
        let mailer: Arc<dyn Mailer> = match &config.smtp_url {
            Some(url) => Arc::new(
                SmtpMailer::new(url)
                    .map_err(|e| EngineError::Invalid(Invalid::new("smtp_url", e.to_string())))?,
            ),
            None => Arc::new(
                OutboxMailer::new(config.data_dir.join("outbox"))
                    .map_err(|e| EngineError::from(StorageError::io("creating the outbox", e)))?,
            ),
        };
        let wake = Arc::new(tokio::sync::Notify::new());
        let tokens = notify::TokenMail {
            secret: self.inner.token_secret.clone(),
            reset_ttl_minutes: super::millis(config.password_reset_ttl) / 60_000,
            verify_ttl_minutes: super::millis(config.email_verification_ttl) / 60_000,
        };
        self.subscribe(Arc::new(Notifier::new(
            self.inner.store.clone(),
            wake.clone(),
            config.currency.clone(),
            tokens,
        )));
        self.keep(tokio::spawn(notify::run_sender(
            self.inner.store.clone(),
            mailer,
            NotifyConfig {
                from: config.mail_from.clone(),
                max_attempts: config.mail_max_attempts.max(1),
                retry_base: config.mail_retry_base,
            },
            wake,
        )));
        Ok(())
    }

    fn template_view(&self, name: &'static str) -> Result<TemplateView, EngineError> {
        let stored = self.inner.store.tables().templates.get(name)?;
        let customized = stored.is_some();
        let template = stored
            .or_else(|| templates::default_template(name))
            .ok_or(EngineError::NotFound("template"))?;
        Ok(TemplateView {
            name,
            template,
            customized,
        })
    }

    fn template_name(name: &str) -> Result<&'static str, EngineError> {
        templates::NAMES
            .iter()
            .copied()
            .find(|n| *n == name)
            .ok_or(EngineError::NotFound("template"))
    }

    /// Every email template.
    pub fn templates(&self) -> Result<Vec<TemplateView>, EngineError> {
        templates::NAMES
            .iter()
            .map(|n| self.template_view(n))
            .collect()
    }

    /// One email template.
    pub fn template(&self, name: &str) -> Result<TemplateView, EngineError> {
        self.template_view(Self::template_name(name)?)
    }

    /// Stores a template over the default, after checking that every part compiles and
    /// renders; the next mail of that kind uses it.
    pub async fn put_template(
        &self,
        name: &str,
        subject: String,
        text: String,
        html: String,
    ) -> Result<TemplateView, EngineError> {
        let name = Self::template_name(name)?;
        let template = Template {
            subject,
            text,
            html,
            updated_at: Some(self.inner.store.clock().now()),
        };
        templates::check(name, &template).map_err(|e| Invalid::new("template", e.to_string()))?;
        self.inner.store.tables().templates.put(name, &template)?;
        let barrier = self.inner.store.barrier();
        barrier.wait(barrier.ticket()).await?;
        self.template_view(name)
    }

    /// Notifications in the order their events happened, after the cursor `after`.
    pub async fn notifications(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Notification>, Option<u64>), EngineError> {
        if !(1..=1000).contains(&limit) {
            return Err(EngineError::BadQuery(
                "limit: must be between 1 and 1000".into(),
            ));
        }
        let barrier = self.inner.store.barrier();
        barrier.wait(barrier.current()).await?;
        Ok(notify::list(&self.inner.store, after, limit)?)
    }

    /// Marks carts with items and an email that have not changed for the configured time
    /// as abandoned (once per period of inactivity), which emits `CartAbandoned` and so a
    /// reminder. Returns how many.
    pub async fn sweep_abandoned_carts(&self) -> Result<usize, EngineError> {
        let idle_before =
            self.inner.store.clock().now() - super::millis(self.inner.config.abandoned_cart_after);
        let mut marked = 0;
        for page in self.inner.store.tables().carts.pages(1000) {
            for (_, cart) in page?.iter().filter(|(_, c)| c.is_abandoned(idle_before)) {
                let reply = self
                    .inner
                    .carts
                    .mark_abandoned(&cart.id, idle_before)
                    .await?;
                // Marked now if its reminder time moved (the actor re-checks the rule).
                if let Ok(c) = reply
                    && c.reminded_at != cart.reminded_at
                {
                    marked += 1;
                }
            }
        }
        Ok(marked)
    }
}

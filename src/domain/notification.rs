//! Notification records: an email as stored (rendered, with its delivery state) and an
//! email template as stored. Plain types (the store keeps them; `notify` makes them).

use serde::{Deserialize, Serialize};

use super::Millis;

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

/// A template as stored (an override of the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// When it was stored (`None` for a built-in default).
    pub updated_at: Option<Millis>,
}

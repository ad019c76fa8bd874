//! Where rendered messages go: the [`Mailer`] trait, the outbox (one RFC 5322 `.eml` file
//! per message in the data directory, the default) and SMTP (lettre).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why a message was not sent (kept whole; the notification records its text).
#[derive(Debug, Clone, thiserror::Error)]
pub enum MailError {
    /// An address of the message does not parse.
    #[error("the {field} address is invalid: {source}")]
    Address {
        /// `from` or `to`.
        field: &'static str,
        /// The parser's error.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The message could not be built.
    #[error("the message cannot be built: {0}")]
    Build(#[source] Arc<lettre::error::Error>),
    /// Writing to the outbox failed.
    #[error("outbox: {doing}: {source}")]
    Outbox {
        /// The step that failed.
        doing: &'static str,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The outbox's writer task failed.
    #[error("the outbox writer failed: {0}")]
    Worker(#[source] Arc<tokio::task::JoinError>),
    /// The SMTP server refused the message or could not be reached.
    #[error("smtp: {0}")]
    Smtp(#[source] Arc<lettre::transport::smtp::Error>),
    /// The mailer did not answer in time.
    #[error("the mailer did not answer in {} s", .0.as_secs())]
    Timeout(Duration),
}

impl MailError {
    fn outbox(doing: &'static str) -> impl Fn(std::io::Error) -> MailError {
        move |e| MailError::Outbox {
            doing,
            source: Arc::new(e),
        }
    }
}

/// Why an SMTP URL was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SmtpUrlError {
    /// Not `smtp://…`.
    #[error("the SMTP URL must look like smtp://host:port")]
    Scheme,
    /// The port is not a number in 0–65535.
    #[error("bad SMTP port: {0}")]
    Port(#[source] std::num::ParseIntError),
    /// No host before the port.
    #[error("the SMTP URL has no host")]
    NoHost,
}

/// A message ready to send.
#[derive(Debug, Clone)]
pub struct Email {
    /// Stable id: the file name in the outbox and the `Message-ID`, so that sending the
    /// same notification twice is recognisable as one message.
    pub id: String,
    /// Sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

impl Email {
    /// The RFC 5322 message (multipart/alternative: text, then HTML).
    pub fn message(&self) -> Result<Message, MailError> {
        let address = |field| move |source| MailError::Address { field, source };
        let from: Mailbox = self.from.parse().map_err(address("from"))?;
        let to: Mailbox = self.to.parse().map_err(address("to"))?;
        Message::builder()
            .from(from)
            .to(to)
            .subject(self.subject.clone())
            .message_id(Some(format!("<{}@emporium>", self.id)))
            .multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                self.html.clone(),
            ))
            .map_err(|e| MailError::Build(Arc::new(e)))
    }
}

/// A boxed future of a send.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;

/// A boxed future of several sends: one outcome per message, in order.
pub type SendAllFuture<'a> = Pin<Box<dyn Future<Output = Vec<Result<(), MailError>>> + Send + 'a>>;

/// Delivers messages. A send that returns `Ok` was accepted for delivery.
pub trait Mailer: Send + Sync + 'static {
    /// Sends one message.
    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a>;

    /// Sends several messages, one outcome each; by default concurrently, one `send`
    /// each. A mailer that can make a group durable at once overrides it.
    fn send_all<'a>(&'a self, emails: &'a [Email]) -> SendAllFuture<'a> {
        Box::pin(futures_util::future::join_all(
            emails.iter().map(|e| self.send(e)),
        ))
    }
}

/// Writes each message to `dir/<id>.eml` (written to a temporary name, made durable,
/// renamed: a file in the outbox is always whole, and writing the same id again replaces
/// it).
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// An outbox in `dir` (created if needed).
    pub fn new(dir: PathBuf) -> std::io::Result<OutboxMailer> {
        std::fs::create_dir_all(&dir)?;
        Ok(OutboxMailer { dir })
    }

    /// Writes `emails` to the outbox: each to a temporary file, then one sync makes all
    /// of them durable, then each is renamed into place and one directory sync makes the
    /// renames durable — two syncs per group instead of two per message.
    fn write_all(
        dir: &std::path::Path,
        emails: Vec<(String, Result<Vec<u8>, MailError>)>,
    ) -> Vec<Result<(), MailError>> {
        use std::io::Write;
        let tmp = |id: &str| dir.join(format!(".{id}.tmp"));
        let mut out: Vec<Result<(), MailError>> = emails
            .iter()
            .map(|(id, bytes)| {
                let bytes = bytes.as_ref().map_err(Clone::clone)?;
                let writing = MailError::outbox("writing");
                let mut f = std::fs::File::create(tmp(id)).map_err(&writing)?;
                f.write_all(bytes).map_err(&writing)?;
                if !cfg!(target_os = "linux") {
                    f.sync_data().map_err(&writing)?;
                }
                Ok(())
            })
            .collect();
        // A failed sync fails every message not failed already: none is known durable.
        let fail_rest = |out: &mut Vec<Result<(), MailError>>, e: MailError| {
            for r in out.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e.clone());
            }
        };
        if let Err(e) = sync_file_system(dir) {
            fail_rest(&mut out, MailError::outbox("syncing")(e));
            return out;
        }
        for ((id, _), r) in emails.iter().zip(&mut out) {
            if r.is_ok()
                && let Err(e) = std::fs::rename(tmp(id), dir.join(format!("{id}.eml")))
            {
                *r = Err(MailError::outbox("renaming")(e));
            }
        }
        if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
            fail_rest(&mut out, MailError::outbox("syncing the directory")(e));
        }
        out
    }
}

/// Makes every file written in `dir`'s file system durable: one `syncfs(2)` on Linux,
/// through rustix (its safe system-call wrappers; this crate denies `unsafe`); elsewhere
/// each file was synced as it was written.
fn sync_file_system(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::fs::syncfs(std::fs::File::open(dir)?)?;
    #[cfg(not(target_os = "linux"))]
    let _ = dir;
    Ok(())
}

impl Mailer for OutboxMailer {
    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            let mut out = self.send_all(std::slice::from_ref(email)).await;
            out.pop().unwrap_or_else(|| {
                Err(MailError::outbox("writing")(std::io::Error::other(
                    "no outcome",
                )))
            })
        })
    }

    fn send_all<'a>(&'a self, emails: &'a [Email]) -> SendAllFuture<'a> {
        Box::pin(async move {
            let messages: Vec<(String, Result<Vec<u8>, MailError>)> = emails
                .iter()
                .map(|e| (e.id.clone(), e.message().map(|m| m.formatted())))
                .collect();
            let dir = self.dir.clone();
            let n = emails.len();
            tokio::task::spawn_blocking(move || OutboxMailer::write_all(&dir, messages))
                .await
                .unwrap_or_else(|e| vec![Err(MailError::Worker(Arc::new(e))); n])
        })
    }
}

/// Sends over SMTP (plain, as to a local relay; no TLS in this build).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    /// From `smtp://host[:port]` (port 25 if none).
    pub fn new(url: &str) -> Result<SmtpMailer, SmtpUrlError> {
        let rest = url.strip_prefix("smtp://").ok_or(SmtpUrlError::Scheme)?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(SmtpUrlError::Port)?),
            None => (rest, 25),
        };
        if host.is_empty() {
            return Err(SmtpUrlError::NoHost);
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(Duration::from_secs(10)))
            .build();
        Ok(SmtpMailer { transport })
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            let message = email.message()?;
            self.transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Smtp(Arc::new(e)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            id: "order_confirmation-7".into(),
            from: "Emporium <shop@emporium.local>".into(),
            to: "ada@example.com".into(),
            subject: "Your order".into(),
            text: "Thanks".into(),
            html: "<p>Thanks</p>".into(),
        }
    }

    #[tokio::test]
    async fn the_outbox_holds_one_whole_file_per_message_id() {
        let dir = tempfile::tempdir().unwrap();
        let m = OutboxMailer::new(dir.path().join("outbox")).unwrap();
        m.send(&email()).await.unwrap();
        m.send(&email()).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, ["order_confirmation-7.eml"]);
        let eml =
            std::fs::read_to_string(dir.path().join("outbox/order_confirmation-7.eml")).unwrap();
        assert!(eml.contains("Subject: Your order"));
        assert!(eml.contains("Message-ID: <order_confirmation-7@emporium>"));
        assert!(eml.contains("multipart/alternative"));
    }

    #[tokio::test]
    async fn a_group_lands_whole_with_one_outcome_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let m = OutboxMailer::new(dir.path().join("outbox")).unwrap();
        let mut group: Vec<Email> = (0..5)
            .map(|i| Email {
                id: format!("m{i}"),
                ..email()
            })
            .collect();
        group[2].to = "not an address".into();
        let out = m.send_all(&group).await;
        assert_eq!(out.len(), 5);
        assert!(
            out[2]
                .as_ref()
                .is_err_and(|e| matches!(e, MailError::Address { field: "to", .. }))
        );
        assert!(out.iter().enumerate().all(|(i, r)| i == 2 || r.is_ok()));
        let mut files: Vec<String> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["m0.eml", "m1.eml", "m3.eml", "m4.eml"],
            "no temporary files left"
        );
        for f in &files {
            let eml = std::fs::read_to_string(dir.path().join("outbox").join(f)).unwrap();
            assert!(eml.contains("Subject: Your order") && eml.contains("multipart/alternative"));
        }
    }

    #[test]
    fn smtp_urls_are_checked() {
        assert!(SmtpMailer::new("smtp://127.0.0.1:2525").is_ok());
        assert!(SmtpMailer::new("http://x").is_err());
        assert!(SmtpMailer::new("smtp://:25").is_err());
    }
}

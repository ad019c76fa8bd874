//! Where rendered messages go: the [`Mailer`] trait, the outbox (one RFC 5322 `.eml` file
//! per message in the data directory, the default) and SMTP (lettre).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

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
    pub fn message(&self) -> Result<Message, String> {
        let from: Mailbox = self.from.parse().map_err(|e| format!("from: {e}"))?;
        let to: Mailbox = self.to.parse().map_err(|e| format!("to: {e}"))?;
        Message::builder()
            .from(from)
            .to(to)
            .subject(self.subject.clone())
            .message_id(Some(format!("<{}@emporium>", self.id)))
            .multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                self.html.clone(),
            ))
            .map_err(|e| format!("building the message: {e}"))
    }
}

/// A boxed future of a send.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Delivers messages. A send that returns `Ok` was accepted for delivery.
pub trait Mailer: Send + Sync + 'static {
    /// Sends one message.
    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a>;
}

/// Writes each message to `dir/<id>.eml` (written to a temporary name, synced, renamed:
/// a file in the outbox is always whole, and writing the same id again replaces it).
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// An outbox in `dir` (created if needed).
    pub fn new(dir: PathBuf) -> std::io::Result<OutboxMailer> {
        std::fs::create_dir_all(&dir)?;
        Ok(OutboxMailer { dir })
    }
}

impl Mailer for OutboxMailer {
    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            let bytes = email.message()?.formatted();
            let dir = self.dir.clone();
            let id = email.id.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                use std::io::Write;
                let tmp = dir.join(format!(".{id}.tmp"));
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_data()?;
                std::fs::rename(&tmp, dir.join(format!("{id}.eml")))?;
                std::fs::File::open(&dir)?.sync_all()
            })
            .await
            .map_err(|e| format!("outbox writer: {e}"))?
            .map_err(|e| format!("outbox: {e}"))
        })
    }
}

/// Sends over SMTP (plain, as to a local relay; no TLS in this build).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    /// From `smtp://host[:port]` (port 25 if none).
    pub fn new(url: &str) -> Result<SmtpMailer, String> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or("the SMTP URL must look like smtp://host:port")?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "bad SMTP port")?),
            None => (rest, 25),
        };
        if host.is_empty() {
            return Err("the SMTP URL has no host".into());
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
                .map_err(|e| format!("smtp: {e}"))
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

    #[test]
    fn smtp_urls_are_checked() {
        assert!(SmtpMailer::new("smtp://127.0.0.1:2525").is_ok());
        assert!(SmtpMailer::new("http://x").is_err());
        assert!(SmtpMailer::new("smtp://:25").is_err());
    }
}

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

/// A boxed future of several sends: one outcome per message, in order.
pub type SendAllFuture<'a> = Pin<Box<dyn Future<Output = Vec<Result<(), String>>> + Send + 'a>>;

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
        emails: Vec<(String, Result<Vec<u8>, String>)>,
    ) -> Vec<Result<(), String>> {
        use std::io::Write;
        let tmp = |id: &str| dir.join(format!(".{id}.tmp"));
        let mut out: Vec<Result<(), String>> = emails
            .iter()
            .map(|(id, bytes)| {
                let bytes = bytes.as_ref().map_err(Clone::clone)?;
                let mut f = std::fs::File::create(tmp(id)).map_err(|e| format!("outbox: {e}"))?;
                f.write_all(bytes).map_err(|e| format!("outbox: {e}"))?;
                if !cfg!(target_os = "linux") {
                    f.sync_data().map_err(|e| format!("outbox: {e}"))?;
                }
                Ok(())
            })
            .collect();
        // A failed sync fails every message not failed already: none is known durable.
        let fail_rest = |out: &mut Vec<Result<(), String>>, e: String| {
            for r in out.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e.clone());
            }
        };
        if let Err(e) = sync_file_system(dir) {
            fail_rest(&mut out, format!("outbox: syncing: {e}"));
            return out;
        }
        for ((id, _), r) in emails.iter().zip(&mut out) {
            if r.is_ok()
                && let Err(e) = std::fs::rename(tmp(id), dir.join(format!("{id}.eml")))
            {
                *r = Err(format!("outbox: {e}"));
            }
        }
        if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
            fail_rest(&mut out, format!("outbox: syncing the directory: {e}"));
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
            out.pop()
                .unwrap_or_else(|| Err("outbox: no outcome".into()))
        })
    }

    fn send_all<'a>(&'a self, emails: &'a [Email]) -> SendAllFuture<'a> {
        Box::pin(async move {
            let messages: Vec<(String, Result<Vec<u8>, String>)> = emails
                .iter()
                .map(|e| (e.id.clone(), e.message().map(|m| m.formatted())))
                .collect();
            let dir = self.dir.clone();
            let n = emails.len();
            tokio::task::spawn_blocking(move || OutboxMailer::write_all(&dir, messages))
                .await
                .unwrap_or_else(|e| vec![Err(format!("outbox writer: {e}")); n])
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
        assert!(out[2].as_ref().is_err_and(|e| e.starts_with("to:")));
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

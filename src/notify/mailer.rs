//! Where rendered messages go: the [`Mailer`] trait, the outbox (mailbox files in the data
//! directory, one per group of messages, the default) and SMTP (lettre).

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
    /// Stable id: the `X-Emporium-Id` in the outbox and the `Message-ID`, so that sending the
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

/// The outbox: a directory of mailbox files (mboxrd), one per group of messages the
/// sender hands over (up to 32): `{unix ms}-{n}.mbox`. A group's file is written under a
/// temporary name, made durable, and renamed into place, so a file in the outbox is
/// always whole; each message in it starts with the `From ` line, then `X-Emporium-Id:
/// {id}` (the notification's stable id), then the message with LF line ends, `From `
/// lines in it quoted (`>From `). [`read_outbox`] reads it back; a mail client opens the
/// files as they are (`mutt -f`).
///
/// One file per group, not per message: creating a file is the costly part on ext4
/// (60–250 µs, more right after many deletions; appending the same bytes costs 3 µs), and
/// a receipt per checkout made it a large share of a flow's CPU. Exactly one copy per
/// message holds as with a file per message: a group that fails is written again whole
/// under a new name only if its file was not renamed into place, and a message the last
/// file before a crash already holds (sent, but its status not yet stored) is recognised
/// by its id at start and not written again.
pub struct OutboxMailer {
    inner: Arc<Outbox>,
}

/// The outbox's directory and what it remembers.
struct Outbox {
    dir: PathBuf,
    /// Ids in the newest file at start and every id written since (bounded): a message
    /// handed over again after its file landed is not written twice.
    written: std::sync::Mutex<Written>,
    /// Distinguishes files made in the same millisecond.
    files: std::sync::atomic::AtomicU64,
}

/// Ids already in the outbox, the oldest forgotten past a bound.
#[derive(Default)]
struct Written {
    ids: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

/// Ids remembered by the outbox (a group is at most 32, so the few last groups suffice).
const WRITTEN_KEPT: usize = 4_096;

impl Written {
    fn add(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > WRITTEN_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }
}

/// The header every outbox message starts with (after its `From ` line).
const ID_HEADER: &str = "X-Emporium-Id: ";

/// The messages in the outbox `dir`, oldest file first: each message's id and its text
/// (`From ` quoting undone). Files that are not the outbox's are ignored.
pub fn read_outbox(dir: &std::path::Path) -> std::io::Result<Vec<(String, String)>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "mbox"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(parse_mbox(&std::fs::read_to_string(f)?));
    }
    Ok(out)
}

/// The messages of one outbox file.
fn parse_mbox(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("From ") {
            out.push((String::new(), String::new()));
            continue;
        }
        let Some((id, body)) = out.last_mut() else {
            continue;
        };
        if id.is_empty()
            && let Some(rest) = line.strip_prefix(ID_HEADER)
        {
            *id = rest.trim_end().to_owned();
            continue;
        }
        // mboxrd: one `>` less on quoted `From ` lines.
        let unquoted = line
            .strip_prefix('>')
            .filter(|l| l.trim_start_matches('>').starts_with("From "));
        body.push_str(unquoted.unwrap_or(line));
    }
    for (_, body) in &mut out {
        // The blank line that separates messages is the file's, not the message's.
        if body.ends_with("\n\n") {
            body.pop();
        }
    }
    out
}

/// Appends one message to a group file's bytes (mboxrd).
fn append_mbox(out: &mut Vec<u8>, id: &str, message: &[u8], date: &str) {
    out.extend_from_slice(format!("From emporium {date}\n{ID_HEADER}{id}\n").as_bytes());
    let text = String::from_utf8_lossy(message).replace("\r\n", "\n");
    for line in text.split_inclusive('\n') {
        if line.trim_start_matches('>').starts_with("From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line.as_bytes());
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
}

impl OutboxMailer {
    /// An outbox in `dir` (created if needed); the ids in its newest file are remembered.
    pub fn new(dir: PathBuf) -> std::io::Result<OutboxMailer> {
        std::fs::create_dir_all(&dir)?;
        let mut newest: Option<PathBuf> = None;
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "mbox") && newest.as_ref().is_none_or(|n| &p > n)
            {
                newest = Some(p);
            }
        }
        let mut written = Written::default();
        if let Some(p) = newest {
            for (id, _) in parse_mbox(&std::fs::read_to_string(p)?) {
                written.add(id);
            }
        }
        Ok(OutboxMailer {
            inner: Arc::new(Outbox {
                dir,
                written: std::sync::Mutex::new(written),
                files: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }
}

impl Outbox {
    /// Writes `emails` (those not in the outbox already) as one file: written under a
    /// temporary name, made durable with one sync, renamed into place, the directory
    /// synced — two syncs per group.
    fn write_all(
        &self,
        emails: Vec<(String, Result<Vec<u8>, MailError>)>,
    ) -> Vec<Result<(), MailError>> {
        use std::io::Write;
        let now = crate::clock::Clock::system().now();
        let date = time::OffsetDateTime::from_unix_timestamp(now / 1000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .format(time::macros::format_description!(
                "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
            ))
            .unwrap_or_default();
        let mut bytes = Vec::new();
        let mut out: Vec<Result<(), MailError>> = Vec::with_capacity(emails.len());
        let mut in_file = Vec::new();
        {
            let written = self.written.lock().expect("outbox lock");
            for (id, message) in &emails {
                match message {
                    Err(e) => out.push(Err(e.clone())),
                    Ok(_) if written.ids.contains(id) => out.push(Ok(())),
                    Ok(m) => {
                        append_mbox(&mut bytes, id, m, &date);
                        in_file.push(id.clone());
                        out.push(Ok(()));
                    }
                }
            }
        }
        if in_file.is_empty() {
            return out;
        }
        let n = self
            .files
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{now:013}-{n:06}.mbox");
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let fail_all = |out: &mut Vec<Result<(), MailError>>, e: MailError| {
            for ((id, _), r) in emails.iter().zip(out.iter_mut()) {
                if r.is_ok() && in_file.contains(id) {
                    *r = Err(e.clone());
                }
            }
        };
        let writing = MailError::outbox("writing");
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&bytes)?;
                if cfg!(target_os = "linux") {
                    Ok(())
                } else {
                    f.sync_data()
                }
            })
            .map_err(&writing)
            .and_then(|()| sync_file_system(&self.dir).map_err(MailError::outbox("syncing")))
            .and_then(|()| {
                std::fs::rename(&tmp, self.dir.join(&name)).map_err(MailError::outbox("renaming"))
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            fail_all(&mut out, e);
            return out;
        }
        if let Err(e) = std::fs::File::open(&self.dir).and_then(|d| d.sync_all()) {
            fail_all(&mut out, MailError::outbox("syncing the directory")(e));
            return out;
        }
        let mut written = self.written.lock().expect("outbox lock");
        for id in in_file {
            written.add(id);
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
            let n = emails.len();
            let outbox = self.inner.clone();
            tokio::task::spawn_blocking(move || outbox.write_all(messages))
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

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        files
    }

    #[tokio::test]
    async fn the_outbox_holds_one_copy_per_message_id_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        let m = OutboxMailer::new(outbox.clone()).unwrap();
        m.send(&email()).await.unwrap();
        m.send(&email()).await.unwrap();
        // A crash after the file landed, before the send was recorded: the restarted
        // outbox recognises the message in its newest file.
        let m = OutboxMailer::new(outbox.clone()).unwrap();
        m.send(&email()).await.unwrap();
        assert_eq!(files(&outbox).len(), 1);
        let mails = read_outbox(&outbox).unwrap();
        assert_eq!(mails.len(), 1);
        let (id, eml) = &mails[0];
        assert_eq!(id, "order_confirmation-7");
        assert!(eml.contains("Subject: Your order"));
        assert!(eml.contains("Message-ID: <order_confirmation-7@emporium>"));
        assert!(eml.contains("multipart/alternative"));
        assert!(!eml.contains('\r'), "LF line ends, as mbox files have");
    }

    #[tokio::test]
    async fn a_group_lands_whole_in_one_file_with_one_outcome_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        let m = OutboxMailer::new(outbox.clone()).unwrap();
        let mut group: Vec<Email> = (0..5)
            .map(|i| Email {
                id: format!("m{i}"),
                ..email()
            })
            .collect();
        group[2].to = "not an address".into();
        // A body line that an mbox reader would take for a new message is quoted.
        group[4].text = "From here on, thanks\n>From the team".into();
        let out = m.send_all(&group).await;
        assert_eq!(out.len(), 5);
        assert!(
            out[2]
                .as_ref()
                .is_err_and(|e| matches!(e, MailError::Address { field: "to", .. }))
        );
        assert!(out.iter().enumerate().all(|(i, r)| i == 2 || r.is_ok()));
        let names = files(&outbox);
        assert_eq!(
            names.len(),
            1,
            "one file, no temporary files left: {names:?}"
        );
        assert!(names[0].ends_with(".mbox"));
        let raw = std::fs::read_to_string(outbox.join(&names[0])).unwrap();
        assert_eq!(raw.lines().filter(|l| l.starts_with("From ")).count(), 4);
        let mails = read_outbox(&outbox).unwrap();
        let ids: Vec<&str> = mails.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1", "m3", "m4"]);
        for (_, eml) in &mails {
            assert!(eml.contains("Subject: Your order") && eml.contains("multipart/alternative"));
        }
        assert!(
            mails[3].1.contains("\nFrom here on, thanks"),
            "{}",
            mails[3].1
        );
        assert!(mails[3].1.contains("\n>From the team"));
        // The failed one, handed over again once fixed, gets a file of its own.
        group[2].to = "ada@example.com".into();
        assert!(m.send_all(&group).await.iter().all(Result::is_ok));
        assert_eq!(files(&outbox).len(), 2);
        assert_eq!(read_outbox(&outbox).unwrap().len(), 5);
    }

    #[test]
    fn smtp_urls_are_checked() {
        assert!(SmtpMailer::new("smtp://127.0.0.1:2525").is_ok());
        assert!(SmtpMailer::new("http://x").is_err());
        assert!(SmtpMailer::new("smtp://:25").is_err());
    }
}

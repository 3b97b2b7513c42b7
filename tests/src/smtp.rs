//! A real SMTP server on loopback: `mailin`'s protocol state machine behind
//! a tokio listener on port 0. It keeps every message it accepts (envelope
//! and raw data, dot-unstuffed) for the test to read, and can be told to
//! refuse recipients or to require a login, like a real relay would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin::response::{AUTH_OK, INVALID_CREDENTIALS, NO_MAILBOX, OK};
use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder};
use sluice_api::config::{SmtpSettings, SmtpTls};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The sender test apps use.
pub const FROM: &str = "Sluice <sluice@sluice.test>";

/// One message as the server received it.
#[derive(Clone, Debug)]
pub struct Mail {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message as sent after `DATA`: headers, blank line, body.
    pub data: String,
    /// Who logged in before sending it, if anyone.
    pub login: Option<String>,
}

impl Mail {
    /// A header's value (the first one of that name).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    }

    /// The body as its author wrote it: quoted-printable is decoded, since
    /// lettre picks it for lines longer than 76 characters, such as links.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default();
        if encoding.eq_ignore_ascii_case("quoted-printable") {
            decode_quoted_printable(body)
        } else {
            body.to_string()
        }
    }

    /// The token of the first link starting with `page` (such as
    /// `http://sluice.test/invite`) in the body.
    pub fn token(&self, page: &str) -> Option<String> {
        let body = self.body();
        let start = body.find(&format!("{page}?token="))? + page.len() + "?token=".len();
        let token: String = body[start..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        (!token.is_empty()).then_some(token)
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'=')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What every connection shares.
#[derive(Default)]
struct Inbox {
    mails: Mutex<Vec<Mail>>,
    refuse_recipients: AtomicBool,
    login: Option<(String, String)>,
}

/// A running SMTP server; it stops when dropped.
pub struct SmtpServer {
    /// The loopback port it listens on.
    pub port: u16,
    inbox: Arc<Inbox>,
    accepting: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// Start one that takes any mail without a login.
    pub async fn start() -> SmtpServer {
        SmtpServer::launch(Inbox::default()).await
    }

    /// Start one that takes mail only after `AUTH PLAIN` as this user.
    pub async fn start_with_login(user: &str, password: &str) -> SmtpServer {
        SmtpServer::launch(Inbox {
            login: Some((user.into(), password.into())),
            ..Inbox::default()
        })
        .await
    }

    async fn launch(inbox: Inbox) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP port");
        let port = listener.local_addr().expect("local address").port();
        let mut session = SessionBuilder::new("smtp.sluice.test");
        if inbox.login.is_some() {
            // No TLS on loopback, so AUTH must be offered in the clear.
            session
                .enable_auth(AuthMechanism::Plain)
                .insecure_enable_plaintext_auth();
        }
        let inbox = Arc::new(inbox);
        let shared = inbox.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let session = session.clone();
                let inbox = shared.clone();
                tokio::spawn(async move {
                    // A client hanging up mid-session is its business.
                    let _ = converse(stream, session, inbox).await;
                });
            }
        });
        SmtpServer {
            port,
            inbox,
            accepting,
        }
    }

    /// Settings that make Sluice send here: no TLS, the login if one is required.
    pub fn settings(&self) -> SmtpSettings {
        let login = self.inbox.login.clone();
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: SmtpTls::None,
            username: login.as_ref().map(|(user, _)| user.clone()),
            password: login.map(|(_, password)| password),
            from: FROM.into(),
        }
    }

    /// Every message accepted so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        self.inbox.mails.lock().expect("inbox lock").clone()
    }

    /// The messages once there are at least `n`, or all there are after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.mails();
            if mails.len() >= n || Instant::now() >= deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Answer every `RCPT TO` with 550 (mailbox unavailable) while `refuse` is true.
    pub fn refuse_recipients(&self, refuse: bool) {
        self.inbox.refuse_recipients.store(refuse, Ordering::SeqCst);
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// One client connection: each line goes through the state machine, and its
/// answer goes back.
async fn converse(stream: TcpStream, session: SessionBuilder, inbox: Arc<Inbox>) -> std::io::Result<()> {
    let peer = stream.peer_addr()?.ip();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut session = session.build(peer, Recorder::new(inbox));
    write.write_all(&session.greeting().buffer()?).await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let response = session.process(&line);
        match response.action {
            Action::NoReply => {}
            Action::Reply => write.write_all(&response.buffer()?).await?,
            // STARTTLS is never offered, so an upgrade ends the session too.
            Action::Close | Action::UpgradeTls => {
                write.write_all(&response.buffer()?).await?;
                return Ok(());
            }
        }
    }
}

/// Keeps the messages of one connection.
struct Recorder {
    inbox: Arc<Inbox>,
    login: Option<String>,
    open: Option<Mail>,
}

impl Recorder {
    fn new(inbox: Arc<Inbox>) -> Recorder {
        Recorder {
            inbox,
            login: None,
            open: None,
        }
    }
}

impl Handler for Recorder {
    fn rcpt(&mut self, _to: &str) -> Response {
        if self.inbox.refuse_recipients.load(Ordering::SeqCst) {
            NO_MAILBOX
        } else {
            OK
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.open = Some(Mail {
            from: from.to_string(),
            to: to.to_vec(),
            data: String::new(),
            login: self.login.clone(),
        });
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(mail) = &mut self.open {
            mail.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(mail) = self.open.take() {
            self.inbox.mails.lock().expect("inbox lock").push(mail);
        }
        OK
    }

    fn auth_plain(&mut self, _authorization_id: &str, user: &str, password: &str) -> Response {
        match &self.inbox.login {
            Some((u, p)) if u == user && p == password => {
                self.login = Some(user.to_string());
                AUTH_OK
            }
            _ => INVALID_CREDENTIALS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_bodies_read_as_written() {
        let encoded = "see http://sluice.test/invite?token=3Dab=\r\ncd and caf=C3=A9\r\n";
        assert_eq!(
            decode_quoted_printable(encoded),
            "see http://sluice.test/invite?token=abcd and café\r\n"
        );
    }
}

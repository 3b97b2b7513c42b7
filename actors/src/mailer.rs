//! `Mailer`: owns the SMTP transport and sends the few mails Sluice writes
//! (invites, password resets). Sending runs beside the actor, so a slow SMTP
//! server delays only the mail being sent, never the next message.

use std::time::Duration;

use actix::prelude::*;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Send one plain-text mail; the error names what the SMTP server or the
/// connection to it said.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SendMail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// How the connection to the SMTP server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption: local relays and tests only.
    None,
}

/// Where and as whom mail is sent.
#[derive(Clone)]
pub struct MailerConfig {
    /// SMTP server host.
    pub host: String,
    /// SMTP server port.
    pub port: u16,
    /// Transport security.
    pub tls: MailTls,
    /// Login name and password, when the server wants them.
    pub credentials: Option<(String, String)>,
    /// Sender, such as `Sluice <sluice@example.com>`.
    pub from: String,
}

impl std::fmt::Debug for MailerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|(user, _)| user))
            .field("from", &self.from)
            .finish()
    }
}

/// A mail server that has not answered by then is given up on, so the admin
/// who sent an invite hears about it instead of waiting a minute.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The actor that sends mail.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `config`; fails when the sender is not a mail address or
    /// the host is not a valid TLS name.
    pub fn new(config: MailerConfig) -> Result<Mailer, String> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("smtp.from '{}' is not a mail address: {e}", config.from))?;
        let builder = match config.tls {
            MailTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
            MailTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
            MailTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &config.host,
            )),
        }
        .map_err(|e| format!("smtp.host '{}': {e}", config.host))?;
        let mut builder = builder.port(config.port).timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = config.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }
}

impl Actor for Mailer {
    type Context = Context<Self>;
}

impl Handler<SendMail> for Mailer {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: SendMail, _ctx: &mut Context<Self>) -> Self::Result {
        let message = compose(self.from.clone(), msg);
        let transport = self.transport.clone();
        Box::pin(async move {
            transport
                .send(message?)
                .await
                .map(|_| ())
                .map_err(|e| format!("the mail server did not take the mail: {e}"))
        })
    }
}

/// Whether mail can be addressed to `address` (as an SMTP envelope reads it).
pub fn is_sendable(address: &str) -> bool {
    address.parse::<lettre::Address>().is_ok()
}

/// The mail as it goes out: plain text, so every client shows the link as is.
fn compose(from: Mailbox, msg: SendMail) -> Result<Message, String> {
    let to: Mailbox = msg
        .to
        .parse()
        .map_err(|e| format!("'{}' is not a mail address: {e}", msg.to))?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(msg.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(msg.text)
        .map_err(|e| format!("cannot build the mail: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(from: &str) -> MailerConfig {
        MailerConfig {
            host: "smtp.example.com".into(),
            port: 587,
            tls: MailTls::Starttls,
            credentials: Some(("sluice".into(), "hunter2-secret".into())),
            from: from.into(),
        }
    }

    #[actix_rt::test]
    async fn a_sender_that_is_not_an_address_is_refused_at_start() {
        let err = Mailer::new(config("not an address")).err().unwrap();
        assert!(err.contains("smtp.from"), "{err}");
    }

    #[actix_rt::test]
    async fn every_tls_mode_builds_a_transport() {
        for tls in [MailTls::Starttls, MailTls::Tls, MailTls::None] {
            let config = MailerConfig {
                tls,
                ..config("Sluice <sluice@example.com>")
            };
            assert!(Mailer::new(config).is_ok(), "{tls:?}");
        }
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let shown = format!("{:?}", config("sluice@example.com"));
        assert!(shown.contains("sluice") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn mails_are_plain_text_to_the_given_address() {
        let from: Mailbox = "Sluice <sluice@example.com>".parse().unwrap();
        let mail = compose(
            from.clone(),
            SendMail {
                to: "ada@example.com".into(),
                subject: "Hello".into(),
                text: "line one\nline two\n".into(),
            },
        )
        .unwrap();
        let raw = String::from_utf8(mail.formatted()).unwrap();
        assert!(raw.contains("Content-Type: text/plain"), "{raw}");
        assert!(raw.contains("To: ada@example.com"), "{raw}");
        let bad = SendMail {
            to: "nobody".into(),
            subject: "x".into(),
            text: "x".into(),
        };
        assert!(compose(from, bad).unwrap_err().contains("'nobody'"));
    }

    #[test]
    fn only_real_addresses_are_sendable() {
        assert!(is_sendable("ada@example.com"));
        assert!(!is_sendable("ada@exa mple.com") && !is_sendable("a\u{0}@x.io") && !is_sendable("ada"));
    }
}

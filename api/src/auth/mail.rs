//! Outgoing mail: the `[smtp]` settings become a `Mailer` actor at start, and
//! handlers send through it with errors already in the `/api` shape.

use actix::{Actor, Addr};
use sluice_actors::mailer::{MailTls, Mailer, MailerConfig, SendMail};

use crate::config::{SmtpSettings, SmtpTls};
use crate::error::ApiError;
use crate::state::AppState;

/// Start the mailer when mail is configured.
pub fn start_mailer(smtp: Option<&SmtpSettings>) -> anyhow::Result<Option<Addr<Mailer>>> {
    let Some(smtp) = smtp else {
        return Ok(None);
    };
    let config = MailerConfig {
        host: smtp.host.clone(),
        port: smtp.port,
        tls: match smtp.tls {
            SmtpTls::Starttls => MailTls::Starttls,
            SmtpTls::Tls => MailTls::Tls,
            SmtpTls::None => MailTls::None,
        },
        credentials: smtp
            .username
            .clone()
            .map(|user| (user, smtp.password.clone().unwrap_or_default())),
        from: smtp.from.clone(),
    };
    let mailer = Mailer::new(config).map_err(|e| anyhow::anyhow!("invalid [smtp] settings: {e}"))?;
    Ok(Some(mailer.start()))
}

/// The mailer, or 503 naming what is missing.
pub fn mailer<'a>(state: &'a AppState, what: &str) -> Result<&'a Addr<Mailer>, ApiError> {
    state.mailer.as_ref().ok_or_else(|| {
        ApiError::Unavailable(format!(
            "{what} needs mail, and mail is not configured: set the [smtp] table or SLUICE_SMTP_HOST"
        ))
    })
}

/// Send one plain-text mail; a refusal by the SMTP server becomes a 503 that
/// quotes it, so the admin can fix the settings.
pub async fn send(mailer: &Addr<Mailer>, to: &str, subject: String, text: String) -> Result<(), ApiError> {
    mailer
        .send(SendMail {
            to: to.to_string(),
            subject,
            text,
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("mailer stopped: {e}")))?
        .map_err(|e| {
            tracing::warn!(to, error = %e, "mail not sent");
            ApiError::Unavailable(format!("could not send the mail to {to}: {e}"))
        })
}

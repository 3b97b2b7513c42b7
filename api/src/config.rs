//! Settings: one typed struct, loaded once from an optional TOML file and the
//! environment (which wins), then passed down.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// Everything Sluice is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to listen on, such as `0.0.0.0:3000`.
    pub listen: String,
    /// SeaORM database URL (SQLite, MySQL/MariaDB or PostgreSQL).
    pub database_url: String,
    /// Where the default SQLite database and the generated secret live.
    pub data_dir: PathBuf,
    /// Secret the key-encryption key is derived from; generated under
    /// `data_dir` when not given.
    pub secret: Option<String>,
    /// Password for the root account created at first start.
    pub root_password: Option<String>,
    /// Relay behaviour.
    pub relay: RelaySettings,
    /// Accounts, sessions and one-time links.
    pub auth: AuthSettings,
    /// Key health checks.
    pub health: HealthSettings,
    /// HTTP limits and timeouts for clients.
    pub server: ServerSettings,
    /// Who may scrape `/metrics`, and where.
    pub metrics: MetricsSettings,
    /// Replicas sharing state through Redis.
    pub cluster: ClusterSettings,
    /// Outgoing mail (invites, password resets); `None` = mail is off.
    pub smtp: Option<SmtpSettings>,
    /// The address users reach Sluice at, for links in mails.
    pub public_url: String,
    /// Channels declared in the file.
    pub channels: Vec<ChannelDecl>,
    /// Tokens declared in the file.
    pub tokens: Vec<TokenDecl>,
    /// Fallback chains declared in the file.
    pub fallbacks: Vec<FallbackDecl>,
}

/// How the relay waits, times out and retries.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySettings {
    /// Longest a request waits for a key with room before a 429 (seconds).
    pub max_wait_secs: u64,
    /// The providers' rate window (seconds); 60 for every known provider.
    pub window_secs: u64,
    /// Safety margin kept past the window edge (milliseconds).
    pub window_margin_ms: u64,
    /// Largest request body accepted (bytes).
    pub max_body_bytes: usize,
    /// Longest wait for a stream's first byte before trying another key (seconds).
    pub stream_first_byte_secs: u64,
    /// Longest wait for a non-stream reply (seconds); such replies may take minutes.
    pub response_timeout_secs: u64,
    /// Longest wait to connect to a provider (seconds).
    pub connect_timeout_secs: u64,
    /// Upstream attempts per request, the first included.
    pub max_attempts: u32,
    /// Time given to in-flight requests at shutdown (seconds).
    pub shutdown_timeout_secs: u64,
    /// How often usage logs are written (milliseconds).
    pub ledger_interval_ms: u64,
    /// Reverse proxies whose `X-Forwarded-For` is believed (for token IP allow-lists).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// PEM file of certificate authorities trusted for providers' HTTPS besides the
    /// built-in roots (a model served behind a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            max_wait_secs: 90,
            window_secs: 60,
            window_margin_ms: 500,
            max_body_bytes: 16 * 1024 * 1024,
            stream_first_byte_secs: 60,
            response_timeout_secs: 600,
            connect_timeout_secs: 10,
            max_attempts: 4,
            shutdown_timeout_secs: 60,
            ledger_interval_ms: 500,
            trusted_proxies: Vec::new(),
            ca_file: None,
        }
    }
}

impl RelaySettings {
    /// `max_wait_secs` as a duration.
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_secs)
    }

    /// `window_secs` as a duration.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }
}

/// Key health checks.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// How often keys that health checks disabled are probed (seconds).
    pub probe_interval_secs: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            probe_interval_secs: 60,
        }
    }
}

/// What a client may send and how slowly, checked before any handler runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Longest wait for a request's line and headers (seconds); then 408.
    pub request_head_timeout_secs: u64,
    /// Longest wait for a whole request body once its headers are in (seconds); then 408.
    pub body_timeout_secs: u64,
    /// Longest request path and query (bytes); longer is 414.
    pub max_url_bytes: usize,
    /// Most bytes of request headers (names and values); more is 431.
    pub max_header_bytes: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            request_head_timeout_secs: 5,
            body_timeout_secs: 60,
            max_url_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// `/metrics`: open on the main address by default (like `/healthz`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// A bearer token scrapers must send (`Authorization: Bearer …`).
    pub token: Option<String>,
    /// Serve `/metrics` only on this address (and nothing else there), such
    /// as `127.0.0.1:9464`.
    pub listen: Option<String>,
}

/// More than one Sluice on one database: what they share through Redis.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Redis, as `redis://host:6379/0` (the database number is honoured), or
    /// a Redis Cluster's nodes, comma-separated. Plain TCP: reach it over a
    /// private network. Unset: one process, nothing shared, no Redis needed.
    pub redis_url: Option<String>,
    /// What every Redis key and channel of this deployment starts with; the
    /// replicas of one deployment share it, two deployments on one Redis differ.
    pub prefix: String,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            redis_url: None,
            prefix: "sluice".into(),
        }
    }
}

/// Sessions, one-time links and login throttling.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Lifetime of an access JWT (seconds).
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh token (seconds).
    pub refresh_ttl_secs: u64,
    /// Lifetime of an invite link (hours).
    pub invite_ttl_hours: u64,
    /// Lifetime of a password-reset link (minutes).
    pub reset_ttl_minutes: u64,
    /// Failed logins allowed per account from one address each minute (four
    /// times that per address, twenty times that an hour per account).
    pub login_attempts_per_minute: u32,
    /// Seconds a used refresh token still opens its session (two tabs refreshing
    /// at once); used later, it was stolen and every session of the account ends.
    pub refresh_reuse_grace_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            invite_ttl_hours: 72,
            reset_ttl_minutes: 30,
            login_attempts_per_minute: 5,
            refresh_reuse_grace_secs: 30,
        }
    }
}

/// How mail leaves: an SMTP relay. `Debug` masks the password.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// SMTP server host.
    pub host: String,
    /// Port: 587 for STARTTLS, 465 for TLS, 25 or a test server's for none.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls`, `tls` (implicit) or `none`.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// Login name, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Sender, such as `Sluice <sluice@example.com>`.
    pub from: String,
}

/// Transport security towards the SMTP server.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// No encryption (local relays and tests only).
    None,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .finish()
    }
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

/// A channel declared in the config file: one provider, many keys.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelDecl {
    /// Unique name.
    pub name: String,
    /// Provider base URL, ending in `/v1` for OpenAI-compatible providers.
    pub base_url: String,
    /// Provider kind; only `openai` (OpenAI-compatible) for now.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The provider API keys.
    pub keys: Vec<String>,
    /// Models served, by the names clients use.
    pub models: Vec<String>,
    /// Client model name to provider model name.
    #[serde(default)]
    pub model_map: HashMap<String, String>,
    /// Requests per minute per key; 0 = unlimited.
    #[serde(default)]
    pub rpm: u32,
    /// Tokens per minute per key; 0 = unlimited.
    #[serde(default)]
    pub tpm: u64,
    /// Requests in flight per key; 0 = unlimited.
    #[serde(default)]
    pub max_concurrency: u32,
    /// Per-model limits per key, for models a provider throttles harder.
    #[serde(default)]
    pub model_limits: HashMap<String, ModelLimitDecl>,
    /// Higher tiers are used first.
    #[serde(default)]
    pub priority: i32,
    /// Share of traffic within a tier.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// User groups that may use this channel; empty = every group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra headers sent to the provider.
    #[serde(default)]
    pub headers: HashMap<String, String>,
}

/// Largest per-key limit accepted (requests or tokens per window).
pub const MAX_LIMIT: u64 = 1_000_000_000;

impl ChannelDecl {
    /// Check a channel, whether from the file or the API; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if !is_plain_name(&self.name) {
            return Err(InvalidField::new(
                "name",
                "name must be 1–128 characters, none of them control characters",
            ));
        }
        let url_ok = (self.base_url.starts_with("http://") || self.base_url.starts_with("https://"))
            && self.base_url.len() <= 512
            && reqwest::Url::parse(&self.base_url).is_ok();
        if !url_ok {
            return Err(InvalidField::new(
                "base_url",
                "base_url must be an http:// or https:// URL",
            ));
        }
        if self.kind != "openai" {
            return Err(InvalidField::new(
                "kind",
                format!("kind '{}' is not supported (supported: openai)", self.kind),
            ));
        }
        if self.keys.iter().any(|k| k.trim().is_empty()) {
            return Err(InvalidField::new("keys", "a key is empty"));
        }
        if self.models.is_empty() || !self.models.iter().all(|m| is_plain_name(m)) {
            return Err(InvalidField::new(
                "models",
                "list at least one model, each 1–128 characters, none of them control characters",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = self.models.iter().find(|m| !seen.insert(m.trim())) {
            return Err(InvalidField::relation(
                "models",
                format!("'{twice}' is listed twice"),
            ));
        }
        if self.weight == 0 || self.weight > 1000 {
            return Err(InvalidField::new("weight", "weight must be 1–1000"));
        }
        for m in self.model_map.keys().chain(self.model_limits.keys()) {
            if !self.models.contains(m) {
                let param = if self.model_map.contains_key(m) {
                    "model_map"
                } else {
                    "model_limits"
                };
                return Err(InvalidField::relation(
                    param,
                    format!("'{m}' is mapped or limited but not in models"),
                ));
            }
        }
        let limits = [
            ("rpm", self.rpm as u64),
            ("tpm", self.tpm),
            ("max_concurrency", self.max_concurrency as u64),
        ]
        .into_iter()
        .chain(
            self.model_limits
                .values()
                .flat_map(|l| [("model_limits", l.rpm as u64), ("model_limits", l.tpm)]),
        );
        if let Some((param, _)) = limits.into_iter().find(|(_, l)| *l > MAX_LIMIT) {
            return Err(InvalidField::new(
                param,
                format!("limits must be at most {MAX_LIMIT}"),
            ));
        }
        if self.groups.iter().any(|g| g.is_empty() || g.chars().count() > 64) {
            return Err(InvalidField::new("groups", "groups must be 1–64 characters each"));
        }
        Ok(())
    }
}

/// Whether `c` is blank: whitespace, a control character, or the invisible
/// byte-order mark. The OpenAPI document's patterns spell out the same set.
pub fn is_blank(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c == '\u{FEFF}'
}

/// Whether `s` can be a name (of a channel, chain, token or model): 1–128
/// characters, not all blank, no control characters (a newline or NUL in a
/// name breaks logs, CSV and PostgreSQL). Stored trimmed ([`trim_name`]).
pub fn is_plain_name(s: &str) -> bool {
    s.chars().count() <= 128 && !s.chars().all(is_blank) && !s.chars().any(char::is_control)
}

/// A name as stored: without surrounding blanks.
pub fn trim_name(s: &str) -> &str {
    s.trim_matches(is_blank)
}

/// A declared value that fails validation, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InvalidField {
    /// The field, as the file and the API name it.
    pub param: &'static str,
    /// What is wrong and what is accepted.
    pub message: String,
    /// Whether the value is wrong only against another field (a mapped model
    /// not in `models`, a model listed twice): `/api` answers 422, since the
    /// document's schema cannot say it.
    pub relational: bool,
}

impl InvalidField {
    /// A field that fails validation.
    pub fn new(param: &'static str, message: impl Into<String>) -> Self {
        InvalidField {
            param,
            message: message.into(),
            relational: false,
        }
    }

    /// A field that fails validation against another field.
    pub fn relation(param: &'static str, message: impl Into<String>) -> Self {
        InvalidField {
            relational: true,
            ..InvalidField::new(param, message)
        }
    }
}

/// Limits for one model on each key of a channel.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLimitDecl {
    /// Requests per minute; 0 = unlimited.
    #[serde(default)]
    pub rpm: u32,
    /// Tokens per minute; 0 = unlimited.
    #[serde(default)]
    pub tpm: u64,
}

/// A token declared in the config file, for headless set-ups.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenDecl {
    /// Name shown in logs.
    pub name: String,
    /// The full `sk-` key clients send.
    pub key: String,
    /// Allowed models; absent = all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Requests per window this token may make; 0 or absent = no limit of its own.
    #[serde(default)]
    pub rpm: u32,
    /// Tokens per window; 0 or absent = no limit.
    #[serde(default)]
    pub tpm: u64,
    /// Requests in flight at once; 0 or absent = no limit.
    #[serde(default)]
    pub max_concurrency: u32,
}

/// A fallback chain: a model name clients use for an ordered list of models,
/// each tried when the one before had no key with room within `wait_secs` or
/// failed on every key.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FallbackDecl {
    /// The name clients ask for; may be a served model's, which it then stands for.
    pub name: String,
    /// Models tried in order (served by channels; not other chains).
    pub models: Vec<String>,
    /// Seconds each step but the last waits for a key with room.
    #[serde(default = "default_fallback_wait")]
    pub wait_secs: u64,
}

/// Most models a chain may list.
pub const MAX_FALLBACK_STEPS: usize = 16;

/// Longest wait a chain's step may have (an hour; the request's own bound
/// `max_wait_secs` cuts it anyway).
pub const MAX_FALLBACK_WAIT_SECS: u64 = 3600;

impl FallbackDecl {
    /// Check a chain, whether from the file or the API; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if !is_plain_name(&self.name) {
            return Err(InvalidField::new(
                "name",
                "name must be 1–128 characters, none of them control characters",
            ));
        }
        if self.models.is_empty() || self.models.len() > MAX_FALLBACK_STEPS {
            return Err(InvalidField::new(
                "models",
                format!("list 1–{MAX_FALLBACK_STEPS} models, in the order they are tried"),
            ));
        }
        if self.models.iter().any(|m| !is_plain_name(m)) {
            return Err(InvalidField::new(
                "models",
                "each model must be 1–128 characters, none of them control characters",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = self.models.iter().find(|m| !seen.insert(m.trim())) {
            return Err(InvalidField::relation(
                "models",
                format!("'{twice}' is listed twice"),
            ));
        }
        if self.wait_secs > MAX_FALLBACK_WAIT_SECS {
            return Err(InvalidField::new(
                "wait_secs",
                format!("wait_secs must be at most {MAX_FALLBACK_WAIT_SECS}"),
            ));
        }
        Ok(())
    }
}

fn default_fallback_wait() -> u64 {
    5
}

fn default_kind() -> String {
    "openai".into()
}

fn default_weight() -> u32 {
    1
}

/// The file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    public_url: Option<String>,
    #[serde(default)]
    relay: RelaySettings,
    #[serde(default)]
    auth: AuthSettings,
    #[serde(default)]
    health: HealthSettings,
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    metrics: MetricsSettings,
    #[serde(default)]
    cluster: ClusterSettings,
    smtp: Option<SmtpSettings>,
    #[serde(default)]
    channels: Vec<ChannelDecl>,
    #[serde(default)]
    tokens: Vec<TokenDecl>,
    #[serde(default)]
    fallbacks: Vec<FallbackDecl>,
}

impl Settings {
    /// Load from `path` (if any) and the process environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Settings> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Settings::from_sources(path, &env)
    }

    /// Load from `path` (if any) and the given environment.
    pub fn from_sources(path: Option<&Path>, env: &HashMap<String, String>) -> anyhow::Result<Settings> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| env.get("SLUICE_CONFIG").map(PathBuf::from));
        let file = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))?;
                Settings::parse_file(&text).with_context(|| format!("invalid config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let non_empty = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let data_dir = non_empty("SLUICE_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = non_empty("DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("sluice.db").display()));
        let mut relay = file.relay;
        if let Some(v) = non_empty("SLUICE_MAX_WAIT_SECS") {
            relay.max_wait_secs = v
                .parse()
                .context("SLUICE_MAX_WAIT_SECS must be a number of seconds")?;
        }
        let listen = non_empty("SLUICE_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "0.0.0.0:3000".into());
        let mut smtp = file.smtp;
        if let Some(host) = non_empty("SLUICE_SMTP_HOST") {
            let from = non_empty("SLUICE_SMTP_FROM")
                .or_else(|| smtp.as_ref().map(|s| s.from.clone()))
                .context("SLUICE_SMTP_HOST is set: set SLUICE_SMTP_FROM too")?;
            smtp = Some(SmtpSettings {
                host,
                port: non_empty("SLUICE_SMTP_PORT")
                    .map(|p| p.parse().context("SLUICE_SMTP_PORT must be a port number"))
                    .transpose()?
                    .unwrap_or(default_smtp_port()),
                tls: match non_empty("SLUICE_SMTP_TLS").as_deref() {
                    None | Some("starttls") => SmtpTls::Starttls,
                    Some("tls") => SmtpTls::Tls,
                    Some("none") => SmtpTls::None,
                    Some(other) => bail!("SLUICE_SMTP_TLS must be starttls, tls or none, not '{other}'"),
                },
                username: non_empty("SLUICE_SMTP_USERNAME"),
                password: non_empty("SLUICE_SMTP_PASSWORD"),
                from,
            });
        }
        let public_url = non_empty("SLUICE_PUBLIC_URL")
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{}", listen.replace("0.0.0.0", "localhost")))
            .trim_end_matches('/')
            .to_string();
        let settings = Settings {
            listen,
            public_url,
            auth: file.auth,
            health: file.health,
            server: file.server,
            metrics: MetricsSettings {
                token: non_empty("SLUICE_METRICS_TOKEN").or(file.metrics.token),
                listen: non_empty("SLUICE_METRICS_LISTEN").or(file.metrics.listen),
            },
            cluster: ClusterSettings {
                redis_url: non_empty("SLUICE_REDIS_URL").or(file.cluster.redis_url),
                ..file.cluster
            },
            smtp,
            database_url,
            data_dir,
            secret: non_empty("SLUICE_SECRET"),
            root_password: non_empty("SLUICE_ROOT_PASSWORD"),
            relay,
            channels: file.channels,
            tokens: file.tokens,
            fallbacks: file.fallbacks,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
        Ok(toml::from_str(text)?)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let mut names = std::collections::HashSet::new();
        for c in &self.channels {
            if !names.insert(&c.name) {
                bail!("channel '{}' is declared twice", c.name);
            }
            c.validate()
                .map_err(|e| anyhow::anyhow!("channel '{}': {e}", c.name))?;
        }
        let mut keys = std::collections::HashSet::new();
        for t in &self.tokens {
            if !t.key.starts_with("sk-") || t.key.len() < 16 {
                bail!(
                    "token '{}': key must start with 'sk-' and be at least 16 characters",
                    t.name
                );
            }
            if !keys.insert(&t.key) {
                bail!("token '{}': the same key is declared twice", t.name);
            }
            if [t.rpm as u64, t.tpm, t.max_concurrency as u64]
                .into_iter()
                .any(|l| l > MAX_LIMIT)
            {
                bail!("token '{}': limits must be at most {MAX_LIMIT}", t.name);
            }
        }
        let mut chains = std::collections::HashSet::new();
        for f in &self.fallbacks {
            if !chains.insert(&f.name) {
                bail!("fallback '{}' is declared twice", f.name);
            }
            f.validate()
                .map_err(|e| anyhow::anyhow!("fallback '{}': {e}", f.name))?;
        }
        if self.relay.window_secs == 0 || self.relay.max_attempts == 0 {
            bail!("relay.window_secs and relay.max_attempts must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"
[[channels]]
name = "nvidia"
base_url = "https://integrate.api.nvidia.com/v1"
keys = ["nvapi-1", "nvapi-2", "nvapi-3", "nvapi-4"]
models = ["minimax-m2.1", "deepseek-v3.2"]
model_map = { "minimax-m2.1" = "minimaxai/minimax-m2.1" }
rpm = 40        # per key; 0 or absent = unlimited
tpm = 0         # per key
priority = 0    # higher tier is tried first
weight = 1

[[tokens]]
name = "openclaw"
key = "sk-openclaw-0123456789"
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let dir = std::env::temp_dir().join(format!("sluice-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sluice.toml");
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_sources(Some(&path), &env)
    }

    #[test]
    fn the_documented_file_shape_loads() {
        let s = load(ISSUE_EXAMPLE, &[]).unwrap();
        assert_eq!(s.channels[0].keys.len(), 4);
        assert_eq!(s.channels[0].rpm, 40);
        assert_eq!(s.channels[0].model_map["minimax-m2.1"], "minimaxai/minimax-m2.1");
        assert_eq!(s.tokens[0].name, "openclaw");
        assert_eq!(s.listen, "0.0.0.0:3000");
        assert_eq!(s.relay.max_wait_secs, 90);
        assert!(s.database_url.starts_with("sqlite://./data/sluice.db"));
    }

    #[test]
    fn environment_wins_over_the_file() {
        let s = load(
            "listen = \"127.0.0.1:1\"\n",
            &[
                ("SLUICE_LISTEN", "127.0.0.1:9"),
                ("DATABASE_URL", "postgres://x/y"),
            ],
        )
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:9");
        assert_eq!(s.database_url, "postgres://x/y");
    }

    #[test]
    fn a_typo_names_the_unknown_field() {
        let err = load(
            "[[channels]]\nname=\"a\"\nbase_url=\"http://x\"\nkeys=[]\nmodels=[\"m\"]\nrmp=3\n",
            &[],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("unknown field `rmp`"), "{err:#}");
    }

    #[test]
    fn fallback_chains_load_with_a_default_wait_and_are_checked() {
        let s = load(
            "[[fallbacks]]\nname = \"smart\"\nmodels = [\"deepseek-v3.2\", \"qwen3\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.fallbacks[0].models, ["deepseek-v3.2", "qwen3"]);
        assert_eq!(s.fallbacks[0].wait_secs, 5);
        let err = load("[[fallbacks]]\nname = \"x\"\nmodels = []\n", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("fallback 'x'"), "{err:#}");
        let err = load("[[fallbacks]]\nname = \"x\"\nmodels = [\"a\"]\nwait = 3\n", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field `wait`"), "{err:#}");
    }

    #[test]
    fn a_mapped_model_must_be_served() {
        let err = load(
            "[[channels]]\nname=\"a\"\nbase_url=\"http://x\"\nkeys=[\"k\"]\nmodels=[\"m\"]\nmodel_map={ other = \"x\" }\n",
            &[],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("'other' is mapped"), "{err:#}");
    }
}

//! What every handler shares: settings, the database, the actors, the caches.

use std::sync::Arc;

use actix::Addr;
use sea_orm::DatabaseConnection;
use sluice_actors::{Ledger, Mailer, Router};

use crate::auth::jwt::JwtKeys;
use crate::auth::limiter::LoginLimiter;
use crate::billing::PriceBook;
use crate::catalog::models::ServedModels;
use crate::catalog::token_cache::TokenCache;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::relay::hang::FirstByteWatch;
use crate::relay::quota::PromptCounts;
use crate::relay::usage::TokenCounter;
use crate::secrets::SecretBox;

/// Shared application state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// Settings loaded at start.
    pub settings: Arc<Settings>,
    /// The database.
    pub db: DatabaseConnection,
    /// The router actor.
    pub router: Addr<Router>,
    /// The ledger actor.
    pub ledger: Addr<Ledger>,
    /// The mailer actor; `None` when mail is not configured.
    pub mailer: Option<Addr<Mailer>>,
    /// Tokens by hash.
    pub tokens: TokenCache,
    /// The models served, and to which groups.
    pub models: ServedModels,
    /// Token counter.
    pub counter: Arc<TokenCounter>,
    /// HTTP clients for providers (a pool per thread, TCP_NODELAY).
    pub http: crate::relay::upstream::Upstream,
    /// Access-token keys.
    pub jwt: Arc<JwtKeys>,
    /// Login throttling.
    pub login_limiter: Arc<LoginLimiter>,
    /// Prices and group multipliers.
    pub prices: PriceBook,
    /// The other replicas, when there are any.
    pub cluster: crate::cluster::Cluster,
    /// Prometheus counters and histograms the relay records.
    pub metrics: Arc<Metrics>,
    /// Seals provider keys at rest.
    pub secrets: SecretBox,
    /// Recent first-byte times per model, to tell a hanging key from a slow model.
    pub first_bytes: Arc<FirstByteWatch>,
    /// How providers count prompts, per model, for quota holds.
    pub prompt_counts: Arc<PromptCounts>,
}

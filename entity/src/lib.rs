//! SeaORM entities for the Sluice gateway database.
//!
//! Portability notes (SQLite, MySQL/MariaDB, PostgreSQL):
//! - JSON lists/maps are stored as `TEXT` holding serialized JSON (`String` here).
//! - Timestamps are `DateTime<Utc>` (`ChronoDateTimeUtc`).
//! - Money/quota values are `i64` quota units.

pub mod audit_log;
pub mod channel_keys;
pub mod channels;
pub mod fallbacks;
pub mod invites;
pub mod model_prices;
pub mod refresh_tokens;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod usage_logs;
pub mod users;

pub mod prelude {
    pub use super::audit_log::Entity as AuditLog;
    pub use super::channel_keys::Entity as ChannelKeys;
    pub use super::channels::Entity as Channels;
    pub use super::fallbacks::Entity as Fallbacks;
    pub use super::invites::Entity as Invites;
    pub use super::model_prices::Entity as ModelPrices;
    pub use super::refresh_tokens::Entity as RefreshTokens;
    pub use super::sessions::Entity as Sessions;
    pub use super::settings::Entity as Settings;
    pub use super::tokens::Entity as Tokens;
    pub use super::usage_logs::Entity as UsageLogs;
    pub use super::users::Entity as Users;
}

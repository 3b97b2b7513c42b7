//! Initial schema.
//!
//! Portability rules (SQLite, MySQL/MariaDB, PostgreSQL):
//! - Ids are BIGINT auto-increment primary keys (SQLite renders them as
//!   `INTEGER PRIMARY KEY AUTOINCREMENT`).
//! - JSON values are stored in TEXT columns. TEXT defaults are written as
//!   parenthesised expressions (`DEFAULT ('{}')`): MySQL 8 rejects a plain
//!   literal default on TEXT, and the expression form is accepted by all backends.
//! - Indexed strings are bounded VARCHARs (MySQL cannot index TEXT).
//! - Timestamps are `TIMESTAMP WITH TIME ZONE` on PostgreSQL and SQLite, but
//!   `DATETIME(6)` on MySQL/MariaDB: MySQL's TIMESTAMP stops at 2038 and, with
//!   `explicit_defaults_for_timestamp=OFF` (MariaDB < 10.10 default), silently
//!   gets `DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP`. sqlx decodes
//!   `DateTime<Utc>` from DATETIME too (connections use UTC).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    Email,
    PasswordHash,
    Role,
    GroupName,
    Status,
    Quota,
    UsedQuota,
    RequestCount,
    MustChangePassword,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    UserId,
    Name,
    KeyHash,
    KeyPrefix,
    Status,
    Models,
    IpAllow,
    ExpiresAt,
    RemainingQuota,
    UnlimitedQuota,
    UsedQuota,
    ManagedBy,
    CreatedAt,
    UpdatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum Channels {
    Table,
    Id,
    Name,
    Kind,
    BaseUrl,
    Models,
    ModelMap,
    Priority,
    Weight,
    Groups,
    ExtraHeaders,
    Rpm,
    Tpm,
    MaxConcurrency,
    ModelLimits,
    Status,
    ManagedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ChannelKeys {
    Table,
    Id,
    ChannelId,
    SecretEnc,
    Fingerprint,
    Mask,
    Rpm,
    Tpm,
    MaxConcurrency,
    ModelLimits,
    Status,
    DisabledReason,
    ManagedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ModelPrices {
    Table,
    Id,
    Model,
    InputPrice,
    OutputPrice,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum UsageLogs {
    Table,
    Id,
    RequestId,
    CreatedAt,
    UserId,
    TokenId,
    TokenName,
    Model,
    UpstreamModel,
    ChannelId,
    KeyId,
    PromptTokens,
    CompletionTokens,
    UsageEstimated,
    Quota,
    LatencyMs,
    FirstTokenMs,
    IsStream,
    Status,
    Attempts,
    Error,
}

#[derive(DeriveIden)]
enum Invites {
    Table,
    Id,
    Email,
    TokenHash,
    Kind,
    Role,
    GroupName,
    Quota,
    InvitedBy,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    TokenHash,
    ExpiresAt,
    RevokedAt,
    ReplacedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
    UpdatedAt,
}

/// BIGINT auto-increment primary key.
fn id<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .take()
}

fn str_len<T: IntoIden>(col: T, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).not_null().take()
}

fn str_len_null<T: IntoIden>(col: T, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).null().take()
}

fn text<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).text().not_null().take()
}

fn text_null<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).text().null().take()
}

/// NOT NULL TEXT column with a constant default, written as a parenthesised
/// expression so that MySQL 8 accepts it (see module docs). `value` must not
/// contain single quotes.
fn text_default<T: IntoIden>(col: T, value: &str) -> ColumnDef {
    debug_assert!(!value.contains('\''));
    ColumnDef::new(col)
        .text()
        .not_null()
        .default(Expr::cust(format!("('{value}')")))
        .take()
}

fn big<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().take()
}

fn big_default<T: IntoIden>(col: T, value: i64) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().default(value).take()
}

fn big_null<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).big_integer().null().take()
}

fn int<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).integer().not_null().take()
}

fn int_default<T: IntoIden>(col: T, value: i32) -> ColumnDef {
    ColumnDef::new(col).integer().not_null().default(value).take()
}

fn int_null<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).integer().null().take()
}

fn boolean<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).boolean().not_null().take()
}

fn boolean_default<T: IntoIden>(col: T, value: bool) -> ColumnDef {
    ColumnDef::new(col).boolean().not_null().default(value).take()
}

/// Builds timestamp columns appropriate for the connected backend.
#[derive(Clone, Copy)]
struct Ts(DatabaseBackend);

impl Ts {
    fn base<T: IntoIden>(self, col: T) -> ColumnDef {
        let mut def = ColumnDef::new(col);
        match self.0 {
            DatabaseBackend::MySql => def.custom(Alias::new("datetime(6)")),
            _ => def.timestamp_with_time_zone(),
        };
        def
    }

    fn not_null<T: IntoIden>(self, col: T) -> ColumnDef {
        self.base(col).not_null().take()
    }

    fn null<T: IntoIden>(self, col: T) -> ColumnDef {
        self.base(col).null().take()
    }
}

fn unique(name: &str) -> IndexCreateStatement {
    Index::create().name(name).unique().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let ts = Ts(manager.get_database_backend());

        // users
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(id(Users::Id))
                    .col(str_len(Users::Username, 64))
                    .col(str_len_null(Users::Email, 255))
                    .col(str_len_null(Users::PasswordHash, 255))
                    .col(str_len(Users::Role, 16))
                    .col(str_len(Users::GroupName, 64).default("default"))
                    .col(str_len(Users::Status, 16))
                    .col(big_default(Users::Quota, 0))
                    .col(big_default(Users::UsedQuota, 0))
                    .col(big_default(Users::RequestCount, 0))
                    .col(boolean_default(Users::MustChangePassword, false))
                    .col(ts.not_null(Users::CreatedAt))
                    .col(ts.not_null(Users::UpdatedAt))
                    .index(unique("uq_users_username").col(Users::Username))
                    .index(unique("uq_users_email").col(Users::Email))
                    .to_owned(),
            )
            .await?;

        // tokens
        manager
            .create_table(
                Table::create()
                    .table(Tokens::Table)
                    .if_not_exists()
                    .col(id(Tokens::Id))
                    .col(big(Tokens::UserId))
                    .col(str_len(Tokens::Name, 128))
                    .col(str_len(Tokens::KeyHash, 64))
                    .col(str_len(Tokens::KeyPrefix, 32))
                    .col(str_len(Tokens::Status, 16))
                    .col(text_null(Tokens::Models))
                    .col(text_null(Tokens::IpAllow))
                    .col(ts.null(Tokens::ExpiresAt))
                    .col(big_default(Tokens::RemainingQuota, 0))
                    .col(boolean_default(Tokens::UnlimitedQuota, true))
                    .col(big_default(Tokens::UsedQuota, 0))
                    .col(str_len(Tokens::ManagedBy, 16))
                    .col(ts.not_null(Tokens::CreatedAt))
                    .col(ts.not_null(Tokens::UpdatedAt))
                    .col(ts.null(Tokens::LastUsedAt))
                    .index(unique("uq_tokens_key_hash").col(Tokens::KeyHash))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tokens_user_id")
                            .from(Tokens::Table, Tokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_tokens_user_id")
                    .table(Tokens::Table)
                    .col(Tokens::UserId)
                    .to_owned(),
            )
            .await?;

        // channels
        manager
            .create_table(
                Table::create()
                    .table(Channels::Table)
                    .if_not_exists()
                    .col(id(Channels::Id))
                    .col(str_len(Channels::Name, 128))
                    .col(str_len(Channels::Kind, 32).default("openai"))
                    .col(str_len(Channels::BaseUrl, 512))
                    .col(text_default(Channels::Models, "[]"))
                    .col(text_default(Channels::ModelMap, "{}"))
                    .col(int_default(Channels::Priority, 0))
                    .col(int_default(Channels::Weight, 1))
                    .col(text_default(Channels::Groups, r#"["default"]"#))
                    .col(text_default(Channels::ExtraHeaders, "{}"))
                    .col(big_default(Channels::Rpm, 0))
                    .col(big_default(Channels::Tpm, 0))
                    .col(int_default(Channels::MaxConcurrency, 0))
                    .col(text_default(Channels::ModelLimits, "{}"))
                    .col(str_len(Channels::Status, 16))
                    .col(str_len(Channels::ManagedBy, 16))
                    .col(ts.not_null(Channels::CreatedAt))
                    .col(ts.not_null(Channels::UpdatedAt))
                    .index(unique("uq_channels_name").col(Channels::Name))
                    .to_owned(),
            )
            .await?;

        // channel_keys
        manager
            .create_table(
                Table::create()
                    .table(ChannelKeys::Table)
                    .if_not_exists()
                    .col(id(ChannelKeys::Id))
                    .col(big(ChannelKeys::ChannelId))
                    .col(text(ChannelKeys::SecretEnc))
                    .col(str_len(ChannelKeys::Fingerprint, 64))
                    .col(str_len(ChannelKeys::Mask, 32))
                    .col(big_null(ChannelKeys::Rpm))
                    .col(big_null(ChannelKeys::Tpm))
                    .col(int_null(ChannelKeys::MaxConcurrency))
                    .col(text_null(ChannelKeys::ModelLimits))
                    .col(str_len(ChannelKeys::Status, 16))
                    .col(text_null(ChannelKeys::DisabledReason))
                    .col(str_len(ChannelKeys::ManagedBy, 16))
                    .col(ts.not_null(ChannelKeys::CreatedAt))
                    .col(ts.not_null(ChannelKeys::UpdatedAt))
                    // Leading channel_id also serves lookups by channel.
                    .index(
                        unique("uq_channel_keys_channel_fingerprint")
                            .col(ChannelKeys::ChannelId)
                            .col(ChannelKeys::Fingerprint),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_channel_keys_channel_id")
                            .from(ChannelKeys::Table, ChannelKeys::ChannelId)
                            .to(Channels::Table, Channels::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;

        // model_prices
        manager
            .create_table(
                Table::create()
                    .table(ModelPrices::Table)
                    .if_not_exists()
                    .col(id(ModelPrices::Id))
                    .col(str_len(ModelPrices::Model, 128))
                    .col(big(ModelPrices::InputPrice))
                    .col(big(ModelPrices::OutputPrice))
                    .col(ts.not_null(ModelPrices::UpdatedAt))
                    .index(unique("uq_model_prices_model").col(ModelPrices::Model))
                    .to_owned(),
            )
            .await?;

        // usage_logs (no foreign keys on purpose)
        manager
            .create_table(
                Table::create()
                    .table(UsageLogs::Table)
                    .if_not_exists()
                    .col(id(UsageLogs::Id))
                    .col(str_len(UsageLogs::RequestId, 64))
                    .col(ts.not_null(UsageLogs::CreatedAt))
                    .col(big_null(UsageLogs::UserId))
                    .col(big_null(UsageLogs::TokenId))
                    .col(str_len(UsageLogs::TokenName, 128))
                    .col(str_len(UsageLogs::Model, 128))
                    .col(str_len(UsageLogs::UpstreamModel, 256))
                    .col(big_null(UsageLogs::ChannelId))
                    .col(big_null(UsageLogs::KeyId))
                    .col(big(UsageLogs::PromptTokens))
                    .col(big(UsageLogs::CompletionTokens))
                    .col(boolean(UsageLogs::UsageEstimated))
                    .col(big(UsageLogs::Quota))
                    .col(big(UsageLogs::LatencyMs))
                    .col(big_null(UsageLogs::FirstTokenMs))
                    .col(boolean(UsageLogs::IsStream))
                    .col(int(UsageLogs::Status))
                    .col(int(UsageLogs::Attempts))
                    .col(text_null(UsageLogs::Error))
                    .to_owned(),
            )
            .await?;
        let usage_indexes: [(&str, &[UsageLogs]); 6] = [
            ("idx_usage_logs_created_at", &[UsageLogs::CreatedAt]),
            (
                "idx_usage_logs_user_created",
                &[UsageLogs::UserId, UsageLogs::CreatedAt],
            ),
            (
                "idx_usage_logs_token_created",
                &[UsageLogs::TokenId, UsageLogs::CreatedAt],
            ),
            (
                "idx_usage_logs_channel_created",
                &[UsageLogs::ChannelId, UsageLogs::CreatedAt],
            ),
            ("idx_usage_logs_model", &[UsageLogs::Model]),
            ("idx_usage_logs_request_id", &[UsageLogs::RequestId]),
        ];
        for (name, cols) in usage_indexes {
            let mut idx = Index::create();
            idx.if_not_exists().name(name).table(UsageLogs::Table);
            for col in cols {
                idx.col(*col);
            }
            manager.create_index(idx).await?;
        }

        // invites
        manager
            .create_table(
                Table::create()
                    .table(Invites::Table)
                    .if_not_exists()
                    .col(id(Invites::Id))
                    .col(str_len(Invites::Email, 255))
                    .col(str_len(Invites::TokenHash, 64))
                    .col(str_len(Invites::Kind, 16))
                    .col(str_len(Invites::Role, 16))
                    .col(str_len(Invites::GroupName, 64))
                    .col(big(Invites::Quota))
                    .col(big_null(Invites::InvitedBy))
                    .col(ts.not_null(Invites::ExpiresAt))
                    .col(ts.null(Invites::UsedAt))
                    .col(ts.not_null(Invites::CreatedAt))
                    .index(unique("uq_invites_token_hash").col(Invites::TokenHash))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_invites_email")
                    .table(Invites::Table)
                    .col(Invites::Email)
                    .to_owned(),
            )
            .await?;

        // refresh_tokens
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .if_not_exists()
                    .col(id(RefreshTokens::Id))
                    .col(big(RefreshTokens::UserId))
                    .col(str_len(RefreshTokens::TokenHash, 64))
                    .col(ts.not_null(RefreshTokens::ExpiresAt))
                    .col(ts.null(RefreshTokens::RevokedAt))
                    .col(big_null(RefreshTokens::ReplacedBy))
                    .col(ts.not_null(RefreshTokens::CreatedAt))
                    .index(unique("uq_refresh_tokens_token_hash").col(RefreshTokens::TokenHash))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_user_id")
                            .from(RefreshTokens::Table, RefreshTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_refresh_tokens_user_id")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::UserId)
                    .to_owned(),
            )
            .await?;

        // settings
        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Settings::Key)
                            .string_len(128)
                            .not_null()
                            .primary_key(),
                    )
                    .col(text(Settings::Value))
                    .col(ts.not_null(Settings::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Reverse creation order: children before parents. Indexes go with their tables.
        let tables: [DynIden; 9] = [
            Settings::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Invites::Table.into_iden(),
            UsageLogs::Table.into_iden(),
            ModelPrices::Table.into_iden(),
            ChannelKeys::Table.into_iden(),
            Channels::Table.into_iden(),
            Tokens::Table.into_iden(),
            Users::Table.into_iden(),
        ];
        for table in tables {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

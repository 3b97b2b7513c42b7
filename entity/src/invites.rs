use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Invitation or password-reset token. Only the SHA-256 hex of the token is stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "invites")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub email: String,
    #[sea_orm(column_type = "String(StringLen::N(64))", unique)]
    pub token_hash: String,
    /// "invite" | "reset"
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub kind: String,
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub role: String,
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub group_name: String,
    pub quota: i64,
    /// User id of the inviter (no FK).
    pub invited_by: Option<i64>,
    pub expires_at: ChronoDateTimeUtc,
    pub used_at: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

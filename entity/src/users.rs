use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A gateway user. `role` is "root" | "admin" | "user"; `status` is "enabled" | "disabled".
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "String(StringLen::N(64))", unique)]
    pub username: String,
    #[sea_orm(column_type = "String(StringLen::N(255))", nullable, unique)]
    pub email: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(255))", nullable)]
    pub password_hash: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub role: String,
    #[sea_orm(column_type = "String(StringLen::N(64))", default_value = "default")]
    pub group_name: String,
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub status: String,
    /// Remaining quota.
    #[sea_orm(default_value = 0)]
    pub quota: i64,
    #[sea_orm(default_value = 0)]
    pub used_quota: i64,
    #[sea_orm(default_value = 0)]
    pub request_count: i64,
    #[sea_orm(default_value = false)]
    pub must_change_password: bool,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
    /// Requests per window this user may make; 0 = no limit of its own.
    #[sea_orm(default_value = 0)]
    pub rpm: i64,
    /// Tokens per window; 0 = no limit.
    #[sea_orm(default_value = 0)]
    pub tpm: i64,
    /// Requests in flight at once; 0 = no limit.
    #[sea_orm(default_value = 0)]
    pub max_concurrency: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::tokens::Entity")]
    Tokens,
    #[sea_orm(has_many = "super::refresh_tokens::Entity")]
    RefreshTokens,
}

impl Related<super::tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tokens.def()
    }
}

impl Related<super::refresh_tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshTokens.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

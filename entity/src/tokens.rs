use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// An API token (`sk-...`). Only the SHA-256 hex of the full key is stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub name: String,
    /// SHA-256 hex of the full `sk-` key.
    #[sea_orm(column_type = "String(StringLen::N(64))", unique)]
    pub key_hash: String,
    /// Displayable prefix of the key.
    #[sea_orm(column_type = "String(StringLen::N(32))")]
    pub key_prefix: String,
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub status: String,
    /// JSON array of allowed models; `None` = all models.
    #[sea_orm(column_type = "Text", nullable)]
    pub models: Option<String>,
    /// JSON array of allowed CIDRs; `None` = any address.
    #[sea_orm(column_type = "Text", nullable)]
    pub ip_allow: Option<String>,
    pub expires_at: Option<ChronoDateTimeUtc>,
    #[sea_orm(default_value = 0)]
    pub remaining_quota: i64,
    #[sea_orm(default_value = true)]
    pub unlimited_quota: bool,
    #[sea_orm(default_value = 0)]
    pub used_quota: i64,
    /// "config" | "api"
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub managed_by: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
    pub last_used_at: Option<ChronoDateTimeUtc>,
    /// Requests per window this token may make; 0 = no limit of its own.
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
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Users,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

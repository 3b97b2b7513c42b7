use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// An upstream provider channel.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "channels")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "String(StringLen::N(128))", unique)]
    pub name: String,
    #[sea_orm(column_type = "String(StringLen::N(32))", default_value = "openai")]
    pub kind: String,
    #[sea_orm(column_type = "String(StringLen::N(512))")]
    pub base_url: String,
    /// JSON array of model names served by this channel.
    #[sea_orm(column_type = "Text")]
    pub models: String,
    /// JSON object: requested model -> upstream model.
    #[sea_orm(column_type = "Text")]
    pub model_map: String,
    #[sea_orm(default_value = 0)]
    pub priority: i32,
    #[sea_orm(default_value = 1)]
    pub weight: i32,
    /// JSON array of user groups allowed to use this channel.
    #[sea_orm(column_type = "Text")]
    pub groups: String,
    /// JSON object of extra HTTP headers sent upstream.
    #[sea_orm(column_type = "Text")]
    pub extra_headers: String,
    /// Requests per minute limit (0 = unlimited).
    #[sea_orm(default_value = 0)]
    pub rpm: i64,
    /// Tokens per minute limit (0 = unlimited).
    #[sea_orm(default_value = 0)]
    pub tpm: i64,
    /// Max in-flight requests (0 = unlimited).
    #[sea_orm(default_value = 0)]
    pub max_concurrency: i32,
    /// JSON object: model -> {"rpm": n, "tpm": n}.
    #[sea_orm(column_type = "Text")]
    pub model_limits: String,
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub status: String,
    /// "config" | "api"
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub managed_by: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::channel_keys::Entity")]
    ChannelKeys,
}

impl Related<super::channel_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ChannelKeys.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

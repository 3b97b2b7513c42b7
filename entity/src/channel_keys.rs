use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// An upstream API key belonging to a channel. `(channel_id, fingerprint)` is unique.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "channel_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub channel_id: i64,
    /// Encrypted key material, base64.
    #[sea_orm(column_type = "Text")]
    pub secret_enc: String,
    /// SHA-256 hex of the plain key.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub fingerprint: String,
    #[sea_orm(column_type = "String(StringLen::N(32))")]
    pub mask: String,
    /// `None` = inherit from channel.
    pub rpm: Option<i64>,
    /// `None` = inherit from channel.
    pub tpm: Option<i64>,
    /// `None` = inherit from channel.
    pub max_concurrency: Option<i32>,
    /// JSON object: model -> {"rpm": n, "tpm": n}; `None` = inherit.
    #[sea_orm(column_type = "Text", nullable)]
    pub model_limits: Option<String>,
    /// "enabled" | "disabled" | "auto_disabled"
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub disabled_reason: Option<String>,
    /// "config" | "api"
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub managed_by: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::channels::Entity",
        from = "Column::ChannelId",
        to = "super::channels::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Channels,
}

impl Related<super::channels::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Channels.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

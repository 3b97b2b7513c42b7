use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One proxied request. Deliberately has no foreign keys: logs outlive
/// deleted users, tokens, channels and keys.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "usage_logs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub request_id: String,
    pub created_at: ChronoDateTimeUtc,
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub token_name: String,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub model: String,
    #[sea_orm(column_type = "String(StringLen::N(256))")]
    pub upstream_model: String,
    pub channel_id: Option<i64>,
    pub key_id: Option<i64>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// True when token counts were estimated locally rather than reported upstream.
    pub usage_estimated: bool,
    /// Cost in quota units.
    pub quota: i64,
    pub latency_ms: i64,
    pub first_token_ms: Option<i64>,
    pub is_stream: bool,
    /// HTTP status returned to the client.
    pub status: i32,
    pub attempts: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// The API the client spoke: `openai`, `anthropic` or `responses`.
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub protocol: String,
    /// The fallback chain the client asked for, when `model` is the step that served.
    #[sea_orm(column_type = "String(StringLen::N(128))", nullable)]
    pub fallback: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

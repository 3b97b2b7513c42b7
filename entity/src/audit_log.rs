use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One change an account made. Deliberately has no foreign keys: the trail
/// outlives the accounts and things it names.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: ChronoDateTimeUtc,
    pub actor_id: i64,
    /// The actor's name when they acted.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub actor_username: String,
    /// `user`, `admin` or `root`, when they acted.
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub actor_role: String,
    /// The client's address, as resolved through `trusted_proxies`.
    #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
    pub address: Option<String>,
    /// Such as `user.update` or `channel.delete`.
    #[sea_orm(column_type = "String(StringLen::N(48))")]
    pub action: String,
    /// `user`, `channel`, `key`, `token`, `price`, `group`, `invite`, `fallback`.
    #[sea_orm(column_type = "String(StringLen::N(32))")]
    pub target_type: String,
    /// The target's id, or its name for things named rather than numbered.
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub target_id: String,
    /// A name a person recognises the target by.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub target_label: String,
    /// JSON: the fields that changed, as they were (secrets masked).
    #[sea_orm(column_type = "Text", nullable)]
    pub before_json: Option<String>,
    /// JSON: the fields that changed, as they are now (secrets masked).
    #[sea_orm(column_type = "Text", nullable)]
    pub after_json: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
    pub request_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Session refresh token (rotated on use). Only the SHA-256 hex is stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    #[sea_orm(column_type = "String(StringLen::N(64))", unique)]
    pub token_hash: String,
    pub expires_at: ChronoDateTimeUtc,
    pub revoked_at: Option<ChronoDateTimeUtc>,
    /// Id of the refresh token that replaced this one on rotation (no FK).
    pub replaced_by: Option<i64>,
    pub created_at: ChronoDateTimeUtc,
    /// The session it belongs to (none for tokens issued before sessions existed).
    pub session_id: Option<i64>,
    /// Why it stopped working: `rotated` (it was used), or what ended its session.
    #[sea_orm(column_type = "String(StringLen::N(16))", nullable)]
    pub revoked_reason: Option<String>,
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

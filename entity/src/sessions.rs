use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A sign-in: its access tokens name it and stop when it ends.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub created_at: ChronoDateTimeUtc,
    /// Last time its refresh token was rotated.
    pub refreshed_at: ChronoDateTimeUtc,
    pub ended_at: Option<ChronoDateTimeUtc>,
    /// `logout`, `password`, `password_reset`, `disabled`, `reuse`.
    #[sea_orm(column_type = "String(StringLen::N(16))", nullable)]
    pub end_reason: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
    pub address: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(255))", nullable)]
    pub user_agent: Option<String>,
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

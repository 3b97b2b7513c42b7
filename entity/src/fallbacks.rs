use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A fallback chain: a model name clients use for an ordered list of models,
/// each tried when the one before had no key with room in time or failed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "fallbacks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "String(StringLen::N(128))", unique)]
    pub name: String,
    /// JSON array of model names, in the order they are tried.
    #[sea_orm(column_type = "Text")]
    pub models: String,
    /// Seconds a step waits for a key with room before the next is tried.
    pub wait_secs: i64,
    /// `api`, or `config` when declared in the config file.
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub managed_by: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

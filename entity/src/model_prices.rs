use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Per-model pricing in quota units per million tokens.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "model_prices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "String(StringLen::N(128))", unique)]
    pub model: String,
    /// Quota units per million input (prompt) tokens.
    pub input_price: i64,
    /// Quota units per million output (completion) tokens.
    pub output_price: i64,
    pub updated_at: ChronoDateTimeUtc,
    /// Completion tokens reserved for a request that names no `max_tokens`;
    /// `None` = the default allowance.
    pub max_output_tokens: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

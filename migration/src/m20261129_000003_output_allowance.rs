//! Each priced model's output allowance: the completion tokens a request that
//! names no `max_tokens` reserves quota for (unset: the default allowance).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ModelPrices {
    Table,
    MaxOutputTokens,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ModelPrices::Table)
                    .add_column(ColumnDef::new(ModelPrices::MaxOutputTokens).integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ModelPrices::Table)
                    .drop_column(ModelPrices::MaxOutputTokens)
                    .to_owned(),
            )
            .await
    }
}

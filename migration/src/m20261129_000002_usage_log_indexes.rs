//! Usage logs are written at the relay's pace: every index is paid on every
//! request. Nothing looks a row up by its request id (the id is for finding a
//! request in the provider's and the client's own logs, and the export has it),
//! and that index, over random ids, was the dearest to keep up.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UsageLogs {
    Table,
    RequestId,
}

const INDEX: &str = "idx_usage_logs_request_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(UsageLogs::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX)
                    .table(UsageLogs::Table)
                    .col(UsageLogs::RequestId)
                    .to_owned(),
            )
            .await
    }
}

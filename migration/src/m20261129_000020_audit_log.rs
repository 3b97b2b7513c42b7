//! The audit log: one row per change an account made through `/api` — who
//! (kept by name too, so the row outlives the account), from which address,
//! what, and the state before and after with secrets already masked. No
//! foreign keys, like `usage_logs`: the trail outlives what it describes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    At,
    ActorId,
    ActorUsername,
    ActorRole,
    Address,
    Action,
    TargetType,
    TargetId,
    TargetLabel,
    BeforeJson,
    AfterJson,
    RequestId,
}

/// A timestamp column as the initial migration makes them (DATETIME(6) on MySQL,
/// with a time zone elsewhere).
fn timestamp(backend: DatabaseBackend, col: AuditLog) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    match backend {
        DatabaseBackend::MySql => def.custom(Alias::new("datetime(6)")),
        _ => def.timestamp_with_time_zone(),
    };
    def.not_null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AuditLog::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(timestamp(backend, AuditLog::At))
                    .col(ColumnDef::new(AuditLog::ActorId).big_integer().not_null())
                    .col(ColumnDef::new(AuditLog::ActorUsername).string_len(64).not_null())
                    .col(ColumnDef::new(AuditLog::ActorRole).string_len(16).not_null())
                    .col(ColumnDef::new(AuditLog::Address).string_len(64).null())
                    .col(ColumnDef::new(AuditLog::Action).string_len(48).not_null())
                    .col(ColumnDef::new(AuditLog::TargetType).string_len(32).not_null())
                    .col(ColumnDef::new(AuditLog::TargetId).string_len(128).not_null())
                    .col(ColumnDef::new(AuditLog::TargetLabel).string_len(255).not_null())
                    .col(ColumnDef::new(AuditLog::BeforeJson).text().null())
                    .col(ColumnDef::new(AuditLog::AfterJson).text().null())
                    .col(ColumnDef::new(AuditLog::RequestId).string_len(64).null())
                    .to_owned(),
            )
            .await?;
        let indexes: [(&str, &[AuditLog]); 3] = [
            ("idx_audit_log_at", &[AuditLog::At]),
            ("idx_audit_log_actor", &[AuditLog::ActorId, AuditLog::Id]),
            (
                "idx_audit_log_target",
                &[AuditLog::TargetType, AuditLog::TargetId, AuditLog::Id],
            ),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create();
            index.if_not_exists().name(name).table(AuditLog::Table);
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}

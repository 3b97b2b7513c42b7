//! Anthropic Messages and Responses in, and fallback chains: each usage row says
//! which API the client spoke and, when it asked for a fallback chain, which
//! one (its `model` is then the step that served). Chains made through `/api`
//! or declared in the config file live in `fallbacks`. One column per statement:
//! SQLite alters a table one column at a time.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UsageLogs {
    Table,
    Protocol,
    Fallback,
}

#[derive(DeriveIden)]
enum Fallbacks {
    Table,
    Id,
    Name,
    Models,
    WaitSecs,
    ManagedBy,
    CreatedAt,
    UpdatedAt,
}

/// A timestamp column as the initial migration makes them (DATETIME(6) on MySQL,
/// which stops at no year; with a time zone elsewhere).
fn timestamp(backend: DatabaseBackend, col: Fallbacks) -> ColumnDef {
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
        for mut column in [
            ColumnDef::new(UsageLogs::Protocol)
                .string_len(16)
                .not_null()
                .default("openai")
                .take(),
            ColumnDef::new(UsageLogs::Fallback).string_len(128).null().take(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(UsageLogs::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Fallbacks::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Fallbacks::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Fallbacks::Name).string_len(128).not_null())
                    // A JSON array of model names, in the order they are tried.
                    .col(ColumnDef::new(Fallbacks::Models).text().not_null())
                    .col(
                        ColumnDef::new(Fallbacks::WaitSecs)
                            .big_integer()
                            .not_null()
                            .default(5),
                    )
                    .col(ColumnDef::new(Fallbacks::ManagedBy).string_len(16).not_null())
                    .col(timestamp(backend, Fallbacks::CreatedAt))
                    .col(timestamp(backend, Fallbacks::UpdatedAt))
                    .index(
                        Index::create()
                            .name("uq_fallbacks_name")
                            .unique()
                            .col(Fallbacks::Name),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Fallbacks::Table).to_owned())
            .await?;
        for column in [UsageLogs::Protocol, UsageLogs::Fallback] {
            manager
                .alter_table(
                    Table::alter()
                        .table(UsageLogs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

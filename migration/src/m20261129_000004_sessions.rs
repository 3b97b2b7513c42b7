//! Sessions: one row per sign-in, ended by logout, a password change, disabling
//! the account or a stolen refresh token. Access tokens name their session, so
//! ending it stops them at once. Refresh tokens belong to a session and say why
//! they stopped working (`rotated` on use; anything else ended the session).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    RefreshedAt,
    EndedAt,
    EndReason,
    Address,
    UserAgent,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    SessionId,
    RevokedReason,
    RevokedAt,
    ReplacedBy,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

/// A timestamp column as the initial schema makes them (DATETIME(6) on MySQL).
fn timestamp(backend: DatabaseBackend, col: Sessions) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    match backend {
        DatabaseBackend::MySql => def.custom(Alias::new("datetime(6)")),
        _ => def.timestamp_with_time_zone(),
    };
    def
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Sessions::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Sessions::UserId).big_integer().not_null())
                    .col(timestamp(backend, Sessions::CreatedAt).not_null())
                    .col(timestamp(backend, Sessions::RefreshedAt).not_null())
                    .col(timestamp(backend, Sessions::EndedAt).null())
                    .col(ColumnDef::new(Sessions::EndReason).string_len(16).null())
                    .col(ColumnDef::new(Sessions::Address).string_len(64).null())
                    .col(ColumnDef::new(Sessions::UserAgent).string_len(255).null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user_id")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;
        for column in [
            ColumnDef::new(RefreshTokens::SessionId)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(RefreshTokens::RevokedReason)
                .string_len(16)
                .null()
                .to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(RefreshTokens::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Tokens revoked before sessions existed: a replaced one was rotated,
        // any other was ended (logout, password change).
        for (replaced, reason) in [(true, "rotated"), (false, "ended")] {
            let mut update = Query::update();
            update
                .table(RefreshTokens::Table)
                .value(RefreshTokens::RevokedReason, reason)
                .and_where(Expr::col(RefreshTokens::RevokedAt).is_not_null());
            if replaced {
                update.and_where(Expr::col(RefreshTokens::ReplacedBy).is_not_null());
            } else {
                update.and_where(Expr::col(RefreshTokens::ReplacedBy).is_null());
            }
            manager.exec_stmt(update).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [RefreshTokens::RevokedReason, RefreshTokens::SessionId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RefreshTokens::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}

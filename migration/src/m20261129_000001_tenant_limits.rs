//! Per-user and per-token limits: requests and tokens per window and requests
//! in flight, 0 meaning none. One column per statement: SQLite alters a table
//! one column at a time.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
}

#[derive(DeriveIden)]
enum Limit {
    Rpm,
    Tpm,
    MaxConcurrency,
}

fn tables() -> [TableRef; 2] {
    [Users::Table.into_table_ref(), Tokens::Table.into_table_ref()]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            for column in [
                ColumnDef::new(Limit::Rpm)
                    .big_integer()
                    .not_null()
                    .default(0)
                    .to_owned(),
                ColumnDef::new(Limit::Tpm)
                    .big_integer()
                    .not_null()
                    .default(0)
                    .to_owned(),
                ColumnDef::new(Limit::MaxConcurrency)
                    .integer()
                    .not_null()
                    .default(0)
                    .to_owned(),
            ] {
                let mut column = column;
                manager
                    .alter_table(
                        Table::alter()
                            .table(table.clone())
                            .add_column(&mut column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            for column in [Limit::Rpm, Limit::Tpm, Limit::MaxConcurrency] {
                manager
                    .alter_table(Table::alter().table(table.clone()).drop_column(column).to_owned())
                    .await?;
            }
        }
        Ok(())
    }
}

//! Database migrations for Sluice.
//!
//! ```ignore
//! use sluice_migration::{Migrator, MigratorTrait};
//! Migrator::up(&db, None).await?;
//! ```

use sea_orm_migration::prelude::*;
pub use sea_orm_migration::MigratorTrait;

mod m20261125_000001_initial;
mod m20261129_000001_tenant_limits;
mod m20261129_000002_usage_log_indexes;
mod m20261129_000003_output_allowance;
mod m20261129_000004_sessions;
mod m20261129_000010_protocols_and_fallbacks;
mod m20261129_000020_audit_log;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_initial::Migration),
            Box::new(m20261129_000001_tenant_limits::Migration),
            Box::new(m20261129_000002_usage_log_indexes::Migration),
            Box::new(m20261129_000003_output_allowance::Migration),
            Box::new(m20261129_000004_sessions::Migration),
            Box::new(m20261129_000010_protocols_and_fallbacks::Migration),
            Box::new(m20261129_000020_audit_log::Migration),
        ]
    }
}

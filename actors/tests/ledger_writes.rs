//! The ledger writes its batches off its mailbox: a quota hold is answered
//! while a batch waits on the database, and nothing is lost or reordered
//! when a quota change or the last flush comes meanwhile. A real SQLite
//! database, held busy by a second connection's open write transaction.

mod common;

use std::time::Duration;

use actix::{Actor, Addr};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait};
use sluice_actors::balances::{Ask, QuotaError};
use sluice_actors::ledger::{self, ChangeQuota, Flush, Pending, QuotaChange, QuotaTarget, Record, Reserved};
use sluice_actors::Ledger;
use sluice_entity::{usage_logs, users};
use sluice_migration::{Migrator, MigratorTrait};

use self::common::{row, user};

async fn connect(url: &str, connections: u32) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options.max_connections(connections);
    Database::connect(options).await.unwrap()
}

/// Wait until the ledger has taken every row into a batch being written.
async fn batch_taken(ledger: &Addr<Ledger>) {
    while ledger.send(Pending).await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix_rt::test]
async fn a_quota_hold_is_answered_while_a_batch_waits_on_the_database() {
    let dir = std::env::temp_dir().join(format!("sluice-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("sluice.db").display());
    let db = connect(&url, 4).await;
    Migrator::up(&db, None).await.unwrap();
    let ada = user(&db, 1000).await;
    let ledger = Ledger::new(db.clone(), Duration::from_millis(20)).start();

    // Another connection holds the database's write lock…
    let blocker = connect(&url, 1).await;
    blocker.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();
    // …so the next batch, with this row, waits for it.
    let hold = ledger::reserve(&ledger, ada, None, Ask { full: 100, min: 100 })
        .await
        .unwrap();
    let mut first = row(ada, 40);
    hold.settle_with(&mut first);
    ledger.do_send(Record(first));
    batch_taken(&ledger).await;

    // A hold is answered meanwhile, from the balance the unwritten row settled.
    // (Bounded only so that a regression fails instead of hanging: with the
    // mailbox held by the write, this waits as long as the lock is held.)
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        ledger::reserve(&ledger, ada, None, Ask { full: 961, min: 961 }),
    )
    .await
    .expect("a quota hold is answered while the batch waits on the database");
    assert_eq!(
        refused.err(),
        Some(Reserved::Short(QuotaError::User {
            left: 960,
            needed: 961
        }))
    );
    let hold = ledger::reserve(&ledger, ada, None, Ask { full: 500, min: 500 })
        .await
        .unwrap();
    // The batch is still waiting: nothing written, nothing handed back.
    assert_eq!(usage_logs::Entity::find().count(&blocker).await.unwrap(), 0);
    assert_eq!(ledger.send(Pending).await.unwrap(), 0);

    // A quota change waits for the batch, and lands after its spending.
    let change = ledger.send(ChangeQuota {
        target: QuotaTarget::User(ada),
        change: QuotaChange::Add(1000),
    });
    blocker.execute_unprepared("ROLLBACK").await.unwrap();
    change.await.unwrap().unwrap();
    drop(hold);
    ledger.do_send(Record(row(ada, 10)));
    ledger.send(Flush).await.unwrap().unwrap();
    assert_eq!(usage_logs::Entity::find().count(&db).await.unwrap(), 2);
    let left = users::Entity::find_by_id(ada)
        .one(&db)
        .await
        .unwrap()
        .unwrap()
        .quota;
    assert_eq!(left, 1000 - 40 + 1000 - 10);
}

//! A replica's ledger cut off from Redis, and back: the real Redis on
//! 127.0.0.1:6379 reached through a proxy the test cuts and restores, and a
//! real SQLite database.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use sea_orm::{Database, DatabaseConnection, EntityTrait};
use sluice_actors::balances::{Ask, QuotaError};
use sluice_actors::ledger::{self, CanChangeQuota, ChangeFailed, Flush, Record, Reserved};
use sluice_actors::quota_store::{account_keys, QuotaStore};
use sluice_actors::Ledger;
use sluice_entity::users;
use sluice_migration::{Migrator, MigratorTrait};

use self::common::{row, user};
use tokio::net::{TcpListener, TcpStream};

const REDIS: &str = "127.0.0.1:6379";

/// A TCP proxy to Redis that can be cut (every connection closed, new ones
/// refused) and restored.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (accepting, tasks) = (up.clone(), links.clone());
        actix_rt::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let link = actix_rt::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(REDIS).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(link);
            }
        });
        Proxy { addr, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn database(dir: &std::path::Path) -> DatabaseConnection {
    let db = Database::connect(format!("sqlite://{}?mode=rwc", dir.join("sluice.db").display()))
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

async fn quota_in_database(db: &DatabaseConnection, id: i64) -> i64 {
    users::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .quota
}

/// (left, reserved) in Redis.
async fn quota_in_redis(prefix: &str, id: i64) -> (i64, i64) {
    let client = redis::Client::open(format!("redis://{REDIS}/0")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let [balance, _, _] = account_keys(prefix, ledger::QuotaTarget::User(id));
    redis::cmd("HMGET")
        .arg(balance)
        .arg("left")
        .arg("reserved")
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn settle(ledger: &Addr<Ledger>, hold: ledger::Hold, user: i64, cost: i64) {
    let mut record = row(user, cost);
    hold.settle_with(&mut record);
    ledger.do_send(Record(record));
}

fn whole(units: i64) -> Ask {
    Ask {
        full: units,
        min: units,
    }
}

#[actix_rt::test]
async fn a_replica_cut_off_from_redis_spends_its_share_and_pays_it_back() {
    let dir = std::env::temp_dir().join(format!("sluice-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = database(&dir).await;
    let ada = user(&db, 1000).await;
    let proxy = Proxy::start().await;
    let prefix = format!("sluice-test-{}", uuid::Uuid::new_v4().simple());
    let store = QuotaStore::open(&format!("redis://{}/0", proxy.addr), &prefix).unwrap();
    // Two live replicas: each may spend half of what is left on its own.
    let replicas = Arc::new(AtomicUsize::new(2));
    let ledger = Ledger::cluster(db.clone(), Duration::from_millis(50), store, replicas).start();

    let hold = ledger::reserve(&ledger, ada, None, whole(100)).await.unwrap();
    settle(&ledger, hold, ada, 40).await;
    ledger.send(Flush).await.unwrap().unwrap();
    assert_eq!(quota_in_redis(&prefix, ada).await, (960, 0));

    proxy.cut();
    let refused = ledger::reserve(&ledger, ada, None, whole(500)).await;
    assert_eq!(
        refused.err(),
        Some(Reserved::Short(QuotaError::User {
            left: 480,
            needed: 500
        })),
        "half of the 960 left"
    );
    assert!(matches!(
        ledger.send(CanChangeQuota).await.unwrap(),
        Err(ChangeFailed::StoreUnreachable(_))
    ));
    let hold = ledger::reserve(&ledger, ada, None, whole(100)).await.unwrap();
    settle(&ledger, hold, ada, 70).await;
    let running = ledger::reserve(&ledger, ada, None, whole(50)).await.unwrap();

    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ledger.send(CanChangeQuota).await.unwrap().is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never went back to Redis");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Charged what it spent alone, and holding for its request still running.
    assert_eq!(quota_in_redis(&prefix, ada).await, (890, 50));
    drop(running);
    ledger.send(Flush).await.unwrap().unwrap();
    assert_eq!(quota_in_redis(&prefix, ada).await, (890, 0));
    assert_eq!(quota_in_database(&db, ada).await, 890, "the database agrees");
    let _ = std::fs::remove_dir_all(&dir);
}

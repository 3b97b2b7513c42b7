//! The quota scripts against the real Redis on 127.0.0.1:6379, each test under
//! a prefix of its own: holds, waits and refusals as in one process; a balance
//! loaded once however many replicas load it; a dead replica's holds given
//! back when their lease runs out.

use std::time::Duration;

use sluice_actors::ledger::QuotaTarget;
use sluice_actors::quota_store::{account_keys, AccountAnswer, Balance, BalanceChange, Owed, QuotaStore};

const REDIS: &str = "redis://127.0.0.1:6379/0";
const ADA: QuotaTarget = QuotaTarget::User(1);

fn left(units: i64) -> Balance {
    Balance {
        left: units,
        unlimited: false,
    }
}

fn unlimited(left: i64) -> Balance {
    Balance {
        left,
        unlimited: true,
    }
}

fn prefix() -> String {
    format!("sluice-test-{}", uuid::Uuid::new_v4().simple())
}

/// What Redis holds for `account`: (left, reserved, holds recorded).
async fn balance(prefix: &str, account: QuotaTarget) -> (i64, i64, usize) {
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let [balance, holds, _] = account_keys(prefix, account);
    let (left, reserved): (i64, i64) = redis::cmd("HMGET")
        .arg(&balance)
        .arg("left")
        .arg("reserved")
        .query_async(&mut conn)
        .await
        .unwrap();
    let count: usize = redis::cmd("HLEN")
        .arg(&holds)
        .query_async(&mut conn)
        .await
        .unwrap();
    (left, reserved, count)
}

#[actix_rt::test]
async fn a_balance_is_loaded_once_however_many_replicas_load_it() {
    let prefix = prefix();
    let (a, b) = (
        QuotaStore::open(REDIS, &prefix).unwrap(),
        QuotaStore::open(REDIS, &prefix).unwrap(),
    );
    assert_eq!(
        a.reserve(ADA, "h1", 10, 10).await.unwrap(),
        AccountAnswer::Unknown
    );
    a.load(ADA, left(100)).await.unwrap();
    // The second replica read the database before the first's spending was written.
    b.load(ADA, left(500)).await.unwrap();
    assert_eq!(
        b.reserve(ADA, "h1", 101, 101).await.unwrap(),
        AccountAnswer::Short(100)
    );
}

#[actix_rt::test]
async fn holds_wait_are_cut_or_refused_as_in_one_process() {
    let prefix = prefix();
    let store = QuotaStore::open(REDIS, &prefix).unwrap();
    store.load(ADA, left(100)).await.unwrap();
    assert_eq!(
        store.reserve(ADA, "a", 60, 60).await.unwrap(),
        AccountAnswer::Granted(60)
    );
    // 40 free, 60 held: 60 more could go once the first settles.
    assert_eq!(
        store.reserve(ADA, "b", 60, 60).await.unwrap(),
        AccountAnswer::Wait(100)
    );
    // 500 can never be paid in full: it goes with the 40 free.
    assert_eq!(
        store.reserve(ADA, "c", 500, 10).await.unwrap(),
        AccountAnswer::Granted(40)
    );
    assert_eq!(
        store.reserve(ADA, "d", 101, 101).await.unwrap(),
        AccountAnswer::Short(100)
    );
    assert_eq!(balance(&prefix, ADA).await, (100, 100, 2));

    // The real cost is charged once, and what was held comes free.
    assert!(store.settle(ADA, "a", 25).await.unwrap());
    assert!(store.settle(ADA, "c", 0).await.unwrap());
    assert_eq!(balance(&prefix, ADA).await, (75, 0, 0));

    store.load(QuotaTarget::Token(9), unlimited(0)).await.unwrap();
    assert_eq!(
        store
            .reserve(QuotaTarget::Token(9), "e", 1_000_000, 1)
            .await
            .unwrap(),
        AccountAnswer::Unlimited
    );
}

#[actix_rt::test]
async fn a_dead_replicas_holds_come_back_when_their_lease_runs_out() {
    let prefix = prefix();
    // A replica whose leases run out at once, as a dead one's do.
    let dead = QuotaStore::open(REDIS, &prefix)
        .unwrap()
        .with_lease(Duration::ZERO);
    let alive = QuotaStore::open(REDIS, &prefix).unwrap();
    alive.load(ADA, left(100)).await.unwrap();
    assert_eq!(
        dead.reserve(ADA, "dead-1", 60, 60).await.unwrap(),
        AccountAnswer::Granted(60)
    );
    assert_eq!(
        alive.reserve(ADA, "alive-1", 60, 60).await.unwrap(),
        AccountAnswer::Granted(60)
    );
    assert_eq!(
        balance(&prefix, ADA).await,
        (100, 60, 1),
        "the dead hold was given back"
    );
    // Its request settles after all: the cost is charged, nothing is freed twice.
    assert!(dead.settle(ADA, "dead-1", 30).await.unwrap());
    assert_eq!(balance(&prefix, ADA).await, (70, 60, 1));

    // A hold its replica renews outlives its first lease.
    assert_eq!(
        dead.reserve(ADA, "dead-2", 10, 10).await.unwrap(),
        AccountAnswer::Granted(10)
    );
    let renewal = Owed {
        keep_holds: vec![("dead-2".into(), 10)],
        ..Owed::default()
    };
    assert!(alive.reconcile(ADA, &renewal).await.unwrap());
    assert_eq!(
        alive.reserve(ADA, "alive-2", 10, 10).await.unwrap(),
        AccountAnswer::Wait(70)
    );
    assert_eq!(balance(&prefix, ADA).await, (70, 70, 2));
}

#[actix_rt::test]
async fn scripts_on_a_balance_redis_does_not_have_create_nothing() {
    let prefix = prefix();
    let store = QuotaStore::open(REDIS, &prefix).unwrap();
    assert!(!store.settle(ADA, "a", 40).await.unwrap());
    assert_eq!(store.change(ADA, BalanceChange::Add(5)).await.unwrap(), None);
    assert!(!store.reconcile(ADA, &Owed::default()).await.unwrap());
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let found: usize = redis::cmd("EXISTS")
        .arg(&account_keys(&prefix, ADA))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(found, 0);
}

#[actix_rt::test]
async fn admin_changes_answer_the_balance_before_them() {
    let prefix = prefix();
    let store = QuotaStore::open(REDIS, &prefix).unwrap();
    let token = QuotaTarget::Token(3);
    // What an unlimited token had left is kept: a limit set again is told to
    // the database as a difference from it.
    store.load(token, unlimited(30)).await.unwrap();
    let before = store.change(token, BalanceChange::SetLimited(50)).await.unwrap();
    assert_eq!(before, Some(unlimited(30)));
    let before = store.change(token, BalanceChange::Add(25)).await.unwrap();
    assert_eq!(before, Some(left(50)));
    assert_eq!(
        store.reserve(token, "a", 76, 76).await.unwrap(),
        AccountAnswer::Short(75)
    );
    store.change(token, BalanceChange::Unlimited).await.unwrap();
    assert_eq!(
        store.reserve(token, "a", 76, 76).await.unwrap(),
        AccountAnswer::Unlimited
    );
}

#[actix_rt::test]
async fn a_replica_back_from_an_outage_pays_what_it_owes_once_per_hold() {
    let prefix = prefix();
    let store = QuotaStore::open(REDIS, &prefix).unwrap();
    store.load(ADA, left(100)).await.unwrap();
    assert_eq!(
        store.reserve(ADA, "settled-unheard", 30, 30).await.unwrap(),
        AccountAnswer::Granted(30)
    );
    let owed = Owed {
        spent: 20,
        drop_holds: vec!["settled-unheard".into()],
        keep_holds: vec![("still-running".into(), 15)],
    };
    assert!(store.reconcile(ADA, &owed).await.unwrap());
    assert_eq!(balance(&prefix, ADA).await, (80, 15, 1));
    // A hold Redis counts already is not counted twice.
    let again = Owed {
        keep_holds: vec![("still-running".into(), 15)],
        ..Owed::default()
    };
    assert!(store.reconcile(ADA, &again).await.unwrap());
    assert_eq!(balance(&prefix, ADA).await, (80, 15, 1));
}

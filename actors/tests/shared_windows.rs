//! The key-window scripts against the real Redis on 127.0.0.1:6379, each test
//! under a prefix of its own, with two replicas' handles: the window holds
//! for both together, room freed early is given back, and when room frees the
//! replica whose request waited longer goes first.

use std::time::Duration;

use sluice_actors::budget::{End, Limits};
use sluice_actors::shared::{Answer, Ask, Budget, SharedWindows};

const REDIS: &str = "redis://127.0.0.1:6379/0";

/// A short window: these tests wait for its edge.
const SPAN: Duration = Duration::from_millis(400);

fn replicas() -> (SharedWindows, SharedWindows) {
    let prefix = format!("sluice-test-{}", uuid::Uuid::new_v4().simple());
    (
        SharedWindows::new(REDIS, &prefix, "replica-a", SPAN).unwrap(),
        SharedWindows::new(REDIS, &prefix, "replica-b", SPAN).unwrap(),
    )
}

async fn ask(windows: &SharedWindows, permit: u64, rpm: u32, waited_ms: u64) -> Answer {
    windows
        .acquire(Ask {
            budget: Budget::Key(1),
            permit,
            tokens: 0,
            waited: Some(Duration::from_millis(waited_ms)),
            limits: Limits {
                rpm,
                ..Limits::default()
            },
            model: None,
        })
        .await
        .expect("Redis answers")
}

#[tokio::test]
async fn two_replicas_together_fill_one_window() {
    let (a, b) = replicas();
    assert!(ask(&a, 1, 2, 0).await.admitted);
    assert!(ask(&b, 1, 2, 0).await.admitted);
    let refused = ask(&a, 2, 2, 0).await;
    assert!(!refused.admitted);
    assert_eq!(refused.requests, 2, "both replicas' requests are in the window");
    assert!(refused.key_wait > Duration::ZERO && refused.key_wait <= SPAN);

    // A request never sent leaves the window at once.
    b.finish(Budget::Key(1), None, 1, End::Unsent).await.unwrap();
    assert!(ask(&a, 3, 2, 0).await.admitted);
}

#[tokio::test]
async fn when_room_frees_the_request_that_waited_longer_goes_first() {
    let (a, b) = replicas();
    assert!(ask(&a, 1, 1, 0).await.admitted);
    // B's request has waited 300 ms already; A's next one is new. Both are refused.
    let b_refused = ask(&b, 1, 1, 300).await;
    assert!(!b_refused.admitted);
    assert!(!ask(&a, 2, 1, 0).await.admitted);

    tokio::time::sleep(b_refused.key_wait + Duration::from_millis(20)).await;
    // Room again: A asks first, but yields to B's older, live claim.
    let a_yields = ask(&a, 2, 1, 0).await;
    assert!(!a_yields.admitted, "the later request yields");
    assert!(
        a_yields.key_wait <= Duration::from_millis(300),
        "only until B is back: {a_yields:?}"
    );
    assert!(
        ask(&b, 1, 1, 300 + b_refused.key_wait.as_millis() as u64)
            .await
            .admitted
    );
}

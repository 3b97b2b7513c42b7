//! What the dashboard draws: totals per day cut at the viewer's midnight, time
//! series per hour or day split by model, user, channel or token, 429s counted
//! apart from other errors, and labels for ids.

use sea_orm::ActiveValue::Set;
use serde_json::{json, Value};
use sluice_entity::usage_logs;
use sluice_tests::helpers::{json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::usage::{insert, request};

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app.api_get(path, token).await;
    assert_eq!(res.status(), 200, "GET {path}");
    json_body(res).await
}

async fn me(app: &TestApp, token: &str) -> i64 {
    get(app, token, "/api/users/me").await["id"].as_i64().unwrap()
}

#[actix_rt::test]
async fn days_are_cut_at_the_viewers_midnight_not_utcs() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;
    let me = me(&app, &root).await;
    insert(
        &app,
        vec![
            // 15:30 UTC is 23:30 on the 24th in Shanghai (+08:00).
            request("evening", me, "2026-11-24T15:30:00Z"),
            // 16:00 UTC is midnight in Shanghai: the 25th there, still the 24th in UTC.
            request("midnight", me, "2026-11-24T16:00:00Z"),
            request("morning", me, "2026-11-25T01:00:00Z"),
        ],
    )
    .await;

    let utc = get(&app, &root, "/api/logs/stats").await;
    assert_eq!(utc["tz"], "UTC");
    let days = |v: &Value| -> Vec<(String, i64)> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap().to_string(),
                    r["requests"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(days(&utc), [("2026-11-24".into(), 2), ("2026-11-25".into(), 1)]);

    let shanghai = get(&app, &root, "/api/logs/stats?tz=Asia/Shanghai").await;
    assert_eq!(shanghai["tz"], "Asia/Shanghai");
    assert_eq!(
        days(&shanghai),
        [("2026-11-24".into(), 1), ("2026-11-25".into(), 2)]
    );
    assert_eq!(shanghai["total"]["requests"], 3);

    let series = get(
        &app,
        &root,
        "/api/logs/series?interval=day&tz=Asia/Shanghai&from=2026-11-20T00:00:00Z&to=2026-11-27T00:00:00Z",
    )
    .await;
    let starts: Vec<(&str, i64)> = series["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["start"].as_str().unwrap(), r["requests"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        starts,
        [("2026-11-24T00:00:00+08:00", 1), ("2026-11-25T00:00:00+08:00", 2)]
    );
}

#[actix_rt::test]
async fn hourly_series_split_by_model_count_429s_apart() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;
    let me = me(&app, &root).await;
    insert(
        &app,
        vec![
            request("a", me, "2026-11-25T10:05:00Z"),
            usage_logs::ActiveModel {
                model: Set("qwen".into()),
                ..request("b", me, "2026-11-25T10:40:00Z")
            },
            usage_logs::ActiveModel {
                status: Set(429),
                quota: Set(0),
                ..request("c", me, "2026-11-25T10:59:59Z")
            },
            usage_logs::ActiveModel {
                status: Set(502),
                ..request("d", me, "2026-11-25T11:00:00Z")
            },
        ],
    )
    .await;
    let series = get(
        &app,
        &root,
        "/api/logs/series?interval=hour&by=model&from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z",
    )
    .await;
    assert_eq!(series["interval"], "hour");
    assert_eq!(series["by"], "model");
    let rows: Vec<Value> = series["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!([
                r["start"],
                r["key"],
                r["requests"],
                r["errors"],
                r["rate_limited"],
                r["quota"]
            ])
        })
        .collect();
    assert_eq!(
        rows,
        [
            json!(["2026-11-25T10:00:00Z", "llama", 2, 1, 1, 15]),
            json!(["2026-11-25T10:00:00Z", "qwen", 1, 0, 0, 15]),
            json!(["2026-11-25T11:00:00Z", "llama", 1, 1, 0, 15]),
        ]
    );
}

#[actix_rt::test]
async fn admins_see_totals_per_user_channel_and_token_by_name() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;
    let (alice, alice_session) = app.user(&root, "alice", "user", 1000).await;
    let (bob, _) = app.user(&root, "bob", "user", 1000).await;
    let token = json_body(
        app.api_post("/api/tokens", &alice_session, json!({"name": "laptop"}))
            .await,
    )
    .await;
    let token_id = token["token"]["id"].as_i64().unwrap();
    insert(
        &app,
        vec![
            usage_logs::ActiveModel {
                token_id: Set(Some(token_id)),
                ..request("a1", alice, "2026-11-25T10:00:00Z")
            },
            usage_logs::ActiveModel {
                token_id: Set(Some(token_id)),
                ..request("a2", alice, "2026-11-25T11:00:00Z")
            },
            usage_logs::ActiveModel {
                channel_id: Set(Some(424242)),
                token_id: Set(None),
                ..request("b1", bob, "2026-11-25T12:00:00Z")
            },
        ],
    )
    .await;
    let pairs = |v: &Value| -> Vec<(String, String, i64)> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap().to_string(),
                    r["label"].as_str().unwrap().to_string(),
                    r["requests"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let by_user = get(&app, &root, "/api/logs/stats?group_by=user").await;
    assert_eq!(
        pairs(&by_user),
        [
            (alice.to_string(), "alice".into(), 2),
            (bob.to_string(), "bob".into(), 1)
        ]
    );
    // Channel 1 is gone (never existed here), so is 424242: both show by id.
    let by_channel = get(&app, &root, "/api/logs/stats?group_by=channel").await;
    assert_eq!(
        pairs(&by_channel),
        [
            ("1".into(), "#1".into(), 2),
            ("424242".into(), "#424242".into(), 1)
        ]
    );
    let by_token = get(&app, &alice_session, "/api/logs/stats?group_by=token").await;
    assert_eq!(pairs(&by_token), [(token_id.to_string(), "laptop".into(), 2)]);
}

#[actix_rt::test]
async fn bad_zones_and_ranges_are_refused_naming_the_field() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;
    for (path, param) in [
        ("/api/logs/stats?tz=Mars/Olympus", "tz"),
        ("/api/logs/series?tz=UTC%2B8", "tz"),
        (
            "/api/logs/series?interval=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "from",
        ),
    ] {
        // Well-formed, but no such zone / too long a series: 422.
        let res = app.api_get(path, &root).await;
        assert_eq!(res.status(), 422, "{path}");
        let body = json_body(res).await;
        assert_eq!(body["error"]["param"], param, "{path}: {body}");
        assert_eq!(body["error"]["code"], "unprocessable");
    }
}

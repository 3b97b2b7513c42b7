//! The usage log over `/api/logs`: filters, cursor paging, per-day and per-model
//! totals, CSV export, and who may see whose requests.
//!
//! Most rows are written straight into the database, shaped as the ledger writes
//! them, so a test can place requests on chosen days, users, tokens and statuses.

use chrono::DateTime;
use sea_orm::ActiveValue::Set;
use serde_json::Value;
use sluice_entity::usage_logs;
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{MockConfig, MockProvider};
use sluice_tests::usage::{insert, request};

async fn app() -> TestApp {
    spawn_app(AppConfig::new(vec![])).await
}

async fn my_id(app: &TestApp, token: &str) -> i64 {
    json_body(app.api_get("/api/users/me", token).await).await["id"]
        .as_i64()
        .unwrap()
}

/// `GET /api/logs{query}` as `token`; the page (panics unless 200).
async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app.api_get(&format!("/api/logs{query}"), token).await;
    assert_eq!(res.status(), 200, "GET /api/logs{query}");
    json_body(res).await
}

/// The request ids (the test labels) on the first page of `GET /api/logs{query}`.
async fn labels(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    page(app, token, query).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["request_id"].as_str().unwrap().to_string())
        .collect()
}

/// `GET /api/logs/stats{query}` as `token` (panics unless 200).
async fn stats(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app.api_get(&format!("/api/logs/stats{query}"), token).await;
    assert_eq!(res.status(), 200, "GET /api/logs/stats{query}");
    json_body(res).await
}

#[actix_rt::test]
async fn a_relayed_request_shows_up_in_the_log_of_the_tokens_owner() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["nvapi-1"],
        &["llama"],
        0,
    )]))
    .await;
    let root = app.root_token().await;

    let res = app.chat("llama", "hello").await;
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    app.usage_logs(1).await;

    let items = page(&app, &root, "").await["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1);
    let log = &items[0];
    assert_eq!(log["request_id"], request_id.as_str());
    assert_eq!(log["user_id"], my_id(&app, &root).await);
    assert_eq!(log["token_name"], "test");
    assert_eq!(log["model"], "llama");
    assert_eq!(log["status"], 200);
    assert!(log["prompt_tokens"].as_i64().unwrap() > 0);
    let at = log["created_at"].as_str().unwrap();
    assert!(
        DateTime::parse_from_rfc3339(at).is_ok(),
        "created_at is RFC 3339: {at}"
    );
    assert_eq!(stats(&app, &root, "").await["total"]["requests"], 1);
}

#[actix_rt::test]
async fn each_filter_narrows_the_list() {
    let app = app().await;
    let root = app.root_token().await;
    let (bob, _) = app.user(&root, "bob", "user", 0).await;
    let (carol, _) = app.user(&root, "carol", "user", 0).await;
    insert(
        &app,
        vec![
            request("a", bob, "2026-11-24T10:00:00Z"),
            usage_logs::ActiveModel {
                model: Set("qwen".into()),
                ..request("b", bob, "2026-11-25T10:00:00Z")
            },
            usage_logs::ActiveModel {
                token_id: Set(Some(2)),
                status: Set(429),
                ..request("c", bob, "2026-11-25T11:00:00Z")
            },
            request("d", carol, "2026-11-26T10:00:00Z"),
        ],
    )
    .await;

    assert_eq!(
        labels(&app, &root, "").await,
        ["d", "c", "b", "a"],
        "newest first"
    );
    assert_eq!(labels(&app, &root, "?model=qwen").await, ["b"]);
    assert_eq!(labels(&app, &root, "?token_id=2").await, ["c"]);
    assert_eq!(labels(&app, &root, "?status=200").await, ["d", "b", "a"]);
    assert_eq!(labels(&app, &root, "?status=429").await, ["c"]);
    assert_eq!(labels(&app, &root, &format!("?user_id={carol}")).await, ["d"]);
    assert_eq!(
        labels(&app, &root, "?from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z").await,
        ["c", "b"],
        "from is inclusive, to exclusive"
    );
    assert_eq!(
        labels(&app, &root, "?from=2026-11-25T11:00:00Z").await,
        ["d", "c"]
    );
    assert_eq!(
        labels(&app, &root, "?to=2026-11-25T11:00:00%2B01:00").await,
        ["a"],
        "11:00+01:00 is 10:00Z, when b was made, and to is exclusive"
    );
    assert_eq!(
        labels(&app, &root, &format!("?user_id={bob}&model=llama&status=200")).await,
        ["a"],
        "filters combine"
    );
    assert!(labels(&app, &root, "?model=gpt-5").await.is_empty());
}

#[actix_rt::test]
async fn cursor_paging_walks_every_row_exactly_once_newest_first() {
    let app = app().await;
    let root = app.root_token().await;
    let me = my_id(&app, &root).await;
    let rows = (0..7)
        .map(|i| request(&format!("r{i}"), me, &format!("2026-11-25T10:0{i}:00Z")))
        .collect();
    insert(&app, rows).await;

    let mut seen = Vec::new();
    let mut query = "?limit=3".to_string();
    let mut pages = 0;
    loop {
        let page = page(&app, &root, &query).await;
        pages += 1;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["request_id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_i64() {
            Some(cursor) => query = format!("?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
}

#[actix_rt::test]
async fn a_user_sees_only_their_own_requests_and_an_admin_can_pick_a_user() {
    let app = app().await;
    let root = app.root_token().await;
    let (bob, bob_token) = app.user(&root, "bob", "user", 0).await;
    let (carol, _) = app.user(&root, "carol", "user", 0).await;
    let (_, admin) = app.user(&root, "ada", "admin", 0).await;
    insert(
        &app,
        vec![
            request("bob-1", bob, "2026-11-25T10:00:00Z"),
            request("carol-1", carol, "2026-11-25T11:00:00Z"),
            request("bob-2", bob, "2026-11-25T12:00:00Z"),
        ],
    )
    .await;

    assert_eq!(labels(&app, &bob_token, "").await, ["bob-2", "bob-1"]);
    assert_eq!(
        labels(&app, &bob_token, &format!("?user_id={bob}")).await,
        ["bob-2", "bob-1"]
    );
    assert_eq!(stats(&app, &bob_token, "").await["total"]["requests"], 2);
    let csv = app
        .api_get("/api/logs/export", &bob_token)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 3, "header and bob's two rows: {csv}");
    assert!(!csv.contains("carol-1"));

    for path in ["/api/logs", "/api/logs/stats", "/api/logs/export"] {
        let res = app.api_get(&format!("{path}?user_id={carol}"), &bob_token).await;
        assert_eq!(res.status(), 403, "{path} with someone else's user_id");
        assert_eq!(json_body(res).await["error"]["code"], "forbidden");
    }

    assert_eq!(labels(&app, &admin, "").await, ["bob-2", "carol-1", "bob-1"]);
    assert_eq!(
        labels(&app, &admin, &format!("?user_id={carol}")).await,
        ["carol-1"]
    );
    assert_eq!(
        stats(&app, &admin, &format!("?user_id={bob}")).await["total"]["requests"],
        2
    );
}

#[actix_rt::test]
async fn stats_per_utc_day_add_up_requests_tokens_quota_and_errors() {
    let app = app().await;
    let root = app.root_token().await;
    let me = my_id(&app, &root).await;
    insert(
        &app,
        vec![
            request("late", me, "2026-11-24T23:59:59.500Z"),
            request("midnight", me, "2026-11-25T00:00:00Z"),
            usage_logs::ActiveModel {
                model: Set("qwen".into()),
                status: Set(429),
                completion_tokens: Set(0),
                quota: Set(0),
                ..request("throttled", me, "2026-11-25T12:00:00Z")
            },
            usage_logs::ActiveModel {
                prompt_tokens: Set(100),
                completion_tokens: Set(50),
                quota: Set(300),
                // 01:30 at +02:00 is still the 25th in UTC.
                ..request("offset", me, "2026-11-26T01:30:00+02:00")
            },
            request("next-day", me, "2026-11-26T08:00:00Z"),
        ],
    )
    .await;

    let by_day = stats(&app, &root, "").await;
    assert_eq!(by_day["group_by"], "day", "day is the default");
    let rows = by_day["rows"].as_array().unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["2026-11-24", "2026-11-25", "2026-11-26"]);
    let day = &rows[1];
    assert_eq!(day["requests"], 3);
    assert_eq!(day["prompt_tokens"], 10 + 10 + 100);
    assert_eq!(day["completion_tokens"], 5 + 50);
    assert_eq!(day["quota"], 15 + 300);
    assert_eq!(day["errors"], 1);
    let total = &by_day["total"];
    assert_eq!(total["requests"], 5);
    assert_eq!(total["prompt_tokens"], 140);
    assert_eq!(total["completion_tokens"], 5 * 3 + 50);
    assert_eq!(total["quota"], 15 * 3 + 300);
    assert_eq!(total["errors"], 1);
    assert!(total.get("key").is_none());

    let one_day = stats(
        &app,
        &root,
        "?group_by=day&from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z",
    )
    .await;
    assert_eq!(one_day["rows"].as_array().unwrap().len(), 1);
    assert_eq!(one_day["total"]["requests"], 3);
}

#[actix_rt::test]
async fn stats_per_model_add_up_and_follow_the_filters() {
    let app = app().await;
    let root = app.root_token().await;
    let me = my_id(&app, &root).await;
    insert(
        &app,
        vec![
            request("l1", me, "2026-11-25T10:00:00Z"),
            request("l2", me, "2026-11-26T10:00:00Z"),
            usage_logs::ActiveModel {
                status: Set(502),
                error: Set(Some("every key failed".into())),
                ..request("l3", me, "2026-11-26T11:00:00Z")
            },
            usage_logs::ActiveModel {
                model: Set("qwen".into()),
                prompt_tokens: Set(7),
                completion_tokens: Set(3),
                quota: Set(20),
                ..request("q1", me, "2026-11-26T12:00:00Z")
            },
        ],
    )
    .await;

    let by_model = stats(&app, &root, "?group_by=model").await;
    assert_eq!(by_model["group_by"], "model");
    let rows = by_model["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["key"], "llama");
    assert_eq!(rows[0]["requests"], 3);
    assert_eq!(rows[0]["prompt_tokens"], 30);
    assert_eq!(rows[0]["completion_tokens"], 15);
    assert_eq!(rows[0]["quota"], 45);
    assert_eq!(rows[0]["errors"], 1);
    assert_eq!(rows[1]["key"], "qwen");
    assert_eq!(rows[1]["requests"], 1);
    assert_eq!(rows[1]["quota"], 20);
    assert_eq!(rows[1]["errors"], 0);
    assert_eq!(by_model["total"]["requests"], 4);
    assert_eq!(by_model["total"]["quota"], 65);

    let since = stats(
        &app,
        &root,
        "?group_by=model&from=2026-11-26T00:00:00Z&status=200",
    )
    .await;
    assert_eq!(since["rows"][0]["requests"], 1, "only l2 of llama");
    assert_eq!(since["total"]["requests"], 2);
    assert_eq!(since["total"]["errors"], 0);

    let none = stats(&app, &root, "?group_by=model&model=gpt-5").await;
    assert_eq!(none["rows"].as_array().unwrap().len(), 0);
    assert_eq!(none["total"]["requests"], 0);
}

#[actix_rt::test]
async fn the_csv_export_is_an_attachment_with_a_header_and_the_matching_rows() {
    let app = app().await;
    let root = app.root_token().await;
    let me = my_id(&app, &root).await;
    insert(
        &app,
        vec![
            request("a", me, "2026-11-25T10:00:00Z"),
            usage_logs::ActiveModel {
                model: Set("qwen".into()),
                ..request("b", me, "2026-11-25T11:00:00Z")
            },
            usage_logs::ActiveModel {
                token_name: Set("=HYPERLINK(1)".into()),
                status: Set(500),
                error: Set(Some("upstream said: no, really".into())),
                ..request("c", me, "2026-11-25T12:00:00Z")
            },
        ],
    )
    .await;

    let res = app.api_get("/api/logs/export?model=llama", &root).await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"sluice-usage.csv\""
    );
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,request_id,created_at,user_id,token_id,token_name,model,upstream_model,channel_id,key_id,\
         prompt_tokens,completion_tokens,usage_estimated,quota,latency_ms,first_token_ms,is_stream,\
         status,attempts,error,protocol,fallback"
    );
    assert_eq!(lines.len(), 3, "header, c and a: {csv}");
    let newest: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(newest[1], "c");
    assert_eq!(newest[2], "2026-11-25T12:00:00Z");
    assert_eq!(newest[3], me.to_string());
    assert_eq!(newest[5], "'=HYPERLINK(1)", "a spreadsheet must not run it");
    assert_eq!(newest[6], "llama");
    assert_eq!(newest[17], "500");
    assert!(
        lines[1].ends_with(",\"upstream said: no, really\",openai,"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2].split(',').nth(1), Some("a"));

    let empty = app
        .api_get("/api/logs/export?model=gpt-5", &root)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(empty.lines().count(), 1, "just the header");
}

#[actix_rt::test]
async fn a_large_export_has_every_row_once_across_chunks() {
    let app = app().await;
    let root = app.root_token().await;
    let me = my_id(&app, &root).await;
    let n = 2345;
    let rows = (0..n)
        .map(|i| request(&format!("r{i}"), me, "2026-11-25T10:00:00Z"))
        .collect();
    insert(&app, rows).await;

    let csv = app.api_get("/api/logs/export", &root).await.text().await.unwrap();
    let exported: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    let expected: Vec<String> = (0..n).rev().map(|i| format!("r{i}")).collect();
    assert_eq!(exported, expected, "every row once, newest first");
}

#[actix_rt::test]
async fn bad_input_gets_400_saying_what_is_wrong() {
    let app = app().await;
    let root = app.root_token().await;
    let cases = [
        ("/api/logs?from=yesterday", "from must be an RFC 3339 timestamp"),
        (
            "/api/logs/stats?to=2026-13-01T00:00:00Z",
            "to must be an RFC 3339 timestamp",
        ),
        ("/api/logs?from=2026-11-25T00:00:00+01:00", "%2B"),
        ("/api/logs/stats?group_by=week", "week"),
        ("/api/logs?modle=llama", "modle"),
        ("/api/logs/export?limit=10", "limit"),
        ("/api/logs/stats?cursor=10", "cursor"),
        ("/api/logs?group_by=day", "group_by"),
        ("/api/logs?limit=0", "limit must be at least 1"),
        ("/api/logs?status=42", "status must be an HTTP status"),
        ("/api/logs?status=ok", "invalid query string"),
        ("/api/logs?model=", "model must not be empty"),
        // A byte-order mark alone is blank too, as the document's pattern says.
        ("/api/logs?model=%EF%BB%BF", "model must not be empty"),
        ("/api/logs/stats?model=llama%00", "control characters"),
    ];
    for (path, says) in cases {
        let res = app.api_get(path, &root).await;
        assert_eq!(res.status(), 400, "{path}");
        let body = json_body(res).await;
        assert_eq!(body["error"]["code"], "invalid_request", "{path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{path}: '{message}' should mention '{says}'"
        );
    }
    // Each value right on its own, the range empty: the schema cannot say that.
    let res = app
        .api_get(
            "/api/logs/export?from=2026-11-26T00:00:00Z&to=2026-11-25T00:00:00Z",
            &root,
        )
        .await;
    assert_eq!(res.status(), 422);
    let body = json_body(res).await;
    assert_eq!(body["error"]["param"], "from", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("is after to"),
        "{body}"
    );
    let res = app.api(reqwest::Method::GET, "/api/logs", None, None).await;
    assert_eq!(res.status(), 401, "the log needs a session");
}

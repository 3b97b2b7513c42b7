//! The audit log: every change an admin (or a user, to their own tokens) makes
//! shows in `/api/audit` with who made it, from which address, and what it
//! changed, with no secret in any entry; filters, paging and the CSV export
//! find them; a plain user cannot read it; a refused write records nothing;
//! changing an account's mail address tells the old address.

use std::time::Duration;

use reqwest::{Method, Response};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};
use sluice_entity::audit_log;
use sluice_tests::helpers::{json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::smtp::SmtpServer;

/// Where the office's requests come from, as the trusted proxy says.
const OFFICE: &str = "203.0.113.7";
const UPSTREAM_KEY: &str = "sk-upstream-secret-AAAA1111";
const SECOND_KEY: &str = "sk-upstream-secret-BBBB2222";
const HEADER_SECRET: &str = "header-secret-value-42";

async fn app_with_mail(smtp: &SmtpServer) -> TestApp {
    let mut config = AppConfig::new(vec![]);
    config.smtp = Some(smtp.settings());
    // Requests say which address they come from with X-Forwarded-For.
    config.relay.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    spawn_app(config).await
}

/// A call from the office, through the proxy, with a request id.
async fn from_office(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Response {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token)
        .header("x-forwarded-for", OFFICE)
        .header("x-request-id", "office-42");
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("request sent")
}

async fn ok(res: Response, what: &str) -> Value {
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "{what}: {status} {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// The entries `query` selects, newest first (one page of up to 500).
async fn entries(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let res = app.api_get(&format!("/api/audit?limit=500&{query}"), token).await;
    assert_eq!(res.status(), 200, "GET /api/audit?{query}");
    json_body(res).await["items"].as_array().unwrap().clone()
}

/// The one entry with this action.
fn only<'a>(entries: &'a [Value], action: &str) -> &'a Value {
    let found: Vec<&Value> = entries.iter().filter(|e| e["action"] == action).collect();
    assert_eq!(found.len(), 1, "one {action} entry in {entries:#?}");
    found[0]
}

async fn stored_entries(app: &TestApp) -> u64 {
    audit_log::Entity::find().count(&app.db).await.unwrap()
}

#[actix_rt::test]
async fn every_admin_change_shows_who_made_it_from_where_and_what_it_changed_with_no_secret() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    let (ada_id, ada) = app.user(&root, "ada", "admin", 0).await;

    let bob = ok(
        from_office(
            &app,
            Method::POST,
            "/api/users",
            &ada,
            Some(json!({"username": "bob", "password": "bob-password-123", "email": "bob@old.example"})),
        )
        .await,
        "create bob",
    )
    .await;
    let bob_id = bob["id"].as_i64().unwrap();
    let bob_path = format!("/api/users/{bob_id}");
    ok(
        from_office(
            &app,
            Method::PATCH,
            &bob_path,
            &ada,
            Some(json!({"quota": 500, "group": "vip"})),
        )
        .await,
        "quota and group",
    )
    .await;
    ok(
        from_office(
            &app,
            Method::POST,
            &format!("{bob_path}/topup"),
            &ada,
            Some(json!({"amount": 250})),
        )
        .await,
        "top up",
    )
    .await;
    ok(
        from_office(
            &app,
            Method::PATCH,
            &bob_path,
            &ada,
            Some(json!({"email": "bob@new.example"})),
        )
        .await,
        "email",
    )
    .await;
    // Only root changes roles; root calls from the machine itself.
    ok(
        app.api_patch(&bob_path, &root, json!({"role": "admin"})).await,
        "role",
    )
    .await;

    let created = ok(
        from_office(
            &app,
            Method::POST,
            "/api/channels",
            &ada,
            Some(json!({
                "name": "nim", "base_url": "http://127.0.0.1:9/v1", "models": ["llama"],
                "headers": {"X-Api-Secret": HEADER_SECRET}, "keys": UPSTREAM_KEY,
            })),
        )
        .await,
        "channel",
    )
    .await;
    let channel_id = created["channel"]["id"].as_i64().unwrap();
    ok(
        from_office(
            &app,
            Method::PATCH,
            &format!("/api/channels/{channel_id}"),
            &ada,
            Some(json!({"rpm": 40})),
        )
        .await,
        "channel rpm",
    )
    .await;
    let added = ok(
        from_office(
            &app,
            Method::POST,
            &format!("/api/channels/{channel_id}/keys"),
            &ada,
            Some(json!({"keys": SECOND_KEY})),
        )
        .await,
        "second key",
    )
    .await;
    let key_id = added["added"][0]["id"].as_i64().unwrap();
    ok(
        from_office(
            &app,
            Method::PATCH,
            &format!("/api/keys/{key_id}"),
            &ada,
            Some(json!({"rpm": 10})),
        )
        .await,
        "key rpm",
    )
    .await;
    ok(
        from_office(&app, Method::DELETE, &format!("/api/keys/{key_id}"), &ada, None).await,
        "delete key",
    )
    .await;
    ok(
        from_office(
            &app,
            Method::PUT,
            "/api/prices/llama",
            &ada,
            Some(json!({"input": 100, "output": 200})),
        )
        .await,
        "price",
    )
    .await;
    let token = ok(
        from_office(
            &app,
            Method::POST,
            "/api/tokens",
            &ada,
            Some(json!({"name": "ci"})),
        )
        .await,
        "token",
    )
    .await;
    let token_key = token["key"].as_str().unwrap().to_string();
    let token_id = token["token"]["id"].as_i64().unwrap();
    ok(
        from_office(
            &app,
            Method::PATCH,
            &format!("/api/tokens/{token_id}"),
            &ada,
            Some(json!({"name": "ci-2"})),
        )
        .await,
        "rename token",
    )
    .await;

    // Tests change nothing stored, but say what an admin did with a key.
    let first_key = created["keys"]["added"][0]["id"].as_i64().unwrap();
    ok(
        from_office(
            &app,
            Method::POST,
            &format!("/api/keys/{first_key}/test"),
            &ada,
            Some(json!({})),
        )
        .await,
        "test a key",
    )
    .await;
    ok(
        from_office(
            &app,
            Method::POST,
            &format!("/api/channels/{channel_id}/test"),
            &ada,
            Some(json!({})),
        )
        .await,
        "test the channel",
    )
    .await;

    let log = entries(&app, &ada, "").await;
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "channel.test",
            "key.test",
            "token.update",
            "token.create",
            "price.set",
            "key.delete",
            "key.update",
            "key.create",
            "channel.update",
            "channel.create",
            "user.role",
            "user.email",
            "user.top_up",
            "user.update",
            "user.create",
            "admin.create",
        ],
        "newest first"
    );

    // Who, from where, with which request id.
    for entry in log.iter().filter(|e| e["actor_username"] == "ada") {
        assert_eq!(entry["actor_id"], ada_id);
        assert_eq!(entry["actor_role"], "admin");
        assert_eq!(entry["address"], OFFICE, "{entry}");
        assert_eq!(entry["request_id"], "office-42");
    }
    let role = only(&log, "user.role");
    assert_eq!(
        (&role["actor_username"], &role["actor_role"], &role["address"]),
        (&json!("root"), &json!("root"), &json!("127.0.0.1"))
    );
    assert_eq!(role["request_id"], Value::Null);
    assert_eq!(
        (&role["before"], &role["after"]),
        (&json!({"role": "user"}), &json!({"role": "admin"}))
    );
    let admin = only(&log, "admin.create");
    assert_eq!(
        (&admin["actor_username"], &admin["target_label"]),
        (&json!("root"), &json!("ada"))
    );
    assert_eq!(admin["after"]["role"], "admin");

    // What changed: the fields that did, as they were and as they are.
    let create = only(&log, "user.create");
    assert_eq!(
        (&create["target_type"], &create["target_id"]),
        (&json!("user"), &json!(bob_id.to_string()))
    );
    assert_eq!(create["target_label"], "bob");
    assert_eq!(create["before"], Value::Null);
    assert_eq!(create["after"]["email"], "bob@old.example");
    let update = only(&log, "user.update");
    assert_eq!(update["before"], json!({"quota": 0, "group": "default"}));
    assert_eq!(update["after"], json!({"quota": 500, "group": "vip"}));
    let top_up = only(&log, "user.top_up");
    assert_eq!(
        (&top_up["before"], &top_up["after"]),
        (&json!({"quota": 500}), &json!({"quota": 750}))
    );
    let email = only(&log, "user.email");
    assert_eq!(
        (&email["before"], &email["after"]),
        (
            &json!({"email": "bob@old.example"}),
            &json!({"email": "bob@new.example"})
        )
    );
    let channel = only(&log, "channel.create");
    assert_eq!(channel["target_label"], "nim");
    assert_eq!(channel["after"]["channel"]["models"], json!(["llama"]));
    assert_eq!(channel["after"]["keys"]["added"].as_array().unwrap().len(), 1);
    assert_ne!(
        channel["after"]["channel"]["headers"]["X-Api-Secret"],
        Value::Null
    );
    let rpm = only(&log, "channel.update");
    assert_eq!(
        (&rpm["before"], &rpm["after"]),
        (&json!({"rpm": 0}), &json!({"rpm": 40}))
    );
    let key = only(&log, "key.update");
    assert_eq!(
        (&key["target_type"], &key["target_id"]),
        (&json!("key"), &json!(key_id.to_string()))
    );
    assert_eq!(
        (&key["before"], &key["after"]),
        (&json!({"rpm": null}), &json!({"rpm": 10}))
    );
    assert_eq!(only(&log, "key.delete")["before"]["id"], key_id);
    let price = only(&log, "price.set");
    assert_eq!(
        (&price["target_type"], &price["target_id"]),
        (&json!("price"), &json!("llama"))
    );
    assert_eq!(
        (&price["before"], &price["after"]),
        (&Value::Null, &json!({"input": 100, "output": 200}))
    );
    let key_test = only(&log, "key.test");
    assert_eq!(
        (&key_test["target_id"], &key_test["after"]["ok"]),
        (&json!(first_key.to_string()), &json!(false))
    );
    let channel_test = only(&log, "channel.test");
    assert_eq!(
        channel_test["after"]["results"].as_array().unwrap().len(),
        1,
        "{channel_test}"
    );
    assert_eq!(only(&log, "token.create")["after"]["name"], "ci");
    let rename = only(&log, "token.update");
    assert_eq!(
        (&rename["before"], &rename["after"]),
        (&json!({"name": "ci"}), &json!({"name": "ci-2"}))
    );

    // No secret anywhere: not in the API's answer, not in the rows, not in the CSV.
    let raw = app
        .api_get("/api/audit?limit=500", &ada)
        .await
        .text()
        .await
        .unwrap();
    let rows = audit_log::Entity::find().all(&app.db).await.unwrap();
    let stored: String = rows
        .iter()
        .map(|r| format!("{:?}{:?}", r.before_json, r.after_json))
        .collect();
    let csv = app.api_get("/api/audit/export", &ada).await.text().await.unwrap();
    for (name, text) in [("API", &raw), ("database", &stored), ("CSV", &csv)] {
        for secret in [
            UPSTREAM_KEY,
            SECOND_KEY,
            HEADER_SECRET,
            token_key.as_str(),
            "$argon2",
            "password_hash",
        ] {
            assert!(!text.contains(secret), "{name} text holds '{secret}'");
        }
    }
    assert!(
        raw.contains("sk-ups…1111"),
        "keys show as the API masks them: {raw}"
    );

    // The old address hears of the change: by whom, and that it no longer gets the mail.
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "one mail: {mails:#?}");
    assert_eq!(mails[0].to, ["bob@old.example"]);
    let body = mails[0].body();
    assert!(
        body.contains("'bob'") && body.contains("by ada (admin)") && body.contains("no longer comes here"),
        "{body}"
    );
    assert!(
        !body.contains("bob@new.example"),
        "the old address is not told the new one: {body}"
    );
}

#[actix_rt::test]
async fn filters_paging_and_the_csv_find_the_entries_asked_for() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    let (ada_id, ada) = app.user(&root, "ada", "admin", 0).await;
    let mut ids = Vec::new();
    for name in ["carl", "dora", "erin"] {
        let user = ok(
            app.api_post(
                "/api/users",
                &ada,
                json!({"username": name, "password": "a-password-123"}),
            )
            .await,
            name,
        )
        .await;
        ids.push(user["id"].as_i64().unwrap());
    }
    ok(
        app.api_post(
            &format!("/api/users/{}/topup", ids[1]),
            &ada,
            json!({"amount": 5}),
        )
        .await,
        "top up",
    )
    .await;
    ok(
        app.api_patch(
            &format!("/api/users/{}", ids[2]),
            &ada,
            json!({"status": "disabled"}),
        )
        .await,
        "disable",
    )
    .await;
    ok(
        app.api(
            Method::PUT,
            "/api/groups/vip/weight",
            Some(&ada),
            Some(json!({"weight": 3})),
        )
        .await,
        "weight",
    )
    .await;
    // 1 admin.create by root, 3 user.create, 1 top_up, 1 disable, 1 group weight by ada.
    assert_eq!(entries(&app, &ada, "").await.len(), 7);

    let by = |q: &'static str| {
        let (app, ada) = (&app, &ada);
        async move {
            entries(app, ada, q)
                .await
                .iter()
                .map(|e| e["action"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(by("action=user.create").await, ["user.create"; 3]);
    assert_eq!(
        by("action=user").await.len(),
        5,
        "a family: create ×3, top_up, disable"
    );
    assert_eq!(by("action=group.weight").await, ["group.weight"]);
    assert_eq!(by("actor=root").await, ["admin.create"]);
    assert_eq!(entries(&app, &ada, &format!("actor_id={ada_id}")).await.len(), 6);
    let dora = entries(&app, &ada, &format!("target_type=user&target_id={}", ids[1])).await;
    let dora: Vec<&str> = dora.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(dora, ["user.top_up", "user.create"]);
    assert_eq!(by("target_type=group&target_id=vip").await, ["group.weight"]);
    assert_eq!(by("target_type=channel").await.len(), 0);
    assert_eq!(by("from=2999-01-01T00:00:00Z").await.len(), 0);
    assert_eq!(by("to=2000-01-01T00:00:00Z").await.len(), 0);
    assert_eq!(
        by("from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z")
            .await
            .len(),
        7
    );

    // Paging: three pages of at most 3, newest first, every entry once.
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    for _ in 0..3 {
        let path = match cursor {
            Some(c) => format!("/api/audit?limit=3&cursor={c}"),
            None => "/api/audit?limit=3".to_string(),
        };
        let page = json_body(app.api_get(&path, &ada).await).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        cursor = page["next_cursor"].as_i64();
    }
    assert_eq!(cursor, None, "the third page is the last");
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first: {seen:?}");

    // The CSV: a header and the rows the same filters select.
    let res = app.api_get("/api/audit/export?action=user.create", &ada).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("sluice-audit.csv"));
    let csv = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[6], "action");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows.iter().all(|r| &r[6] == "user.create" && &r[3] == "ada"));
    let labels: Vec<&str> = rows.iter().map(|r| &r[9]).collect();
    assert_eq!(labels, ["erin", "dora", "carl"]);
    let after: Value = serde_json::from_str(&rows[0][11]).unwrap();
    assert_eq!(after["username"], "erin");

    // Filters that cannot match anything are errors, not empty lists.
    for bad in [
        "action=usr",
        "action=",
        "from=yesterday",
        "target_type=",
        "colour=red",
    ] {
        let res = app.api_get(&format!("/api/audit?{bad}"), &ada).await;
        assert_eq!(res.status(), 400, "{bad}");
        let res = app.api_get(&format!("/api/audit/export?{bad}"), &ada).await;
        assert_eq!(res.status(), 400, "export {bad}");
    }
}

#[actix_rt::test]
async fn a_user_cannot_read_the_log_and_a_refused_write_records_nothing() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    let (_, ada) = app.user(&root, "ada", "admin", 0).await;
    let (bob_id, bob) = app.user(&ada, "bob", "user", 0).await;
    for path in ["/api/audit", "/api/audit/export"] {
        assert_eq!(app.api_get(path, &bob).await.status(), 403, "{path} for a user");
    }

    let before = stored_entries(&app).await;
    let refused = [
        app.api_post(
            "/api/users",
            &ada,
            json!({"username": "x", "password": "a-password-123"}),
        )
        .await,
        app.api_patch(
            &format!("/api/users/{bob_id}"),
            &ada,
            json!({"email": "not-an-address"}),
        )
        .await,
        app.api_patch(&format!("/api/users/{bob_id}"), &ada, json!({"role": "admin"}))
            .await,
        app.api_patch(&format!("/api/users/{bob_id}"), &ada, json!({"quota": -1}))
            .await,
        app.api_post(&format!("/api/users/{bob_id}/topup"), &ada, json!({"amount": 0}))
            .await,
        app.api_post(
            "/api/channels",
            &ada,
            json!({"name": "nim", "base_url": "not a url", "models": ["llama"], "keys": UPSTREAM_KEY}),
        )
        .await,
        app.api(
            Method::PUT,
            "/api/prices/llama",
            Some(&ada),
            Some(json!({"input": -5, "output": 1})),
        )
        .await,
        app.api(
            Method::PUT,
            "/api/groups/vip/weight",
            Some(&ada),
            Some(json!({"weight": 0})),
        )
        .await,
        app.api_patch("/api/users/999999", &ada, json!({"quota": 5}))
            .await,
        app.api_post("/api/tokens", &bob, json!({"name": ""})).await,
        app.api_post(
            "/api/users",
            &bob,
            json!({"username": "mallory", "password": "a-password-123"}),
        )
        .await,
    ];
    for res in refused {
        let status = res.status();
        assert!(
            status.is_client_error(),
            "refused: {status} {}",
            res.text().await.unwrap()
        );
    }
    assert_eq!(
        stored_entries(&app).await,
        before,
        "refused writes record nothing"
    );
    assert!(smtp.mails().is_empty(), "a refused email change sends no notice");

    // A user's own token writes are recorded too, under their name and role.
    let token = ok(
        app.api_post("/api/tokens", &bob, json!({"name": "laptop"})).await,
        "bob's token",
    )
    .await;
    let key = token["key"].as_str().unwrap();
    let log = entries(&app, &ada, "action=token").await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (&log[0]["actor_username"], &log[0]["actor_role"]),
        (&json!("bob"), &json!("user"))
    );
    assert!(!log[0].to_string().contains(key));
}

#[actix_rt::test]
async fn a_password_reset_by_mail_is_recorded_as_the_account_s_own_act_and_a_refused_one_is_not() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    let bob = ok(
        app.api_post(
            "/api/users",
            &root,
            json!({"username": "bob", "password": "bob-password-123", "email": "bob@example.com"}),
        )
        .await,
        "create bob",
    )
    .await;
    let res = app
        .api(
            Method::POST,
            "/api/auth/password-reset",
            None,
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_eq!(res.status(), 202);
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    let token = mails[0].token("http://sluice.test/reset").expect("a reset link");
    let confirm = |password: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            app.client
                .post(format!("{}/api/auth/password-reset/confirm", app.address))
                .header("x-forwarded-for", OFFICE)
                .json(&json!({"token": token, "new_password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    let before = stored_entries(&app).await;
    assert_eq!(confirm("short").await.status(), 400);
    assert_eq!(
        stored_entries(&app).await,
        before,
        "a refused reset records nothing"
    );
    assert_eq!(confirm("a-brand-new-password").await.status(), 204);

    let log = entries(&app, &root, "action=user.password_reset").await;
    assert_eq!(log.len(), 1, "{log:#?}");
    let entry = &log[0];
    assert_eq!(
        (&entry["actor_id"], &entry["actor_username"]),
        (&bob["id"], &json!("bob"))
    );
    assert_eq!(
        (&entry["actor_role"], &entry["address"]),
        (&json!("user"), &json!(OFFICE))
    );
    assert_eq!(entry["target_id"], bob["id"].as_i64().unwrap().to_string());
    assert_eq!((&entry["before"], &entry["after"]), (&Value::Null, &Value::Null));
    let raw = entry.to_string();
    assert!(!raw.contains("a-brand-new-password") && !raw.contains(&token));
}

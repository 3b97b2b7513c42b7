//! Accounts: root's forced first password change, login throttling, roles
//! (sessions: `sessions.rs`).

use reqwest::Method;
use serde_json::json;
use sluice_tests::helpers::{json_body, spawn_app, AppConfig, TestApp, ROOT_PASSWORD, USER_PASSWORD};

async fn app() -> TestApp {
    spawn_app(AppConfig::new(vec![])).await
}

#[actix_rt::test]
async fn root_must_change_the_first_password_before_anything_else() {
    let app = app().await;
    let session = app.login("root", ROOT_PASSWORD).await;
    assert_eq!(session["must_change_password"], true);
    let token = session["access_token"].as_str().unwrap();
    let res = app.api_get("/api/users/me", token).await;
    assert_eq!(res.status(), 403);
    assert_eq!(json_body(res).await["error"]["code"], "password_change_required");
    let res = app
        .api_post(
            "/api/auth/password",
            token,
            json!({"current_password": ROOT_PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(res.status(), 400, "the policy applies");
    let res = app
        .api_post(
            "/api/auth/password",
            token,
            json!({"current_password": ROOT_PASSWORD, "new_password": "a-much-better-one"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let session = json_body(res).await;
    assert_eq!(session["must_change_password"], false);
    let res = app
        .api_get("/api/users/me", session["access_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_body(res).await["role"], "root");
    // The first password is gone.
    let res = app
        .api(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "root", "password": ROOT_PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), 401);
}

#[actix_rt::test]
async fn wrong_passwords_get_401_and_then_429() {
    let app = app().await;
    let attempt = |password: &'static str| {
        app.api(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "root", "password": password})),
        )
    };
    for _ in 0..5 {
        assert_eq!(attempt("wrong-password").await.status(), 401);
    }
    let res = attempt(ROOT_PASSWORD).await;
    assert_eq!(
        res.status(),
        429,
        "even the right password waits once the account is throttled"
    );
    assert!(res.headers().contains_key("retry-after"));
}

#[actix_rt::test]
async fn admins_manage_users_and_only_root_makes_admins() {
    let app = app().await;
    let root = app.root_token().await;
    let (_, admin) = app.user(&root, "alice", "admin", 0).await;
    let (bob_id, bob) = app.user(&admin, "bob", "user", 100).await;

    // An admin cannot make admins.
    let res = app
        .api_post(
            "/api/users",
            &admin,
            json!({"username": "carol", "password": USER_PASSWORD, "role": "admin"}),
        )
        .await;
    assert_eq!(res.status(), 403);
    // A user cannot reach admin routes.
    assert_eq!(app.api_get("/api/users", &bob).await.status(), 403);
    assert_eq!(
        app.api_get(&format!("/api/users/{bob_id}"), &bob).await.status(),
        403
    );
    // Admin tops bob up and moves him to another group.
    let res = app
        .api_post(
            &format!("/api/users/{bob_id}/topup"),
            &admin,
            json!({"amount": 50}),
        )
        .await;
    assert_eq!(json_body(res).await["quota"], 150);
    let res = app
        .api_patch(
            &format!("/api/users/{bob_id}"),
            &admin,
            json!({"group": "vip", "quota": 7}),
        )
        .await;
    let bob_view = json_body(res).await;
    assert_eq!(
        (bob_view["group"].as_str(), bob_view["quota"].as_i64()),
        (Some("vip"), Some(7))
    );
    // Duplicate names are refused and nothing changes.
    let res = app
        .api_post(
            "/api/users",
            &admin,
            json!({"username": "bob", "password": USER_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 409);
    // It names the field, for a form to show it there.
    assert_eq!(json_body(res).await["error"]["param"], "username");
    // Bad input is refused with the shared error shape.
    let res = app
        .api_post(
            "/api/users",
            &admin,
            json!({"username": "x", "password": USER_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(json_body(res).await["error"]["code"], "invalid_request");
    let res = app
        .api_post(
            "/api/users",
            &admin,
            json!({"username": "dave", "password": USER_PASSWORD, "extra": 1}),
        )
        .await;
    assert_eq!(res.status(), 400, "unknown fields are refused");
    // Disabling bob logs him out of /api at once.
    let res = app
        .api_patch(
            &format!("/api/users/{bob_id}"),
            &admin,
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.api_get("/api/users/me", &bob).await.status(), 401);
    // Pages.
    let res = app.api_get("/api/users?limit=2", &root).await;
    let page = json_body(res).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_i64().unwrap();
    let rest = json_body(
        app.api_get(&format!("/api/users?limit=2&cursor={cursor}"), &root)
            .await,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
}

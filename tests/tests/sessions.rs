//! Sessions end when they should, and only those: two tabs refreshing at once
//! keep theirs; logout, a password change or disabling the account stop that
//! session's (or every session's) access tokens at the next request; a refresh
//! token whose session ended is refused without ending the others; a stolen
//! one used after the grace ends them all. Login throttling slows a guesser
//! without locking the owner out.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use sluice_api::config::AuthSettings;
use sluice_tests::helpers::{json_body, spawn_app, AppConfig, TestApp, ROOT_NEW_PASSWORD, USER_PASSWORD};

async fn app_with(auth: AuthSettings) -> TestApp {
    let mut config = AppConfig::new(vec![]);
    config.auth = auth;
    // Requests say which address they come from with X-Forwarded-For.
    config.relay.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    spawn_app(config).await
}

async fn app() -> TestApp {
    app_with(AuthSettings::default()).await
}

/// A user with two sessions ("laptop" and "phone").
async fn two_devices(app: &TestApp) -> (Value, Value) {
    let root = app.root_token().await;
    app.user(&root, "ada", "user", 0).await;
    (
        app.login("ada", USER_PASSWORD).await,
        app.login("ada", USER_PASSWORD).await,
    )
}

async fn refresh(app: &TestApp, session: &Value) -> reqwest::Response {
    app.api(
        Method::POST,
        "/api/auth/refresh",
        None,
        Some(json!({"refresh_token": session["refresh_token"]})),
    )
    .await
}

async fn me(app: &TestApp, session: &Value) -> u16 {
    app.api_get("/api/users/me", session["access_token"].as_str().unwrap())
        .await
        .status()
        .as_u16()
}

async fn login_from(app: &TestApp, address: &str, username: &str, password: &str) -> u16 {
    app.client
        .post(format!("{}/api/auth/login", app.address))
        .header("X-Forwarded-For", address)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[actix_rt::test]
async fn two_tabs_refreshing_with_the_same_token_both_keep_the_session() {
    let app = app().await;
    let (laptop, phone) = two_devices(&app).await;
    // Both tabs send the same refresh token at the same moment.
    let answers = join_all([refresh(&app, &laptop), refresh(&app, &laptop)]).await;
    let mut sessions = Vec::new();
    for res in answers {
        let status = res.status();
        let body = json_body(res).await;
        assert_eq!(status, 200, "{body}");
        sessions.push(body);
    }
    // And a third, a moment later, with the token already rotated.
    let res = refresh(&app, &laptop).await;
    assert_eq!(
        res.status(),
        200,
        "within the grace a rotated token still refreshes"
    );
    sessions.push(json_body(res).await);
    for s in &sessions {
        assert_eq!(me(&app, s).await, 200);
        assert_eq!(
            refresh(&app, s).await.status(),
            200,
            "each tab's own token rotates on"
        );
    }
    assert_eq!(me(&app, &phone).await, 200, "the other device never noticed");
}

#[actix_rt::test]
async fn a_refresh_token_used_again_after_the_grace_ends_every_session() {
    let app = app_with(AuthSettings {
        refresh_reuse_grace_secs: 0,
        ..AuthSettings::default()
    })
    .await;
    let (laptop, phone) = two_devices(&app).await;
    let res = refresh(&app, &laptop).await;
    assert_eq!(res.status(), 200);
    let rotated = json_body(res).await;
    assert_eq!(me(&app, &rotated).await, 200);
    // The old token again: someone holds a copy.
    assert_eq!(refresh(&app, &laptop).await.status(), 401);
    for s in [&rotated, &phone] {
        assert_eq!(me(&app, s).await, 401, "access tokens stop at once");
        assert_eq!(refresh(&app, s).await.status(), 401);
    }
    let body = json_body(
        app.api_get("/api/users/me", phone["access_token"].as_str().unwrap())
            .await,
    )
    .await;
    assert_eq!(body["error"]["message"], "this session has ended; log in again");
}

#[actix_rt::test]
async fn logout_ends_that_session_at_once_and_no_other() {
    let app = app().await;
    let (laptop, phone) = two_devices(&app).await;
    let logout = || {
        app.api(
            Method::POST,
            "/api/auth/logout",
            None,
            Some(json!({"refresh_token": laptop["refresh_token"]})),
        )
    };
    assert_eq!(logout().await.status(), 204);
    assert_eq!(me(&app, &laptop).await, 401, "its access token stopped with it");
    // A retried refresh (or logout) of the logged-out session is refused, and
    // is not taken for theft.
    assert_eq!(refresh(&app, &laptop).await.status(), 401);
    assert_eq!(logout().await.status(), 204);
    assert_eq!(me(&app, &phone).await, 200);
    assert_eq!(refresh(&app, &phone).await.status(), 200);
}

#[actix_rt::test]
async fn a_password_change_ends_the_other_devices_without_ending_the_new_session() {
    let app = app().await;
    let (laptop, phone) = two_devices(&app).await;
    let res = app
        .api_post(
            "/api/auth/password",
            laptop["access_token"].as_str().unwrap(),
            json!({"current_password": USER_PASSWORD, "new_password": "ada-chose-another-1"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let fresh = json_body(res).await;
    assert_eq!(
        me(&app, &phone).await,
        401,
        "the phone's access token stops at once"
    );
    assert_eq!(me(&app, &laptop).await, 401, "so does the old one of this device");
    // The phone's next refresh, with its now revoked token, is refused…
    assert_eq!(refresh(&app, &phone).await.status(), 401);
    // …and is not taken for theft: the new session lives on.
    assert_eq!(me(&app, &fresh).await, 200);
    assert_eq!(refresh(&app, &fresh).await.status(), 200);
}

#[actix_rt::test]
async fn the_new_password_must_differ_from_the_current_one() {
    let app = app().await;
    let (laptop, _) = two_devices(&app).await;
    let res = app
        .api_post(
            "/api/auth/password",
            laptop["access_token"].as_str().unwrap(),
            json!({"current_password": USER_PASSWORD, "new_password": USER_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body = json_body(res).await;
    assert_eq!(body["error"]["param"], "new_password", "{body}");
    assert_eq!(me(&app, &laptop).await, 200, "nothing changed");
    // Root's forced first change likewise.
    let first = app.login("root", ROOT_NEW_PASSWORD).await;
    let res = app
        .api_post(
            "/api/auth/password",
            first["access_token"].as_str().unwrap(),
            json!({"current_password": ROOT_NEW_PASSWORD, "new_password": ROOT_NEW_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 400);
}

#[actix_rt::test]
async fn disabling_an_account_stops_its_sessions_for_good() {
    let app = app().await;
    let (laptop, phone) = two_devices(&app).await;
    let root = app.login("root", ROOT_NEW_PASSWORD).await;
    let root = root["access_token"].as_str().unwrap();
    let ada = json_body(
        app.api_get("/api/users/me", laptop["access_token"].as_str().unwrap())
            .await,
    )
    .await;
    let path = format!("/api/users/{}", ada["id"]);
    assert_eq!(
        app.api_patch(&path, root, json!({"status": "disabled"}))
            .await
            .status(),
        200
    );
    assert_eq!(me(&app, &laptop).await, 401);
    assert_eq!(refresh(&app, &phone).await.status(), 401);
    // Enabled again, the old sessions stay ended: sign in anew.
    assert_eq!(
        app.api_patch(&path, root, json!({"status": "enabled"}))
            .await
            .status(),
        200
    );
    assert_eq!(me(&app, &laptop).await, 401);
    assert_eq!(refresh(&app, &phone).await.status(), 401);
    let again = app.login("ada", USER_PASSWORD).await;
    assert_eq!(me(&app, &again).await, 200);
}

#[actix_rt::test]
async fn a_guesser_is_throttled_without_locking_the_owner_out() {
    let app = app().await;
    two_devices(&app).await;
    let attacker = "203.0.113.66";
    for _ in 0..5 {
        assert_eq!(login_from(&app, attacker, "ada", "not-her-password").await, 401);
    }
    assert_eq!(login_from(&app, attacker, "ada", "still-guessing").await, 429);
    assert_eq!(
        login_from(&app, attacker, "ada", USER_PASSWORD).await,
        429,
        "the guesser's address waits even with the right password"
    );
    // The owner, from her own address, signs in as ever.
    assert_eq!(login_from(&app, "198.51.100.7", "ada", USER_PASSWORD).await, 200);
    // Successes never count: she signs in again and again.
    for _ in 0..10 {
        assert_eq!(login_from(&app, "198.51.100.7", "ada", USER_PASSWORD).await, 200);
    }
    // The guesser moving on to other accounts from the same address is slowed too.
    let mut refused = 0;
    for n in 0..20 {
        if login_from(&app, attacker, &format!("someone{n}"), "guess").await == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 5, "{refused} of 20 refused");
}

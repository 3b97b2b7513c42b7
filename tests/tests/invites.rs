//! Invites and password resets by mail, through a real SMTP server on
//! loopback: the mail arrives, its link works once, and nothing is stored
//! when no mail could be sent.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, Response};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};
use sluice_entity::invites;
use sluice_tests::helpers::{json_body, spawn_app, AppConfig, TestApp, USER_PASSWORD};
use sluice_tests::smtp::{Mail, SmtpServer};

const INVITE_PAGE: &str = "http://sluice.test/invite";
const RESET_PAGE: &str = "http://sluice.test/reset";
const NEW_PASSWORD: &str = "a-fresh-password-42";

async fn app_with_mail(smtp: &SmtpServer) -> TestApp {
    let mut config = AppConfig::new(vec![]);
    config.smtp = Some(smtp.settings());
    spawn_app(config).await
}

async fn invite(app: &TestApp, admin: &str, body: Value) -> Response {
    app.api_post("/api/invites", admin, body).await
}

async fn open_post(app: &TestApp, path: &str, body: Value) -> Response {
    app.api(Method::POST, path, None, Some(body)).await
}

async fn accept(app: &TestApp, token: &str, username: &str) -> Response {
    open_post(
        app,
        "/api/invites/accept",
        json!({"token": token, "username": username, "password": USER_PASSWORD}),
    )
    .await
}

/// The one mail the server should have, by now.
async fn only_mail(smtp: &SmtpServer) -> Mail {
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "one mail: {mails:#?}");
    mails.into_iter().next().unwrap()
}

async fn stored_links(app: &TestApp) -> u64 {
    invites::Entity::find().count(&app.db).await.unwrap()
}

async fn error_message(res: Response) -> String {
    json_body(res).await["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[actix_rt::test]
async fn an_invited_address_joins_through_the_mailed_link_with_its_role_group_and_quota() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;

    let res = invite(
        &app,
        &root,
        json!({"email": "Ada@Example.com", "role": "user", "group": "vip", "quota": 5000}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let view = json_body(res).await;
    assert_eq!(view["email"], "ada@example.com");
    assert_eq!(
        (view["role"].as_str(), view["group"].as_str()),
        (Some("user"), Some("vip"))
    );
    assert_eq!(
        (view["quota"].as_i64(), view["status"].as_str()),
        (Some(5000), Some("pending"))
    );
    assert!(view.get("token").is_none() && view.get("token_hash").is_none());

    let mail = only_mail(&smtp).await;
    assert_eq!(mail.to, ["ada@example.com"]);
    assert_eq!(mail.from, "sluice@sluice.test");
    assert!(mail.header("Content-Type").unwrap().starts_with("text/plain"));
    assert!(mail.body().contains("root invited you"), "{}", mail.body());
    let token = mail.token(INVITE_PAGE).expect("the mail carries the invite link");
    let row = invites::Entity::find().one(&app.db).await.unwrap().unwrap();
    assert_ne!(row.token_hash, token, "only the token's hash is stored");

    let res = accept(&app, &token, "ada").await;
    assert_eq!(res.status(), 201);
    let session = json_body(res).await;
    let user = &session["user"];
    assert_eq!(
        (user["username"].as_str(), user["email"].as_str()),
        (Some("ada"), Some("ada@example.com"))
    );
    assert_eq!(
        (user["role"].as_str(), user["group"].as_str()),
        (Some("user"), Some("vip"))
    );
    assert_eq!(
        (user["quota"].as_i64(), user["must_change_password"].as_bool()),
        (Some(5000), Some(false))
    );
    let res = app
        .api_get("/api/users/me", session["access_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), 200);

    let login = app.login("ada", USER_PASSWORD).await;
    assert_eq!(login["user"]["group"], "vip");
    let listed = json_body(app.api_get("/api/invites", &root).await).await;
    assert_eq!(listed["items"][0]["status"], "used");
    assert!(listed["items"][0]["used_at"].is_string());
}

#[actix_rt::test]
async fn an_invite_works_once_even_when_two_accepts_race() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    assert_eq!(
        invite(&app, &root, json!({"email": "ada@example.com"}))
            .await
            .status(),
        201
    );
    let token = only_mail(&smtp).await.token(INVITE_PAGE).unwrap();

    let (first, second) = tokio::join!(accept(&app, &token, "ada"), accept(&app, &token, "ada2"));
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 410], "exactly one accept wins");

    let res = accept(&app, &token, "ada3").await;
    assert_eq!(res.status(), 410);
    assert!(error_message(res).await.contains("already used"));
    let users = json_body(app.api_get("/api/users", &root).await).await;
    assert_eq!(
        users["items"].as_array().unwrap().len(),
        2,
        "root and one new account"
    );
}

#[actix_rt::test]
async fn an_expired_invite_is_refused() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    assert_eq!(
        invite(&app, &root, json!({"email": "ada@example.com"}))
            .await
            .status(),
        201
    );
    let token = only_mail(&smtp).await.token(INVITE_PAGE).unwrap();

    invites::Entity::update_many()
        .col_expr(
            invites::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(Utc::now() - chrono::Duration::minutes(1)),
        )
        .exec(&app.db)
        .await
        .unwrap();
    let looked = open_post(&app, "/api/invites/inspect", json!({"token": token})).await;
    assert_eq!(
        looked.status(),
        410,
        "the page can say so before a password is chosen"
    );
    assert!(error_message(looked).await.contains("expired"));
    let res = accept(&app, &token, "ada").await;
    assert_eq!(res.status(), 410);
    assert!(error_message(res).await.contains("expired"));
    let listed = json_body(app.api_get("/api/invites", &root).await).await;
    assert_eq!(listed["items"][0]["status"], "expired");
}

#[actix_rt::test]
async fn the_invite_page_can_greet_the_invitee_without_spending_the_link() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    invite(&app, &root, json!({"email": "ada@example.com", "group": "vip"})).await;
    let token = only_mail(&smtp).await.token(INVITE_PAGE).unwrap();
    for _ in 0..2 {
        let res = open_post(&app, "/api/invites/inspect", json!({"token": token})).await;
        assert_eq!(res.status(), 200);
        let preview = json_body(res).await;
        assert_eq!(
            (
                preview["email"].as_str(),
                preview["role"].as_str(),
                preview["group"].as_str()
            ),
            (Some("ada@example.com"), Some("user"), Some("vip"))
        );
        assert!(preview["expires_at"].is_string());
    }
    let unknown = open_post(&app, "/api/invites/inspect", json!({"token": "0123abcd"})).await;
    assert_eq!(unknown.status(), 404);
    assert!(error_message(unknown).await.contains("not valid"));

    // Accepted from a browser, the new account is signed in by cookie.
    let res = app
        .client
        .post(format!("{}/api/invites/accept", app.address))
        .header("Sluice-Session", "cookie")
        .json(&json!({"token": token, "username": "ada", "password": USER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(cookies
        .iter()
        .any(|c| c.starts_with("sluice_access=") && c.contains("HttpOnly")));
    let session = json_body(res).await;
    assert!(session.get("access_token").is_none(), "{session}");
    assert_eq!(session["user"]["username"], "ada");
    let spent = open_post(&app, "/api/invites/inspect", json!({"token": token})).await;
    assert!(error_message(spent).await.contains("already used"));
}

#[actix_rt::test]
async fn users_cannot_invite_and_only_root_invites_admins() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    let (_, admin) = app.user(&root, "alice", "admin", 0).await;
    let (_, bob) = app.user(&root, "bob", "user", 0).await;

    assert_eq!(
        invite(&app, &bob, json!({"email": "x@example.com"}))
            .await
            .status(),
        403
    );
    assert_eq!(app.api_get("/api/invites", &bob).await.status(), 403);
    let res = invite(&app, &admin, json!({"email": "x@example.com", "role": "admin"})).await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        invite(&app, &root, json!({"email": "x@example.com", "role": "root"}))
            .await
            .status(),
        403
    );
    assert!(smtp.mails().is_empty(), "refused invites send nothing");
    assert_eq!(stored_links(&app).await, 0);

    assert_eq!(
        invite(&app, &admin, json!({"email": "x@example.com"}))
            .await
            .status(),
        201
    );
    let res = invite(&app, &root, json!({"email": "y@example.com", "role": "admin"})).await;
    assert_eq!(res.status(), 201);
    let admin_invite = json_body(res).await["id"].as_i64().unwrap();
    let res = app
        .api_delete(&format!("/api/invites/{admin_invite}"), &admin)
        .await;
    assert_eq!(res.status(), 403, "an admin cannot revoke root's admin invite");
}

#[actix_rt::test]
async fn a_revoked_invite_cannot_be_accepted() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    let res = invite(&app, &root, json!({"email": "ada@example.com"})).await;
    let id = json_body(res).await["id"].as_i64().unwrap();
    let token = only_mail(&smtp).await.token(INVITE_PAGE).unwrap();

    assert_eq!(
        app.api_delete(&format!("/api/invites/{id}"), &root)
            .await
            .status(),
        204
    );
    let res = accept(&app, &token, "ada").await;
    assert_eq!(res.status(), 404);
    assert!(error_message(res).await.contains("not valid"));
    assert_eq!(
        app.api_delete(&format!("/api/invites/{id}"), &root)
            .await
            .status(),
        404
    );
}

#[actix_rt::test]
async fn inviting_an_address_again_replaces_its_pending_invite() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    assert_eq!(
        invite(&app, &root, json!({"email": "ada@example.com"}))
            .await
            .status(),
        201
    );
    let res = invite(&app, &root, json!({"email": "ada@example.com", "quota": 9})).await;
    assert_eq!(res.status(), 201);
    let id = json_body(res).await["id"].as_i64().unwrap();
    let mails = smtp.wait_for(2, Duration::from_secs(10)).await;
    let (old, new) = (
        mails[0].token(INVITE_PAGE).unwrap(),
        mails[1].token(INVITE_PAGE).unwrap(),
    );

    assert_eq!(accept(&app, &old, "ada").await.status(), 404);
    let res = accept(&app, &new, "ada").await;
    assert_eq!(res.status(), 201);
    assert_eq!(json_body(res).await["user"]["quota"], 9);
    let used = json_body(app.api_delete(&format!("/api/invites/{id}"), &root).await).await;
    assert_eq!(
        used["error"]["code"], "conflict",
        "an accepted invite stays on record"
    );
}

#[actix_rt::test]
async fn an_address_that_has_an_account_cannot_be_invited() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    let res = app
        .api_post(
            "/api/users",
            &root,
            json!({"username": "ada", "password": USER_PASSWORD, "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let res = invite(&app, &root, json!({"email": "ADA@example.com"})).await;
    assert_eq!(res.status(), 409);
    assert!(smtp.mails().is_empty());
    assert_eq!(stored_links(&app).await, 0);
}

#[actix_rt::test]
async fn an_invite_with_a_quota_out_of_bounds_is_refused_and_mails_nothing() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    for quota in [-1i64, 1_000_000_000_000_001] {
        let res = invite(&app, &root, json!({"email": "ada@example.com", "quota": quota})).await;
        assert_eq!(res.status(), 400, "quota {quota}");
    }
    assert!(smtp.mails().is_empty());
    assert_eq!(stored_links(&app).await, 0);
}

#[actix_rt::test]
async fn without_mail_settings_inviting_and_resetting_are_unavailable_and_store_nothing() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;

    let res = invite(&app, &root, json!({"email": "ada@example.com"})).await;
    assert_eq!(res.status(), 503);
    let body = json_body(res).await;
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(body["error"]["message"].as_str().unwrap().contains("smtp"));
    let res = open_post(
        &app,
        "/api/auth/password-reset",
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(res.status(), 503);
    assert_eq!(stored_links(&app).await, 0);
}

#[actix_rt::test]
async fn when_the_mail_server_refuses_nothing_is_stored_and_the_admin_is_told_why() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    smtp.refuse_recipients(true);

    let res = invite(&app, &root, json!({"email": "ada@example.com"})).await;
    assert_eq!(res.status(), 503);
    let message = error_message(res).await;
    assert!(
        message.contains("550") && message.contains("ada@example.com"),
        "{message}"
    );
    assert_eq!(stored_links(&app).await, 0);

    smtp.refuse_recipients(false);
    assert_eq!(
        invite(&app, &root, json!({"email": "ada@example.com"}))
            .await
            .status(),
        201
    );
    assert_eq!(stored_links(&app).await, 1);
}

#[actix_rt::test]
async fn mail_goes_out_with_the_configured_login() {
    let smtp = SmtpServer::start_with_login("mailer", "smtp-password").await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;

    assert_eq!(
        invite(&app, &root, json!({"email": "ada@example.com"}))
            .await
            .status(),
        201
    );
    assert_eq!(only_mail(&smtp).await.login.as_deref(), Some("mailer"));
}

#[actix_rt::test]
async fn a_password_reset_by_mail_sets_the_password_and_ends_every_session() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    let res = app
        .api_post(
            "/api/users",
            &root,
            json!({"username": "ada", "password": USER_PASSWORD, "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let old_session = app.login("ada", USER_PASSWORD).await;

    let res = open_post(
        &app,
        "/api/auth/password-reset",
        json!({"email": "Ada@example.com"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let mail = only_mail(&smtp).await;
    assert_eq!(mail.to, ["ada@example.com"]);
    assert!(mail.body().contains("'ada'"), "{}", mail.body());
    let token = mail.token(RESET_PAGE).expect("the mail carries the reset link");
    let confirm = |password: &str| {
        open_post(
            &app,
            "/api/auth/password-reset/confirm",
            json!({"token": token, "new_password": password}),
        )
    };

    assert_eq!(
        confirm("short").await.status(),
        400,
        "the policy applies and the link survives"
    );
    assert_eq!(confirm(NEW_PASSWORD).await.status(), 204);
    let res = open_post(
        &app,
        "/api/auth/refresh",
        json!({"refresh_token": old_session["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 401, "sessions from before the reset are over");
    let res = open_post(
        &app,
        "/api/auth/login",
        json!({"username": "ada", "password": USER_PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        app.login("ada", NEW_PASSWORD).await["must_change_password"],
        false
    );

    let res = confirm("yet-another-password").await;
    assert_eq!(res.status(), 410);
    assert!(error_message(res).await.contains("already used"));
    let res = accept(&app, &token, "eve").await;
    assert_eq!(res.status(), 404, "a reset link is no invite");
}

#[actix_rt::test]
async fn asking_to_reset_an_unknown_address_answers_the_same_and_mails_nothing() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let root = app.root_token().await;
    app.api_post(
        "/api/users",
        &root,
        json!({"username": "ada", "password": USER_PASSWORD, "email": "ada@example.com"}),
    )
    .await;

    let res = open_post(
        &app,
        "/api/auth/password-reset",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let res = open_post(
        &app,
        "/api/auth/password-reset",
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    only_mail(&smtp).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].to, ["ada@example.com"]);
}

#[actix_rt::test]
async fn reset_requests_for_one_address_are_throttled() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let ask = || {
        open_post(
            &app,
            "/api/auth/password-reset",
            json!({"email": "nobody@example.com"}),
        )
    };
    for _ in 0..5 {
        assert_eq!(ask().await.status(), 202);
    }
    let res = ask().await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
}

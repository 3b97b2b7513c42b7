//! The console's session: tokens in HttpOnly cookies that page script never
//! sees, refreshed and ended through the cookie alone, and refused for any
//! change that does not carry the `Sluice-Session: cookie` header (so another
//! site cannot forge one). Also how the console itself is served.

use std::collections::HashMap;

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use sluice_tests::helpers::{json_body, spawn_app, AppConfig, TestApp, ROOT_NEW_PASSWORD, USER_PASSWORD};

/// A browser: the cookies it holds, sent back on every request.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookies: HashMap::new(),
        }
    }

    /// A request as the console makes it (`console: true`: with the session
    /// header), or as a page on another site could (without it).
    async fn send(&mut self, method: Method, path: &str, body: Option<Value>, console: bool) -> Response {
        let mut req = self
            .app
            .client
            .request(method, format!("{}{}", self.app.address, path));
        if console {
            req = req.header("Sluice-Session", "cookie");
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(COOKIE, jar.join("; "));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request sent");
        for set in res.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        res
    }

    async fn sign_in(&mut self, username: &str, password: &str) -> Response {
        self.send(
            Method::POST,
            "/api/auth/login",
            Some(json!({"username": username, "password": password})),
            true,
        )
        .await
    }
}

/// An app whose root changed the first password, and a plain user.
async fn app_with_user() -> TestApp {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;
    app.user(&root, "ada", "user", 1000).await;
    app
}

fn cookie_attributes(res: &Response, name: &str) -> String {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
}

#[actix_rt::test]
async fn a_browser_session_keeps_its_tokens_in_http_only_cookies() {
    let app = app_with_user().await;
    let mut browser = Browser::new(&app);
    let res = browser.sign_in("ada", USER_PASSWORD).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    for (name, path) in [
        ("sluice_access", "Path=/;"),
        ("sluice_refresh", "Path=/api/auth;"),
    ] {
        let attributes = cookie_attributes(&res, name);
        for expected in ["HttpOnly", "SameSite=Strict", path] {
            assert!(attributes.contains(expected), "{name}: {attributes}");
        }
        // Served over plain HTTP here, so not Secure; behind https:// it is.
        assert!(!attributes.contains("Secure"), "{name}: {attributes}");
    }
    let body = json_body(res).await;
    assert!(
        body.get("access_token").is_none(),
        "no token for page script: {body}"
    );
    assert!(
        body.get("refresh_token").is_none(),
        "no token for page script: {body}"
    );
    assert_eq!(body["user"]["username"], "ada");

    let me = browser.send(Method::GET, "/api/users/me", None, true).await;
    assert_eq!(me.status(), 200);
    assert_eq!(json_body(me).await["username"], "ada");
}

#[actix_rt::test]
async fn a_cookie_alone_cannot_change_anything() {
    let app = app_with_user().await;
    let mut browser = Browser::new(&app);
    browser.sign_in("ada", USER_PASSWORD).await;
    // What a form on another site could send: the cookie, but not the header.
    let forged = browser
        .send(
            Method::POST,
            "/api/tokens",
            Some(json!({"name": "forged"})),
            false,
        )
        .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let message = json_body(forged).await["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("Sluice-Session"), "{message}");
    // Reading with the cookie is fine (an EventSource or a download link cannot send headers).
    let listed = browser.send(Method::GET, "/api/tokens", None, false).await;
    assert_eq!(json_body(listed).await["items"], json!([]), "nothing was created");

    let made = browser
        .send(Method::POST, "/api/tokens", Some(json!({"name": "mine"})), true)
        .await;
    assert_eq!(made.status(), 201);
    assert_eq!(
        made.headers()[CACHE_CONTROL],
        "no-store",
        "the key is in this answer"
    );
}

#[actix_rt::test]
async fn refresh_and_sign_out_work_from_the_cookie_alone() {
    let app = app_with_user().await;
    let mut browser = Browser::new(&app);
    browser.sign_in("ada", USER_PASSWORD).await;
    let first_refresh = browser.cookies["sluice_refresh"].clone();

    let refreshed = browser.send(Method::POST, "/api/auth/refresh", None, true).await;
    assert_eq!(refreshed.status(), 200);
    assert!(json_body(refreshed).await.get("refresh_token").is_none());
    assert_ne!(browser.cookies["sluice_refresh"], first_refresh, "rotated");
    let still = browser.send(Method::GET, "/api/users/me", None, true).await;
    assert_eq!(still.status(), 200);

    // Without the header the refresh cookie is not read: no credential at all.
    let forged = browser.send(Method::POST, "/api/auth/refresh", None, false).await;
    assert_eq!(forged.status(), 401);

    let out = browser.send(Method::POST, "/api/auth/logout", None, true).await;
    assert_eq!(out.status(), 204);
    assert!(
        browser.cookies.is_empty(),
        "both cookies cleared: {:?}",
        browser.cookies
    );
    let gone = browser.send(Method::POST, "/api/auth/refresh", None, true).await;
    assert_eq!(gone.status(), 401, "no refresh cookie left: not signed in");
    // The refresh token itself was revoked, not only forgotten by the browser.
    let mut thief = Browser::new(&app);
    thief.cookies.insert(
        "sluice_refresh".into(),
        browser_refresh_after_rotation(&app).await,
    );
    let replay = thief.send(Method::POST, "/api/auth/refresh", None, true).await;
    assert_eq!(replay.status(), 401);
}

/// Sign in, refresh once, sign out: the refresh token that was live at sign-out.
async fn browser_refresh_after_rotation(app: &TestApp) -> String {
    let mut browser = Browser::new(app);
    browser.sign_in("ada", USER_PASSWORD).await;
    browser.send(Method::POST, "/api/auth/refresh", None, true).await;
    let live = browser.cookies["sluice_refresh"].clone();
    browser.send(Method::POST, "/api/auth/logout", None, true).await;
    live
}

#[actix_rt::test]
async fn a_password_change_in_the_browser_keeps_that_browser_signed_in() {
    let app = app_with_user().await;
    let mut browser = Browser::new(&app);
    browser.sign_in("ada", USER_PASSWORD).await;
    let changed = browser
        .send(
            Method::POST,
            "/api/auth/password",
            Some(json!({"current_password": USER_PASSWORD, "new_password": "a-new-password-9"})),
            true,
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert!(json_body(changed).await.get("access_token").is_none());
    assert_eq!(
        browser
            .send(Method::GET, "/api/users/me", None, true)
            .await
            .status(),
        200
    );
    // A wrong current password names the field, for the form to show it there.
    let wrong = browser
        .send(
            Method::POST,
            "/api/auth/password",
            Some(json!({"current_password": "nope-nope-nope", "new_password": "another-one-99"})),
            true,
        )
        .await;
    assert_eq!(wrong.status(), 403);
    let wrong = json_body(wrong).await;
    assert_eq!(wrong["error"]["param"], "current_password");
    assert_eq!(wrong["error"]["code"], "wrong_password");
}

#[actix_rt::test]
async fn api_clients_still_get_their_tokens_in_the_body() {
    let app = app_with_user().await;
    let res = app
        .api(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "root", "password": ROOT_NEW_PASSWORD})),
        )
        .await;
    assert!(
        res.headers().get(SET_COOKIE).is_none(),
        "no cookies without the header"
    );
    let body = json_body(res).await;
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));
}

#[actix_rt::test]
async fn the_console_is_served_under_a_strict_content_security_policy() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();
    for path in ["/", "/login", "/invite?token=abc", "/channels/3", "/connect/7"] {
        let res = get(path).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let headers = res.headers().clone();
        assert!(
            headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let html = res.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !html.contains("<script >"),
            "no inline script on {path}"
        );
    }
    let missing = get("/no-such-page").await.unwrap();
    assert_eq!(missing.status(), 404);
    let asset = get("/assets/does-not-exist.js").await.unwrap();
    assert_eq!(asset.status(), 404);

    // Every file the page loads comes from here, with its type and a validator.
    let html = get("/").await.unwrap().text().await.unwrap();
    let sources: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(!sources.is_empty(), "the page loads its assets: {html}");
    for src in sources {
        let res = get(src).await.unwrap();
        assert_eq!(res.status(), 200, "{src}");
        let etag = res.headers()["etag"].to_str().unwrap().to_string();
        let again = app
            .client
            .get(format!("{}{src}", app.address))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{src} revalidates");
    }
    for attribute in ["src=\"", "href=\""] {
        for value in html.split(attribute).skip(1) {
            let url = value.split('"').next().unwrap();
            assert!(url.starts_with('/'), "{attribute}{url}\" leaves this host");
        }
    }
}

//! The server keeps the document's contract: bodies are JSON objects, a method
//! a documented path does not take gets 405 with `Allow`, statuses mean what
//! the document says, and the document names its server, tags and public operations.

use reqwest::Method;
use serde_json::{json, Value};
use sluice_tests::helpers::{json_body, spawn_app, AppConfig, TestApp, TOKEN};

async fn spec(app: &TestApp) -> Value {
    json_body(app.api(Method::GET, "/api/openapi.json", None, None).await).await
}

#[actix_rt::test]
async fn a_body_that_is_not_a_json_object_is_refused_and_changes_nothing() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;
    let (id, _) = app.user(&root, "alice", "user", 500).await;

    // serde would read an array as the struct's fields in order: a login.
    let res = app
        .api(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!(["alice", "a-good-password-1"])),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body = json_body(res).await;
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON object, not an array"),
        "{body}"
    );

    for bad in [json!([null, null]), json!(null), json!("quota"), json!(7)] {
        let res = app
            .api(
                Method::PATCH,
                &format!("/api/users/{id}"),
                Some(&root),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(res.status(), 400, "PATCH with {bad}");
    }
    let res = app
        .api(
            Method::POST,
            &format!("/api/users/{id}/topup"),
            Some(&root),
            Some(json!([100])),
        )
        .await;
    assert_eq!(res.status(), 400);
    let user = json_body(app.api_get(&format!("/api/users/{id}"), &root).await).await;
    assert_eq!(user["quota"], 500, "nothing changed: {user}");
    assert_eq!(user["status"], "enabled", "{user}");

    // An object still works, of course.
    let res = app
        .api(
            Method::POST,
            &format!("/api/users/{id}/topup"),
            Some(&root),
            Some(json!({"amount": 100})),
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[actix_rt::test]
async fn a_method_a_documented_path_does_not_take_gets_405_with_allow() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;

    let res = app.api(Method::DELETE, "/api/users", Some(&root), None).await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, POST");
    let body = json_body(res).await;
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    let res = app.api(Method::PUT, "/api/tokens/12", Some(&root), None).await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, PATCH, DELETE");

    // /v1 answers in OpenAI's shape, /v1/messages in Anthropic's.
    let res = app
        .client
        .get(format!("{}/v1/chat/completions", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    assert_eq!(json_body(res).await["error"]["code"], "method_not_allowed");
    let res = app
        .client
        .get(format!("{}/v1/messages", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let body = json_body(res).await;
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");

    // A path nobody serves is still 404.
    let res = app
        .api(Method::DELETE, "/api/nothing-here", Some(&root), None)
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .api(Method::GET, "/api/users/1/nothing", Some(&root), None)
        .await;
    assert_eq!(res.status(), 404);
}

#[actix_rt::test]
async fn refusals_use_the_status_that_says_why() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;
    let res = app
        .api_post(
            "/api/tokens",
            &root,
            json!({"name": "late", "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body = json_body(res).await;
    assert_eq!(body["error"]["param"], "expires_at", "{body}");
    let tokens = json_body(app.api_get("/api/tokens", &root).await).await;
    assert!(
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "late"),
        "nothing was made: {tokens}"
    );
}

#[actix_rt::test]
async fn the_document_names_its_server_its_tags_and_its_public_operations() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let spec = spec(&app).await;
    assert!(
        spec["servers"][0]["url"].is_string(),
        "servers: {}",
        spec["servers"]
    );
    let declared: Vec<&str> = spec["tags"]
        .as_array()
        .expect("tags are declared")
        .iter()
        .map(|t| {
            assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()), "{t}");
            t["name"].as_str().unwrap()
        })
        .collect();
    let mut public = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for tag in op["tags"].as_array().unwrap() {
                assert!(
                    declared.contains(&tag.as_str().unwrap()),
                    "{method} {path}: tag {tag} undeclared"
                );
            }
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} says no security"));
            if security.is_empty() {
                public.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    public.sort();
    let mut open: Vec<String> = sluice_api::manage::OPEN_ROUTES
        .iter()
        .map(|(m, p)| format!("{m} {p}"))
        .filter(|route| {
            // The open routes the document describes (not the document itself, nor health probes).
            route.contains("/api/auth") || route.contains("/api/invites")
        })
        .collect();
    open.sort();
    assert_eq!(
        public, open,
        "the operations marked public are exactly the open routes"
    );

    let page = &spec["components"]["schemas"]["Page_TokenView"]["properties"]["items"]["items"];
    assert_eq!(page["$ref"], "#/components/schemas/TokenView");
    let limit = spec["paths"]["/api/users"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()
        .clone();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);
}

//! The OpenAPI 3.1 description of `/api` and `/v1`, assembled from each
//! module's `Doc`, served at `/api/openapi.json` with a browsable page at
//! `/api/docs`. The committed `openapi/openapi.json` must equal it (a test
//! fails when they drift; `cargo run -p sluice-api --bin sluice -- openapi`
//! writes it).

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};
use utoipa_scalar::{Scalar, Servable};

use super::{audit, channels, fallbacks, instance, invites, key_state, keys, logs, prices, tokens, users};
use crate::auth::{reset, sessions};
use crate::error::{ErrorBody, ErrorDetail};
use crate::relay;

mod contract;

/// The root document: info, security schemes, shared schemas.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice",
        description = "One OpenAI-compatible endpoint in front of many rate-limited LLM API keys. \
            `/v1` takes `Authorization: Bearer sk-…` tokens; `/api` takes access tokens from `POST /api/auth/login`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&SecuritySchemes)
)]
struct Root;

struct SecuritySchemes;

/// The console's cookie session, accepted wherever an access JWT is.
const SESSION_COOKIE: &str = "session_cookie";

/// Operations that open or end a session, and so take `Sluice-Session: cookie`.
const SESSION_OPERATIONS: &[&str] = &[
    "login",
    "refresh_session",
    "logout",
    "change_password",
    "accept_invite",
];

/// Document the browser session: the cookie as an alternative to the bearer JWT,
/// the header that asks for it, and the refresh token a cookie session leaves out
/// of the body.
fn add_cookie_sessions(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    let bearer = serde_json::json!({ "bearer": [] });
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(security) = op.security.as_mut() {
                if security
                    .iter()
                    .any(|r| serde_json::to_value(r).ok().as_ref() == Some(&bearer))
                {
                    security.push(SecurityRequirement::new(SESSION_COOKIE, Vec::<String>::new()));
                }
            }
            let id = op.operation_id.clone().unwrap_or_default();
            if !SESSION_OPERATIONS.contains(&id.as_str()) {
                continue;
            }
            let header = ParameterBuilder::new()
                .name("Sluice-Session")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "`cookie`: keep the session in HttpOnly cookies; the body then carries no tokens. \
                     Browsers only.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["cookie"])),
                ))
                .build();
            op.parameters.get_or_insert_with(Vec::new).push(header.into());
            if matches!(id.as_str(), "refresh_session" | "logout") {
                if let Some(utoipa::openapi::RefOr::T(body)) = op.request_body.as_mut() {
                    // A cookie session sends its refresh token as a cookie and no body.
                    body.required = Some(Required::False);
                }
            }
        }
    }
}

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::cookies::ACCESS_COOKIE,
                "The web console's session: the access JWT in an HttpOnly cookie, set by the session \
                 routes when called with `Sluice-Session: cookie`. Any request that changes something \
                 must also send that header, or the cookie is ignored (cross-site request forgery).",
            ))),
        );
        components.add_security_scheme(
            "sk_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk-…")
                    .build(),
            ),
        );
    }
}

/// The whole description, as JSON: utoipa's types cannot hold every keyword
/// [`contract::complete`] adds (an `anyOf` beside a `type`), so the finished
/// document is kept as a JSON value.
pub fn document() -> serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(build).clone()
}

fn build() -> serde_json::Value {
    let mut doc = Root::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    for part in [
        sessions::Doc::openapi(),
        reset::Doc::openapi(),
        invites::Doc::openapi(),
        users::Doc::openapi(),
        instance::Doc::openapi(),
        logs::Doc::openapi(),
        tokens::Doc::openapi(),
        prices::Doc::openapi(),
        channels::Doc::openapi(),
        fallbacks::Doc::openapi(),
        keys::Doc::openapi(),
        key_state::Doc::openapi(),
        audit::Doc::openapi(),
        relay::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    add_cookie_sessions(&mut doc);
    let mut json = serde_json::to_value(&doc).expect("the OpenAPI document serialises");
    contract::complete(&mut json);
    json
}

/// The description as pretty JSON, as committed in `openapi/openapi.json`.
pub fn document_json() -> String {
    serde_json::to_string_pretty(&document()).expect("the OpenAPI document serialises") + "\n"
}

/// `GET /api/openapi.json` and the `/api/docs` page.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(spec))
        .service(Scalar::with_url("/docs", document()));
}

async fn spec() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}

/// A documented path, as a matcher: its segments (`None` for a `{parameter}`)
/// and the methods it takes, in `Allow` form.
struct Route {
    segments: Vec<Option<String>>,
    allow: String,
}

/// The methods a documented path takes, in `Allow` form, when `path` is one of
/// them; `None` when no documented path matches. The document is the route
/// table: a method it does not list for a path it does gets 405.
pub fn allowed_methods(path: &str) -> Option<String> {
    static ROUTES: std::sync::OnceLock<Vec<Route>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let document = document();
        document["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(template, item)| {
                let methods = ["get", "post", "put", "patch", "delete"]
                    .map(|m| (m.to_ascii_uppercase(), item.get(m).is_some()));
                Route {
                    segments: template
                        .split('/')
                        .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                        .collect(),
                    allow: methods
                        .iter()
                        .filter(|(_, has)| *has)
                        .map(|(m, _)| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })
            .collect()
    });
    let asked: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .filter(|route| {
            route.segments.len() == asked.len()
                && route.segments.iter().zip(&asked).all(|(want, got)| match want {
                    Some(literal) => literal == got,
                    None => !got.is_empty(),
                })
        })
        // `/api/users/me` before `/api/users/{id}`.
        .max_by_key(|route| route.segments.iter().filter(|s| s.is_some()).count())
        .map(|route| route.allow.clone())
}

/// What a request no route took gets: 405 with `Allow` when its path is
/// documented for other methods; otherwise `None` (a 404: no such path, or a
/// path parameter that does not fit, such as a non-numeric id).
pub fn method_not_allowed(method: &actix_web::http::Method, path: &str) -> Option<String> {
    allowed_methods(path).filter(|allow| !allow.split(", ").any(|m| m == method.as_str()))
}

#[cfg(test)]
mod tests {
    use super::allowed_methods;

    #[test]
    fn documented_paths_name_their_methods_and_others_are_unknown() {
        assert_eq!(allowed_methods("/api/users").as_deref(), Some("GET, POST"));
        assert_eq!(allowed_methods("/api/users/7").as_deref(), Some("GET, PATCH"));
        assert_eq!(allowed_methods("/v1/chat/completions").as_deref(), Some("POST"));
        assert_eq!(allowed_methods("/api/users/7/nothing"), None);
        assert_eq!(allowed_methods("/api/users/"), None);
        assert_eq!(allowed_methods("/api/nothing"), None);
        assert_eq!(allowed_methods("/api/users/me").as_deref(), Some("GET"));
    }

    #[test]
    fn a_method_the_path_takes_is_not_refused_as_not_allowed() {
        use actix_web::http::Method;
        assert_eq!(
            super::method_not_allowed(&Method::DELETE, "/api/users/7").as_deref(),
            Some("GET, PATCH")
        );
        // GET /api/users/abc: the path is documented for GET; the id does not fit.
        assert_eq!(super::method_not_allowed(&Method::GET, "/api/users/abc"), None);
    }
}

//! The `/api` surface: accounts, tokens, usage logs, prices, invites.
//! Every route declares who may call it through its extractor; the few open
//! ones are listed in [`OPEN_ROUTES`].

pub mod audit;
pub mod body;
pub mod channels;
pub mod csv_download;
pub mod fallbacks;
pub mod instance;
pub mod invites;
pub mod key_state;
pub mod keys;
pub mod logs;
pub mod openapi;
pub mod prices;
pub mod tokens;
pub mod users;

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{reset, sessions};
use crate::error::{self, ApiError};

/// Routes anyone may call, without a session: logging in, accepting an
/// invite, resetting a password by mail, and the spec.
pub const OPEN_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/password-reset"),
    ("POST", "/api/auth/password-reset/confirm"),
    ("POST", "/api/invites/accept"),
    ("POST", "/api/invites/inspect"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
];

/// One page of a list.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<i64>,
}

impl<T> Page<T> {
    /// A page from `limit + 1` rows fetched in cursor order.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        limit: u64,
        id: impl Fn(&R) -> i64,
        view: impl Fn(R) -> T,
    ) -> Page<T> {
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Page {
            next_cursor: if more { rows.last().map(&id) } else { None },
            items: rows.into_iter().map(view).collect(),
        }
    }
}

/// Default and largest page sizes.
pub const PAGE_DEFAULT: u64 = 100;
/// See [`PAGE_DEFAULT`].
pub const PAGE_MAX: u64 = 500;

/// Check a requested page size.
pub fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    match limit.unwrap_or(PAGE_DEFAULT) {
        0 => Err(ApiError::BadRequest("limit must be at least 1".into())),
        n if n > PAGE_MAX => Err(ApiError::BadRequest(format!("limit must be at most {PAGE_MAX}"))),
        n => Ok(n),
    }
}

/// Register the `/api` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            // Answers carry keys, tokens, links, usage: no cache keeps them.
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add((actix_web::http::header::CACHE_CONTROL, "no-store")),
            )
            .app_data(error::json_config())
            .app_data(error::query_config())
            .app_data(error::path_config())
            .configure(openapi::routes)
            .configure(sessions::routes)
            .configure(reset::routes)
            .configure(invites::routes)
            .configure(users::routes)
            .configure(instance::routes)
            .configure(logs::routes)
            .configure(tokens::routes)
            .configure(prices::routes)
            .configure(channels::routes)
            .configure(fallbacks::routes)
            .configure(key_state::routes)
            .configure(keys::routes)
            .configure(audit::routes)
            .default_service(web::to(unknown_route)),
    );
}

async fn unknown_route(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(match openapi::method_not_allowed(req.method(), req.path()) {
        Some(allow) => ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        },
        None => ApiError::NotFound(format!("no route {} {}", req.method(), req.path())),
    })
}

//! The web console: a single page served by the binary itself at `/`, its
//! assets embedded at build time. The page talks to `/api` with a cookie
//! session (see `auth::cookies`), so it has no routes of its own beyond these
//! files; every write it makes goes through the same handlers and the same
//! `catalog` functions as any API client.

mod assets;

use actix_web::http::header;
use actix_web::middleware::Compress;
use actix_web::{web, HttpResponse, HttpResponseBuilder};

/// The console's pages: `GET` on one of these paths, or below it, answers with
/// the page, which draws the right view itself.
pub const PAGES: &[&str] = &[
    "login",
    "password",
    "invite",
    "reset",
    "tokens",
    "connect",
    "logs",
    "keys",
    "channels",
    "users",
    "fallbacks",
    "invites",
    "prices",
    "audit",
    "admins",
];

/// The policy every console response carries: nothing but this origin, no
/// inline script or style, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Register the console's routes (after `/api` and `/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/assets/{path:.+}")
            .wrap(Compress::default())
            .route(web::get().to(assets::asset)),
    )
    .route("/", web::get().to(page));
    for name in PAGES {
        cfg.route(&format!("/{name}"), web::get().to(page))
            .route(&format!("/{name}/{{rest:.*}}"), web::get().to(page));
    }
}

async fn page(req: actix_web::HttpRequest) -> HttpResponse {
    assets::serve(&req, "index.html")
}

/// Headers every console response carries.
fn secure(res: &mut HttpResponseBuilder) {
    res.insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Invite and reset links carry their token in the URL: never pass it on.
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
}

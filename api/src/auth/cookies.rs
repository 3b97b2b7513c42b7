//! Browser sessions: the console keeps its access and refresh tokens in
//! HttpOnly cookies, so no page script can read them. A request asks for this
//! with the `Sluice-Session: cookie` header; the same header must come with
//! every state-changing request a cookie authenticates. A page on another
//! site cannot send a custom header without a CORS preflight, which Sluice
//! never grants, so that header (with `SameSite=Strict`) stops cross-site
//! request forgery.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use super::sessions::Session;
use crate::config::Settings;

/// The request header a browser session sends with every call.
pub const SESSION_HEADER: &str = "sluice-session";
/// Its one value.
pub const SESSION_HEADER_VALUE: &str = "cookie";
/// Cookie holding the access JWT.
pub const ACCESS_COOKIE: &str = "sluice_access";
/// Cookie holding the refresh token; only sent to `/api/auth`.
pub const REFRESH_COOKIE: &str = "sluice_refresh";
const REFRESH_PATH: &str = "/api/auth";

/// Whether the request carries `Sluice-Session: cookie`.
pub fn wants_cookies(req: &HttpRequest) -> bool {
    req.headers()
        .get(SESSION_HEADER)
        .is_some_and(|v| v.as_bytes() == SESSION_HEADER_VALUE.as_bytes())
}

/// Whether a session cookie may authenticate this request: reads always, writes
/// only with the session header.
pub fn cookie_allowed(req: &HttpRequest) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD) || wants_cookies(req)
}

/// The access token from the cookie, when it may be used for this request.
pub fn access_token(req: &HttpRequest) -> Option<String> {
    cookie_allowed(req)
        .then(|| req.cookie(ACCESS_COOKIE))
        .flatten()
        .map(|c| c.value().to_string())
}

/// The refresh token from the cookie (only with the session header).
pub fn refresh_token(req: &HttpRequest) -> Option<String> {
    wants_cookies(req)
        .then(|| req.cookie(REFRESH_COOKIE))
        .flatten()
        .map(|c| c.value().to_string())
}

/// Answer with a session: as JSON with its tokens, or — when the browser asked
/// for cookies — with the tokens in HttpOnly cookies and out of the body.
pub fn respond(
    req: &HttpRequest,
    settings: &Settings,
    status: StatusCode,
    mut session: Session,
) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    no_store(&mut res);
    if wants_cookies(req) {
        let secure = secure(settings);
        if let Some(access) = session.access_token.take() {
            res.cookie(cookie(ACCESS_COOKIE, access, "/", session.expires_in, secure));
        }
        if let Some(refresh) = session.refresh_token.take() {
            let ttl = settings.auth.refresh_ttl_secs as i64;
            res.cookie(cookie(REFRESH_COOKIE, refresh, REFRESH_PATH, ttl, secure));
        }
    }
    res.json(session)
}

/// Remove both cookies (logging out).
pub fn clear(res: &mut HttpResponseBuilder, settings: &Settings) {
    let secure = secure(settings);
    res.cookie(cookie(ACCESS_COOKIE, String::new(), "/", 0, secure));
    res.cookie(cookie(REFRESH_COOKIE, String::new(), REFRESH_PATH, 0, secure));
}

/// Responses carrying tokens must not be kept by any cache.
pub fn no_store(res: &mut HttpResponseBuilder) {
    res.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
}

/// Behind HTTPS (as the public URL says), cookies never travel over plain HTTP.
fn secure(settings: &Settings) -> bool {
    settings.public_url.starts_with("https://")
}

fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_secs: i64,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish()
}

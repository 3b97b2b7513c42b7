//! The console's files, embedded in the binary (in debug builds read from
//! disk on each request, so an edit shows on reload). Each is sent with its
//! content type and a strong ETag, and revalidated on every load, so a new
//! release never mixes with cached files of the last one.

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "src/console/assets/"]
struct Assets;

/// `GET /assets/{path}`.
pub async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    serve(&req, &path)
}

/// Answer with one embedded file, or 404.
pub fn serve(req: &HttpRequest, path: &str) -> HttpResponse {
    let Some(file) = Assets::get(path) else {
        let mut res = HttpResponse::NotFound();
        super::secure(&mut res);
        return res.content_type("text/plain; charset=utf-8").body("not found");
    };
    let etag = EntityTag::new_strong(hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = req.get_header::<IfNoneMatch>().is_some_and(|inm| match inm {
        IfNoneMatch::Any => true,
        IfNoneMatch::Items(tags) => tags.iter().any(|t| t.weak_eq(&etag)),
    });
    let mut res = HttpResponse::build(if fresh {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    });
    super::secure(&mut res);
    res.insert_header(header::ETag(etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if fresh {
        return res.finish();
    }
    res.content_type(content_type(path, file.metadata.mimetype()))
        .body(file.data.into_owned())
}

/// Text types in UTF-8; JavaScript modules must be served as JavaScript.
fn content_type(path: &str, guessed: &str) -> String {
    if path.ends_with(".js") || path.ends_with(".mjs") {
        "text/javascript; charset=utf-8".into()
    } else if guessed.starts_with("text/") || guessed == "image/svg+xml" {
        format!("{guessed}; charset=utf-8")
    } else {
        guessed.to_string()
    }
}

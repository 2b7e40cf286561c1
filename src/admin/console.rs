//! The operator console's assets, embedded in the binary: one HTML page, one script, one
//! stylesheet. Nothing is fetched from elsewhere (no CDN, no font) and nothing is inline, so
//! the page works offline under the strict CSP of [`super::routes::CONTENT_SECURITY_POLICY`].
//!
//! The page holds no data: it reads the admin API with the token the operator types in, if
//! one is required.

use actix_web::{HttpResponse, web};

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");
const FAVICON_SVG: &str = include_str!("console/favicon.svg");

/// `GET /`: the console page.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

/// `GET /console/{asset}`: the script, the stylesheet or the icon; 404 for anything else.
pub async fn asset(name: web::Path<String>) -> HttpResponse {
    let (content_type, body) = match name.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        "favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok().content_type(content_type).body(body)
}

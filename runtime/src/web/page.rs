//! The page itself: `index.html` with `app.css` and `app.js` inlined (one request, no
//! asset paths that could shadow files of the served tree), and a Content-Security-Policy
//! that allows exactly those two inline blocks (by hash) and requests to this server.

use std::sync::LazyLock;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::files::Body;

const HTML: &str = include_str!("index.html");
const CSS: &str = include_str!("app.css");
const JS: &str = include_str!("app.js");

struct Page {
    html: Bytes,
    csp: String,
}

fn hash(s: &str) -> String {
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes())))
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let html = HTML.replacen("/*CSS*/", CSS, 1).replacen("/*JS*/", JS, 1);
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(JS),
        hash(CSS)
    );
    Page { html: Bytes::from(html), csp }
});

pub fn response(head: bool) -> Response<Body> {
    let p = &*PAGE;
    let body = if head { Bytes::new() } else { p.html.clone() };
    let mut r = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert("content-length", HeaderValue::from(p.html.len()));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if let Ok(v) = HeaderValue::from_str(&p.csp) {
        h.insert("content-security-policy", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_inlines_its_assets_and_allows_only_them() {
        let html = std::str::from_utf8(&PAGE.html).unwrap();
        assert!(!html.contains("/*CSS*/") && !html.contains("/*JS*/"), "placeholders replaced");
        assert!(html.contains(CSS) && html.contains(JS));
        assert!(!html.contains("http://") && !html.contains("https://"), "no external asset");
        assert!(PAGE.csp.contains(&hash(JS)) && PAGE.csp.contains(&hash(CSS)));
        // The hash must cover exactly what sits between the tags, or the browser refuses it.
        assert!(html.contains(&format!("<script>{JS}</script>")));
        assert!(html.contains(&format!("<style>{CSS}</style>")));
    }
}

//! HTTP caching of catalog reads (products, categories, search, suggestions,
//! recommendations): a strong ETag over the response body, `304 Not Modified` when the
//! client's `If-None-Match` has it, and `Cache-Control: public` with a short lifetime.
//! These responses are the same for everyone (nothing personal — no cart, no session —
//! is in them), so a shared cache may keep them; personal routes never pass through here.
//! The one exception, recommendations asked for by a signed-in shopper, sets its own
//! `Cache-Control: private` (and `Vary`), which this layer leaves as it is.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::Digest;

/// How long a shared cache may serve a catalog read without asking again.
pub const CATALOG_MAX_AGE_SECS: u32 = 60;

/// Largest body this layer buffers to hash; larger ones pass through without an ETag.
const MAX_HASHED_BYTES: usize = 4 * 1024 * 1024;

/// Whether `if_none_match` (a list of entity tags, or `*`) names `etag`. Weak tags match
/// too (`W/"…"`): If-None-Match uses the weak comparison.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// The middleware: tags successful `GET`/`HEAD` answers and answers `304` to a client
/// that has them.
pub async fn public_json(request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_HASHED_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let digest = sha2::Sha256::digest(&bytes);
    let etag: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{etag}\"");
    let value = HeaderValue::from_str(&etag).expect("hex");
    parts.headers.insert(header::ETAG, value.clone());
    // A handler that said otherwise (a personal answer: `private`) is not overruled.
    if !parts.headers.contains_key(header::CACHE_CONTROL) {
        parts.headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("public, max-age={CATALOG_MAX_AGE_SECS}"))
                .expect("ascii"),
        );
    }
    if if_none_match.is_some_and(|inm| etag_matches(&inm, &etag)) {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        let h = not_modified.headers_mut();
        h.insert(header::ETAG, value);
        if let Some(cc) = parts.headers.get(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, cc.clone());
        }
        return not_modified;
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        assert!(etag_matches("\"a\"", "\"a\""));
        assert!(etag_matches("\"b\", \"a\"", "\"a\""));
        assert!(etag_matches("W/\"a\"", "\"a\""));
        assert!(etag_matches("*", "\"a\""));
        assert!(!etag_matches("\"b\"", "\"a\""));
        assert!(!etag_matches("a", "\"a\""));
    }
}

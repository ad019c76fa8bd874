//! Product images: the admin's upload and removal (`/api/v1/admin/products/{sku}/images`),
//! and the public files (`/images/{hash}-{width}.{ext}`), content-addressed, so cached
//! for a year as immutable, with a strong ETag and `304` on `If-None-Match`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::ProductOut;
use crate::media::{self, MAX_IMAGE_BYTES};

/// Admin routes: upload and remove a product's images.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(remove))
        // The image's own limit; a larger body is refused before it is read.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_IMAGE_BYTES + 1))
}

/// The image files (not API operations: static content).
pub fn files_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route("/images/{name}", axum::routing::get(file))
}

/// The `{sku}` path parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ImagePath {
    /// The product's SKU
    pub sku: String,
}

/// The `{sku}` and `{hash}` path parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ImageHashPath {
    /// The product's SKU
    pub sku: String,
    /// The image's SHA-256, hex
    #[param(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
}

/// Adds an image to a product: the raw bytes of a JPEG, PNG or WebP file (told by its
/// first bytes, whatever the `Content-Type`; SVG and anything else are refused), at most
/// 10 MiB and 12,000 pixels a side (40 megapixels in all). Stored by its SHA-256 and on
/// disk before the answer; the product's `images` gains its 480-pixel URL (160 and 1200
/// are there too, by the same name with another width).
#[utoipa::path(
    post,
    path = "/api/v1/admin/products/{sku}/images",
    tag = "admin",
    params(ImagePath),
    request_body(content = Vec<u8>, description = "The image file", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "The product with the image", body = ProductOut),
        (status = 404, description = "No such product", body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "Over 10 MiB", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "Not JPEG, PNG or WebP (`unsupported_image`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Too many pixels, does not decode, or the product has 20 images (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn upload(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let view = s.engine.add_product_image(&sku, body.to_vec()).await?;
    Ok((StatusCode::CREATED, axum::Json(ProductOut::from(view))))
}

/// Removes an image from a product (the file stays: another product may show it).
#[utoipa::path(
    delete,
    path = "/api/v1/admin/products/{sku}/images/{hash}",
    tag = "admin",
    params(ImageHashPath),
    responses(
        (status = 200, description = "The product without the image", body = ProductOut),
        (status = 404, description = "No such product, or the image is not the product's", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn remove(
    State(s): State<AppState>,
    Path((sku, hash)): Path<(String, String)>,
) -> Result<axum::Json<ProductOut>, ApiError> {
    Ok(axum::Json(ProductOut::from(
        s.engine.remove_product_image(&sku, &hash).await?,
    )))
}

/// An image file.
async fn file(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some((hash, width, kind)) = media::parse_variant(&name) else {
        return Err(crate::engine::EngineError::NotFound("image").into());
    };
    // Content-addressed: the name is the content, so the ETag is the name.
    let etag = format!("\"{hash}-{width}\"");
    let cached = |status: StatusCode| {
        let mut r = status.into_response();
        let h = r.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        r
    };
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| super::caching::etag_matches(v, &etag));
    if matches && s.engine.has_image(hash) {
        return Ok(cached(StatusCode::NOT_MODIFIED));
    }
    let bytes = s
        .engine
        .image_file(hash, width, kind)
        .await?
        .ok_or(crate::engine::EngineError::NotFound("image"))?;
    let mut r = cached(StatusCode::OK);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.mime()));
    *r.body_mut() = axum::body::Body::from(bytes);
    Ok(r)
}

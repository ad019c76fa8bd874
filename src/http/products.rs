//! Products: public get (a view feeds "viewed together"), admin create, replace, delete
//! and the bulk imports of products and past orders.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::import::parse_items;

use super::AppState;
use super::error::{ApiError, Code};
use super::extract::{ImportBody, Json};
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::{ProductOut, SkuPath, int};
use crate::domain::product::{AttrValue, ProductDraft};
use std::collections::BTreeMap;

/// Public routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_product))
}

/// Admin routes (behind the token).
pub fn admin_router() -> OpenApiRouter<AppState> {
    let imports = OpenApiRouter::new()
        .routes(routes!(import))
        .routes(routes!(import_orders))
        .layer(axum::extract::DefaultBodyLimit::max(
            super::IMPORT_BODY_LIMIT_BYTES,
        ));
    OpenApiRouter::new()
        .routes(routes!(create_product))
        .routes(routes!(put_product, delete_product))
        .merge(imports)
}

/// `POST /admin/products/import`: a JSON array or NDJSON; bad records are reported by line
/// and the rest imported.
#[utoipa::path(
    post,
    path = "/api/v1/admin/products/import",
    tag = "admin",
    request_body(
        description = "Products as a JSON array of objects or NDJSON, up to 100,000: records shaped as for create, or Icecat or Algolia (BestBuy) records; each is checked and refused by line",
        content(
            (Vec<Object> = "application/json"),
            (String = "application/x-ndjson"),
        ),
    ),
    responses((status = 200, description = "What was imported and what was refused, by line", body = ImportReportOut)),
)]
async fn import(
    State(s): State<AppState>,
    ImportBody(body): ImportBody,
) -> Result<axum::Json<ImportReportOut>, ApiError> {
    let items =
        parse_items(&body, 0).map_err(|e| ApiError::new(Code::InvalidRequest, e.to_string()))?;
    if items.len() > super::IMPORT_MAX_PRODUCTS {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("at most {} products per call", super::IMPORT_MAX_PRODUCTS),
        ));
    }
    let report = s.engine.import_products(items, |_| {}).await?;
    Ok(axum::Json((&report).into()))
}

/// `?cart_id=` on a product view: the session it belongs to.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewParams {
    /// The viewer's cart, as the session of the view (feeds "viewed together").
    cart_id: Option<String>,
}

/// A product with its available stock.
#[utoipa::path(
    get,
    path = "/api/v1/products/{sku}",
    tag = "catalog",
    params(
        SkuPath,
        ViewParams,
        ("X-Session-Id" = Option<String>, Header, description = "The viewer's session (feeds \"viewed together\")"),
    ),
    responses(
        (status = 200, description = "The product", body = ProductOut),
        (status = 404, description = "No such product (`not_found`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn get_product(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    Query(view): Query<ViewParams>,
    headers: axum::http::HeaderMap,
) -> Result<axum::Json<ProductOut>, ApiError> {
    let product = s.engine.product(&sku).await?;
    // A view in a session (header or cart) feeds "viewed together".
    let session = headers
        .get("x-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(view.cart_id);
    if let Some(session) = session {
        s.engine.record_view(&session, product.product.sku.as_str());
    }
    Ok(axum::Json(product.into()))
}

/// Past orders from another system, kept as history (status `delivered`): they teach
/// recommendations; no stock change, no email. Answers once the orders are durable and
/// the recommender has learned them (it waits up to a minute for that).
#[utoipa::path(
    post,
    path = "/api/v1/admin/orders/import",
    tag = "admin",
    request_body(
        description = "`{\"id\", \"created_at\", \"email\"?, \"items\": [{\"sku\", \"quantity\", \"unit_price\"?}]}` records as a JSON array or NDJSON",
        content(
            (Vec<Object> = "application/json"),
            (String = "application/x-ndjson"),
        ),
    ),
    responses((status = 200, description = "What was imported and what was refused, by line", body = ImportReportOut)),
)]
async fn import_orders(
    State(s): State<AppState>,
    ImportBody(body): ImportBody,
) -> Result<axum::Json<ImportReportOut>, ApiError> {
    let records = crate::domain::history::parse_past_orders(&body)
        .map_err(|e| ApiError::new(Code::InvalidRequest, e.to_string()))?;
    if records.len() > super::IMPORT_MAX_PRODUCTS {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("at most {} orders per call", super::IMPORT_MAX_PRODUCTS),
        ));
    }
    let report = s.engine.import_orders(records, |_| {}).await?;
    Ok(axum::Json((&report).into()))
}

/// Creates a product.
#[utoipa::path(
    post,
    path = "/api/v1/admin/products",
    tag = "admin",
    request_body = ProductIn,
    responses(
        (status = 201, description = "Created; `Location` names it", body = ProductOut,
            headers(("Location" = String, description = "The product's URL"))),
        (status = 409, description = "The SKU is taken (`already_exists`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is invalid (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn create_product(
    State(s): State<AppState>,
    Json(body): Json<ProductIn>,
) -> Result<impl IntoResponse, ApiError> {
    let Some(sku) = body.sku.clone() else {
        return Err(ApiError::new(Code::ValidationFailed, "sku: is required").with("field", "sku"));
    };
    let view = s.engine.create_product(&sku, body.into_draft()).await?;
    let location = format!("/api/v1/products/{}", view.product.sku);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(ProductOut::from(view)),
    ))
}

/// Creates or replaces a product.
#[utoipa::path(
    put,
    path = "/api/v1/admin/products/{sku}",
    tag = "admin",
    params(SkuPath),
    request_body = ProductIn,
    responses(
        (status = 200, description = "Replaced", body = ProductOut),
        (status = 201, description = "Created", body = ProductOut),
        (status = 422, description = "A field is invalid (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn put_product(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    Json(body): Json<ProductIn>,
) -> Result<impl IntoResponse, ApiError> {
    if body.sku.as_deref().is_some_and(|b| b != sku) {
        return Err(ApiError::new(
            Code::ValidationFailed,
            "sku: must match the SKU in the path",
        )
        .with("field", "sku"));
    }
    let (view, created) = s.engine.put_product(&sku, body.into_draft()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(ProductOut::from(view))))
}

/// Deletes a product (its stock record stays).
#[utoipa::path(
    delete,
    path = "/api/v1/admin/products/{sku}",
    tag = "admin",
    params(SkuPath),
    responses((status = 204, description = "Deleted")),
)]
async fn delete_product(
    State(s): State<AppState>,
    Path(sku): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.engine.delete_product(&sku).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An attribute value on the wire: a string or a list of strings.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AttrIn {
    /// `"brand": "Orbital"`.
    One(String),
    /// `"colors": ["white"]`.
    Many(Vec<String>),
}

/// A product in a create/replace request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    /// Required on create; on replace, if present, must equal the path's SKU.
    pub sku: Option<String>,
    /// Display name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Category path.
    #[serde(default)]
    pub category: String,
    /// Price in minor units.
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "int::de")]
    pub price: i64,
    /// Must be the store's currency if given.
    pub currency: Option<String>,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttrIn>,
    /// Image URLs.
    #[serde(default)]
    pub images: Vec<String>,
    /// Shipping weight of one unit in grams (weight-bound shipping methods use it).
    #[serde(default, deserialize_with = "int::opt")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 1000000)]
    pub weight_grams: Option<i64>,
    /// Tax class matched against the tax table (default `standard`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub tax_class: Option<String>,
    /// Read-only; accepted so that a fetched product can be sent back, and ignored.
    #[serde(default, rename = "available")]
    #[schema(ignore)]
    pub _available: Option<serde::de::IgnoredAny>,
    /// Read-only; ignored.
    #[serde(default, rename = "created_at")]
    #[schema(ignore)]
    pub _created_at: Option<serde::de::IgnoredAny>,
    /// Read-only; ignored.
    #[serde(default, rename = "updated_at")]
    #[schema(ignore)]
    pub _updated_at: Option<serde::de::IgnoredAny>,
}

impl ProductIn {
    /// The domain draft.
    pub fn into_draft(self) -> ProductDraft {
        ProductDraft {
            name: self.name,
            description: self.description,
            category: self.category,
            price: self.price,
            currency: self.currency,
            attributes: self
                .attributes
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        AttrIn::One(s) => AttrValue::One(s),
                        AttrIn::Many(l) => AttrValue::Many(l),
                    };
                    (k, v)
                })
                .collect(),
            images: self.images,
            weight_grams: self.weight_grams,
            tax_class: self.tax_class,
        }
    }
}

/// A refused record of an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportFailureOut {
    /// Its line (NDJSON) or position (array), from 1.
    pub line: usize,
    /// Why it was refused.
    pub error: String,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReportOut {
    /// Records stored.
    pub imported: usize,
    /// Records refused, by line.
    pub failed: Vec<ImportFailureOut>,
}

impl From<&crate::engine::ImportReport> for ImportReportOut {
    fn from(r: &crate::engine::ImportReport) -> Self {
        ImportReportOut {
            imported: r.imported,
            failed: r
                .failed
                .iter()
                .map(|(line, error)| ImportFailureOut {
                    line: *line,
                    error: error.clone(),
                })
                .collect(),
        }
    }
}

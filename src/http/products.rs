//! Products: public get, admin create/replace/delete.

use axum::Router;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::import::parse_items;
use crate::engine::SearchRequest;
use crate::search::CategoryNode;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};

use super::AppState;
use super::dto::{ProductIn, ProductOut};
use super::error::{ApiError, Code};
use super::extract::Json;

/// Public routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products", get(search))
        .route("/api/v1/products/{sku}", get(get_product))
        .route(
            "/api/v1/products/{sku}/recommendations",
            get(recommendations),
        )
        .route("/api/v1/categories", get(categories))
        .route("/api/v1/search/suggest", get(suggest))
}

/// Admin routes (behind the token).
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/products", post(create_product))
        .route(
            "/api/v1/admin/products/{sku}",
            put(put_product).delete(delete_product),
        )
        .route(
            "/api/v1/admin/products/import",
            post(import).layer(axum::extract::DefaultBodyLimit::max(
                super::IMPORT_BODY_LIMIT_BYTES,
            )),
        )
        .route(
            "/api/v1/admin/orders/import",
            post(import_orders).layer(axum::extract::DefaultBodyLimit::max(
                super::IMPORT_BODY_LIMIT_BYTES,
            )),
        )
}

/// Query string of `GET /products`. Unknown parameters are refused (400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    q: Option<String>,
    category: Option<String>,
    brand: Option<String>,
    min_price: Option<i64>,
    max_price: Option<i64>,
    in_stock: Option<bool>,
    sort: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn search(
    State(s): State<AppState>,
    Query(p): Query<SearchParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let page = s
        .engine
        .search(SearchRequest {
            q: p.q,
            category: p.category,
            brand: p.brand,
            min_price: p.min_price,
            max_price: p.max_price,
            in_stock: p.in_stock,
            sort: p.sort,
            limit: p.limit,
            cursor: p.cursor,
            ..Default::default()
        })
        .await?;
    let items: Vec<ProductOut> = page.items.into_iter().map(ProductOut::from).collect();
    Ok(axum::Json(json!({
        "items": items,
        "total": page.total,
        "facets": {
            "category": page.categories.iter().map(|(v, c)| json!({"value": v, "count": c})).collect::<Vec<_>>(),
            "price": page.prices.iter().map(|b| json!({"min": b.min, "max": b.max, "count": b.count})).collect::<Vec<_>>(),
            "brand": page.brands.iter().map(|(v, c)| json!({"value": v, "count": c})).collect::<Vec<_>>(),
        },
        "next_cursor": page.next_cursor,
    })))
}

fn category_json(n: &CategoryNode) -> Value {
    json!({"path": n.path, "name": n.name, "count": n.count, "children": n.children.iter().map(category_json).collect::<Vec<_>>()})
}

async fn categories(State(s): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let tree = s.engine.categories().await?;
    Ok(axum::Json(
        json!({"items": tree.iter().map(category_json).collect::<Vec<_>>()}),
    ))
}

/// Query string of `GET /search/suggest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestParams {
    q: Option<String>,
    limit: Option<i64>,
}

async fn suggest(
    State(s): State<AppState>,
    Query(p): Query<SuggestParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let got = s
        .engine
        .suggest(p.q.as_deref().unwrap_or(""), p.limit)
        .await?;
    let list: Vec<Value> = got
        .into_iter()
        .map(|sg| match sg.sku {
            Some(sku) => json!({"text": sg.text, "sku": sku}),
            None => json!({"text": sg.text}),
        })
        .collect();
    Ok(axum::Json(json!({"suggestions": list})))
}

/// `POST /admin/products/import`: a JSON array or NDJSON; bad records are reported by line
/// and the rest imported.
async fn import(State(s): State<AppState>, body: String) -> Result<axum::Json<Value>, ApiError> {
    let items = parse_items(&body, 0).map_err(|e| ApiError::new(Code::InvalidRequest, e))?;
    if items.len() > super::IMPORT_MAX_PRODUCTS {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("at most {} products per call", super::IMPORT_MAX_PRODUCTS),
        ));
    }
    let report = s.engine.import_products(items, |_| {}).await?;
    Ok(report_json(&report))
}

/// `{"imported": N, "failed": [{"line", "error"}]}` for every import route.
fn report_json(report: &crate::engine::ImportReport) -> axum::Json<Value> {
    let failed: Vec<Value> = report
        .failed
        .iter()
        .map(|(line, e)| json!({"line": line, "error": e}))
        .collect();
    axum::Json(json!({"imported": report.imported, "failed": failed}))
}

/// `?cart_id=` on a product view: the session it belongs to.
#[derive(Debug, Deserialize)]
pub struct ViewParams {
    cart_id: Option<String>,
}

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

/// `?limit=` of the recommendations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendParams {
    limit: Option<usize>,
}

async fn recommendations(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    Query(p): Query<RecommendParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let r = s
        .engine
        .recommendations(&sku, p.limit.unwrap_or(10))
        .await?;
    let items: Vec<ProductOut> = r.items.into_iter().map(ProductOut::from).collect();
    Ok(axum::Json(json!({"items": items, "strategy": r.strategy})))
}

async fn import_orders(
    State(s): State<AppState>,
    body: String,
) -> Result<axum::Json<Value>, ApiError> {
    let records = crate::domain::history::parse_past_orders(&body)
        .map_err(|e| ApiError::new(Code::InvalidRequest, e))?;
    if records.len() > super::IMPORT_MAX_PRODUCTS {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("at most {} orders per call", super::IMPORT_MAX_PRODUCTS),
        ));
    }
    let report = s.engine.import_orders(records, |_| {}).await?;
    Ok(report_json(&report))
}

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

async fn delete_product(
    State(s): State<AppState>,
    Path(sku): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.engine.delete_product(&sku).await?;
    Ok(StatusCode::NO_CONTENT)
}

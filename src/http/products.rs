//! Products: public get, admin create/replace/delete.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::import::parse_items;
use crate::engine::SearchRequest;

use super::AppState;
use super::dto::{
    CategoriesOut, CategoryOut, FacetValueOut, FacetsOut, ImportReportOut, PriceBucketOut,
    ProductIn, ProductOut, RecommendationsOut, SearchPageOut, SkuPath, SuggestionOut,
    SuggestionsOut,
};
use super::error::{ApiError, Code};
use super::extract::{ImportBody, Json};
use super::openapi::{PROBLEM_JSON, Problem};

/// Public routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(get_product))
        .routes(routes!(recommendations))
        .routes(routes!(categories))
        .routes(routes!(suggest))
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

/// Query string of `GET /products`. Unknown parameters are refused (400).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Full text over name, description, category, brand and attributes (typo tolerant;
    /// at most 512 characters).
    q: Option<String>,
    /// A category path: matches it and everything under it.
    category: Option<String>,
    /// Only this brand.
    brand: Option<String>,
    /// Lowest price (minor units).
    min_price: Option<i64>,
    /// Highest price (minor units).
    max_price: Option<i64>,
    /// Only products that can be bought now.
    in_stock: Option<bool>,
    /// `relevance` (the default with `q`), `price_asc`, `price_desc`, `newest`.
    sort: Option<String>,
    /// Results per page, 1–100 (default 20).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Searches the catalog, with facets for the current query and filters.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "catalog",
    params(SearchParams),
    responses((status = 200, description = "One page of results with facets", body = SearchPageOut)),
)]
async fn search(
    State(s): State<AppState>,
    Query(p): Query<SearchParams>,
) -> Result<axum::Json<SearchPageOut>, ApiError> {
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
    let values = |v: Vec<(String, u64)>| -> Vec<FacetValueOut> {
        v.into_iter()
            .map(|(value, count)| FacetValueOut { value, count })
            .collect()
    };
    Ok(axum::Json(SearchPageOut {
        items: page.items.into_iter().map(ProductOut::from).collect(),
        total: page.total as u64,
        facets: FacetsOut {
            category: values(page.categories),
            price: page
                .prices
                .iter()
                .map(|b| PriceBucketOut {
                    min: b.min,
                    max: b.max,
                    count: b.count,
                })
                .collect(),
            brand: values(page.brands),
        },
        next_cursor: page.next_cursor,
    }))
}

/// The category tree with product counts (each node counts its whole subtree).
#[utoipa::path(
    get,
    path = "/api/v1/categories",
    tag = "catalog",
    responses((status = 200, description = "The category tree", body = CategoriesOut)),
)]
async fn categories(State(s): State<AppState>) -> Result<axum::Json<CategoriesOut>, ApiError> {
    let tree = s.engine.categories().await?;
    Ok(axum::Json(CategoriesOut {
        items: tree.iter().map(CategoryOut::from).collect(),
    }))
}

/// Query string of `GET /search/suggest`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SuggestParams {
    /// What the shopper has typed so far.
    q: Option<String>,
    /// Most completions, 1–50 (default 10).
    limit: Option<i64>,
}

/// Completions for a prefix: frequent name words first, then product names.
#[utoipa::path(
    get,
    path = "/api/v1/search/suggest",
    tag = "catalog",
    params(SuggestParams),
    responses((status = 200, description = "Completions", body = SuggestionsOut)),
)]
async fn suggest(
    State(s): State<AppState>,
    Query(p): Query<SuggestParams>,
) -> Result<axum::Json<SuggestionsOut>, ApiError> {
    let got = s
        .engine
        .suggest(p.q.as_deref().unwrap_or(""), p.limit)
        .await?;
    Ok(axum::Json(SuggestionsOut {
        suggestions: got
            .into_iter()
            .map(|sg| SuggestionOut {
                text: sg.text,
                sku: sg.sku,
            })
            .collect(),
    }))
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
    let items = parse_items(&body, 0).map_err(|e| ApiError::new(Code::InvalidRequest, e))?;
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

/// `?limit=` of the recommendations.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendParams {
    /// How many, 1–50 (default 10).
    limit: Option<usize>,
}

/// Products related to this one: bought together, viewed together, then fallbacks.
#[utoipa::path(
    get,
    path = "/api/v1/products/{sku}/recommendations",
    tag = "catalog",
    params(SkuPath, RecommendParams),
    responses(
        (status = 200, description = "Related products and how they were found", body = RecommendationsOut),
        (status = 404, description = "No such product (`not_found`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn recommendations(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    Query(p): Query<RecommendParams>,
) -> Result<axum::Json<RecommendationsOut>, ApiError> {
    let r = s
        .engine
        .recommendations(&sku, p.limit.unwrap_or(10))
        .await?;
    Ok(axum::Json(RecommendationsOut {
        items: r.items.into_iter().map(ProductOut::from).collect(),
        strategy: r.strategy.to_owned(),
    }))
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
        .map_err(|e| ApiError::new(Code::InvalidRequest, e))?;
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

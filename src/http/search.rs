//! Finding products: search with facets, the category tree, suggestions while typing, and
//! a product's recommendations.

use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Shopper;
use super::error::ApiError;
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::{ProductOut, SkuPath};
use crate::engine::{CategoryNode, SearchRequest};

/// Public routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(recommendations))
        .routes(routes!(categories))
        .routes(routes!(suggest))
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

/// `?limit=` of the recommendations.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendParams {
    /// How many, 1–50 (default 10).
    pub limit: Option<usize>,
}

/// Products related to this one: bought together, viewed together, then fallbacks. For a
/// signed-in shopper (a session token or cookie), the products they bought before rank
/// higher among those bought with this one; that answer is `Cache-Control: private`.
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
    Shopper(shopper): Shopper,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let r = s
        .engine
        .recommendations_for(&sku, p.limit.unwrap_or(10), shopper.as_ref())
        .await?;
    let mut response = axum::Json(RecommendationsOut::from(r)).into_response();
    // The answer depends on who asks: a shared cache keys it on the credentials, and a
    // personal one is never shared (the caching layer keeps a `Cache-Control` set here).
    let headers = response.headers_mut();
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Authorization, Cookie"),
    );
    if shopper.is_some() {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    Ok(response)
}

/// One value of a facet with how many results have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetValueOut {
    /// The value (a category path, a brand).
    pub value: String,
    /// Matching products with it.
    pub count: u64,
}

/// A price range with how many results fall in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceBucketOut {
    /// Lowest price in the range (minor units, inclusive).
    pub min: u64,
    /// Upper end (exclusive); `null` for the open-ended last range.
    pub max: Option<u64>,
    /// Matching products in it.
    pub count: u64,
}

/// Facets of a search, for the current query and filters.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetsOut {
    /// Counts per child category of the filtered category (or of the root).
    pub category: Vec<FacetValueOut>,
    /// Counts per price range.
    pub price: Vec<PriceBucketOut>,
    /// Counts per brand, most first.
    pub brand: Vec<FacetValueOut>,
}

/// `GET /products`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPageOut {
    /// This page of results.
    pub items: Vec<ProductOut>,
    /// All results of the query.
    pub total: u64,
    /// Facet counts.
    pub facets: FacetsOut,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A node of the category tree.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryOut {
    /// Full path, e.g. `Space Suits/Helmets`.
    pub path: String,
    /// Last segment of the path.
    pub name: String,
    /// Products in this category and everything under it.
    pub count: u64,
    /// Subcategories.
    #[schema(no_recursion)]
    pub children: Vec<CategoryOut>,
}

impl From<&CategoryNode> for CategoryOut {
    fn from(n: &CategoryNode) -> Self {
        CategoryOut {
            path: n.path.clone(),
            name: n.name.clone(),
            count: n.count,
            children: n.children.iter().map(CategoryOut::from).collect(),
        }
    }
}

/// `GET /categories`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoriesOut {
    /// Top-level categories.
    pub items: Vec<CategoryOut>,
}

/// One completion.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionOut {
    /// The completed text (a word or a product name).
    pub text: String,
    /// The product, when the completion is a product name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
}

/// `GET /search/suggest`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionsOut {
    /// Completions, best first.
    pub suggestions: Vec<SuggestionOut>,
}

/// `GET /products/{sku}/recommendations` and `GET /carts/{id}/recommendations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationsOut {
    /// Related products, best first (in stock, never the product itself, never one
    /// already in the cart).
    pub items: Vec<ProductOut>,
    /// Where the first came from: `bought_together`, `similar` (a product named like
    /// this one), `viewed_together`, `category_bestsellers`, `bestsellers` or `category`;
    /// the rest of the list may be filled from the later ones.
    pub strategy: String,
}

impl From<crate::engine::Recommendations> for RecommendationsOut {
    fn from(r: crate::engine::Recommendations) -> Self {
        RecommendationsOut {
            items: r.items.into_iter().map(ProductOut::from).collect(),
            strategy: r.strategy.to_owned(),
        }
    }
}

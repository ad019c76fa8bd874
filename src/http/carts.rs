//! Carts: create, read, add/set/remove lines, record the email, address and shipping
//! method, enter a promotion code, list the shipping methods.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Shopper;
use super::error::ApiError;
use super::extract::Json;
use super::openapi::{PROBLEM_JSON, Problem};
use super::orders::AddressIn;
use super::wire::{BreakdownOut, LineOut, int, rfc3339};
use crate::domain::cart::{CartDetails, CartStatus};
use crate::domain::order::OrderLine;
use crate::engine::{CartView, EngineError, ShippingOption};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Shopper routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cart))
        .routes(routes!(get_cart, patch_cart))
        .routes(routes!(add_item))
        .routes(routes!(set_quantity, remove_item))
        .routes(routes!(apply_promotion))
        .routes(routes!(remove_promotion))
        .routes(routes!(shipping_methods))
        .routes(routes!(cart_recommendations))
}

type CartResult = Result<axum::Json<CartOut>, ApiError>;

/// Creates an empty cart with a fresh random id.
#[utoipa::path(
    post,
    path = "/api/v1/carts",
    tag = "carts",
    responses((status = 201, description = "The new cart; `Location` names it", body = CartOut,
        headers(("Location" = String, description = "The cart's URL")))),
)]
async fn create_cart(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let view = s.engine.create_cart().await?;
    let location = format!("/api/v1/carts/{}", view.cart.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(CartOut::from(view)),
    ))
}

/// A cart, priced from the catalog.
#[utoipa::path(
    get,
    path = "/api/v1/carts/{id}",
    tag = "carts",
    params(CartPath),
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 404, description = "Unknown or expired cart (`not_found`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn get_cart(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(s.engine.cart(&id).await?.into()))
}

/// What goes with the products in the cart: bought with them, the latest added counting
/// most, never one already in it; free slots filled as for a product's recommendations
/// (best sellers of the category of the product added last, then overall). An empty cart
/// gets best sellers. For a signed-in shopper, the products they bought before rank
/// higher, as on a product's recommendations.
#[utoipa::path(
    get,
    path = "/api/v1/carts/{id}/recommendations",
    tag = "carts",
    params(CartPath, super::search::RecommendParams),
    responses(
        (status = 200, description = "Products to offer with the cart and how the first was found", body = super::search::RecommendationsOut),
        (status = 404, description = "Unknown or expired cart (`not_found`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn cart_recommendations(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
    Query(p): Query<super::search::RecommendParams>,
) -> Result<axum::Json<super::search::RecommendationsOut>, ApiError> {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    let r = s
        .engine
        .cart_recommendations(&id, p.limit.unwrap_or(10), viewer.as_ref())
        .await?;
    Ok(axum::Json(r.into()))
}

/// Adds to a line's quantity (creating the line).
#[utoipa::path(
    post,
    path = "/api/v1/carts/{id}/items",
    tag = "carts",
    params(CartPath),
    request_body = AddItemIn,
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 404, description = "Unknown cart (`not_found`) or SKU (`unknown_sku`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Quantity below 1 or a line over the maximum (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn add_item(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
    Json(body): Json<AddItemIn>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(
        s.engine
            .cart_add_item(&id, &body.sku, body.quantity)
            .await?
            .into(),
    ))
}

/// Sets a line's quantity; 0 removes the line.
#[utoipa::path(
    put,
    path = "/api/v1/carts/{id}/items/{sku}",
    tag = "carts",
    params(CartLinePath),
    request_body = SetQuantityIn,
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Quantity out of range (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn set_quantity(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path((id, sku)): Path<(String, String)>,
    Json(body): Json<SetQuantityIn>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(
        s.engine
            .cart_set_quantity(&id, &sku, body.quantity)
            .await?
            .into(),
    ))
}

/// Removes a line.
#[utoipa::path(
    delete,
    path = "/api/v1/carts/{id}/items/{sku}",
    tag = "carts",
    params(CartLinePath),
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn remove_item(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path((id, sku)): Path<(String, String)>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(
        s.engine.cart_remove_item(&id, &sku).await?.into(),
    ))
}

/// Records the shopper's email (abandoned-cart reminders use it), shipping address
/// (shipping methods and tax depend on it) or shipping method. Fields left out are left
/// as they are; `"shipping_method": ""` clears the method.
#[utoipa::path(
    patch,
    path = "/api/v1/carts/{id}",
    tag = "carts",
    params(CartPath),
    request_body = PatchCartIn,
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field breaks its rule (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn patch_cart(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
    Json(body): Json<PatchCartIn>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    if body.email.is_none() && body.shipping_address.is_none() && body.shipping_method.is_none() {
        return Err(crate::domain::Invalid::new(
            "email",
            "give at least one of email, shipping_address, shipping_method",
        )
        .into());
    }
    let details = CartDetails {
        email: body.email,
        shipping_address: body.shipping_address.map(Into::into),
        shipping_method: body.shipping_method,
    };
    Ok(axum::Json(
        s.engine.cart_set_details(&id, &details).await?.into(),
    ))
}

/// Enters a promotion code on the cart (one code per cart: it replaces any other).
/// Automatic promotions need no code and apply whenever they match.
#[utoipa::path(
    post,
    path = "/api/v1/carts/{id}/promotions",
    tag = "carts",
    params(CartPath),
    request_body = PromotionCodeIn,
    responses(
        (status = 200, description = "The cart, priced with the code", body = CartOut),
        (status = 404, description = "No such cart", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`promotion_unknown`, `promotion_expired` (not valid now), `promotion_not_applicable` (below its minimum, nothing in the cart covered), `promotion_exhausted`", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn apply_promotion(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
    Json(body): Json<PromotionCodeIn>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(
        s.engine.cart_apply_promotion(&id, &body.code).await?.into(),
    ))
}

/// Removes the promotion code from the cart.
#[utoipa::path(
    delete,
    path = "/api/v1/carts/{id}/promotions/{code}",
    tag = "carts",
    params(CartPromotionPath),
    responses(
        (status = 200, description = "The cart, priced without the code", body = CartOut),
        (status = 404, description = "No such cart, or the code is not on it", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn remove_promotion(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path((id, code)): Path<(String, String)>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(
        s.engine.cart_remove_promotion(&id, &code).await?.into(),
    ))
}

/// The shipping methods that ship this cart (its weight) to its address — or to
/// `country` if given — with what each would charge, cheapest first. Empty when no
/// address is known or no zone covers it.
#[utoipa::path(
    get,
    path = "/api/v1/carts/{id}/shipping-methods",
    tag = "carts",
    params(CartPath, ShippingMethodsParams),
    responses(
        (status = 200, description = "The methods that apply", body = ShippingMethodsOut),
        (status = 404, description = "No such cart", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`country` is not a two-letter code", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn shipping_methods(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
    axum::extract::Query(p): axum::extract::Query<ShippingMethodsParams>,
) -> Result<axum::Json<ShippingMethodsOut>, ApiError> {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    let options = s
        .engine
        .cart_shipping_methods(&id, p.country.as_deref())
        .await?;
    Ok(axum::Json(ShippingMethodsOut {
        items: options.into_iter().map(ShippingMethodOut::from).collect(),
    }))
}

/// `GET /carts/{id}/shipping-methods` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShippingMethodsParams {
    /// ISO 3166-1 alpha-2 country to list for, instead of the cart's address.
    #[param(pattern = "^[A-Za-z]{2}$")]
    pub country: Option<String>,
}

/// A shipping method that applies, with its charge for this cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShippingMethodOut {
    id: String,
    name: String,
    /// Its flat rate.
    rate: u64,
    /// Free when the lines cost at least this after discounts.
    free_above: Option<u64>,
    /// What it would charge this cart.
    charge: u64,
}

impl From<ShippingOption> for ShippingMethodOut {
    fn from(o: ShippingOption) -> Self {
        ShippingMethodOut {
            id: o.method.id,
            name: o.method.name,
            rate: o.method.rate,
            free_above: o.method.free_above,
            charge: o.charge,
        }
    }
}

/// The shipping methods that apply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShippingMethodsOut {
    /// Cheapest first.
    items: Vec<ShippingMethodOut>,
}

/// `POST /carts/{id}/promotions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionCodeIn {
    /// The code (case does not matter).
    pub code: String,
}

/// The `{id}` and `{code}` path parameters of a cart's promotion code.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CartPromotionPath {
    /// The cart's id
    pub id: String,
    /// The code
    pub code: String,
}

/// The problem code an [`EngineError`] would answer with, for a note in a view.
fn problem_code(e: EngineError) -> &'static str {
    ApiError::from(e).code.as_str()
}

/// A cart on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartOut {
    id: String,
    items: Vec<LineOut>,
    subtotal: u64,
    /// What the shopper would pay now (`breakdown.total`).
    total: u64,
    currency: String,
    item_count: u64,
    /// The bill as it stands.
    breakdown: BreakdownOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// The promotion code entered.
    #[serde(skip_serializing_if = "Option::is_none")]
    promotion_code: Option<String>,
    /// Why the code is not applied now, as a problem code (`promotion_expired`,
    /// `promotion_not_applicable`, `promotion_exhausted`, `promotion_unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    promotion_problem: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shipping_address: Option<AddressIn>,
    /// The shipping method chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    shipping_method: Option<String>,
    /// Why shipping is not charged as chosen, as a problem code
    /// (`shipping_method_required`, `shipping_method_not_applicable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    shipping_problem: Option<&'static str>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// `open` or `checked_out`.
    #[schema(value_type = String)]
    status: &'static str,
}

impl From<CartView> for CartOut {
    fn from(v: CartView) -> Self {
        let c = v.cart;
        CartOut {
            id: c.id,
            items: v
                .priced
                .lines
                .into_iter()
                .map(|l| LineOut::from(&OrderLine::from(l)))
                .collect(),
            subtotal: v.priced.subtotal,
            total: v.breakdown.total,
            currency: v.currency,
            item_count: v.priced.item_count,
            breakdown: (&v.breakdown).into(),
            email: c.email,
            promotion_code: c.promotion_code,
            promotion_problem: v.code_problem.map(|p| problem_code(p.into())),
            shipping_address: c.shipping_address.as_ref().map(Into::into),
            shipping_method: c.shipping_method,
            shipping_problem: v
                .shipping_problem
                .map(|p| problem_code(crate::actors::cart::CartFailure::Shipping(p).into())),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            expires_at: rfc3339(c.expires_at),
            status: match c.status {
                CartStatus::Open => "open",
                CartStatus::CheckedOut => "checked_out",
            },
        }
    }
}

/// `POST /carts/{id}/items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemIn {
    /// What to add.
    pub sku: String,
    /// How many (at least 1; a line holds at most 999).
    #[schema(minimum = 1, maximum = 999)]
    #[serde(deserialize_with = "int::de")]
    pub quantity: i64,
}

/// `PUT /carts/{id}/items/{sku}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuantityIn {
    /// New quantity; 0 removes the line.
    #[schema(minimum = 0, maximum = 999)]
    #[serde(deserialize_with = "int::de")]
    pub quantity: i64,
}

/// `PATCH /carts/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCartIn {
    /// The shopper's email.
    #[serde(default)]
    #[schema(format = Email)]
    pub email: Option<String>,
    /// Where it will go.
    #[serde(default)]
    pub shipping_address: Option<AddressIn>,
    /// A shipping method's id (`""` clears it).
    #[serde(default)]
    pub shipping_method: Option<String>,
}

/// The `{id}` path parameter of the cart routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CartPath {
    /// The cart's id
    pub id: String,
}

/// The `{id}` and `{sku}` path parameters of a cart line.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CartLinePath {
    /// The cart's id
    pub id: String,
    /// The line's SKU
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
}

//! Promotion codes, for the admin: create, list, read, replace, delete.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::extract::Json;
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::{int, rfc3339};
use crate::domain::pricing::{Reduction, Target};
use crate::domain::promotion::{Promotion, PromotionDraft};
use crate::domain::{Invalid, Millis, Sku};

/// Admin routes.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, put, delete))
}

/// A promotion's settings on the wire.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionIn {
    /// The code shoppers enter (case does not matter); required when creating, and equal
    /// to the path's when replacing.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    code: Option<String>,
    /// `percent` (value in basis points: 1000 = 10 %) or `fixed` (value in minor units).
    #[schema(value_type = String, pattern = "^(percent|fixed)$")]
    kind: String,
    /// Basis points (1–10000) for `percent`, minor units (≥ 1) for `fixed`.
    #[serde(deserialize_with = "int::de")]
    #[schema(value_type = u64, minimum = 1)]
    value: i64,
    /// `order` (default), `items` (the listed SKUs and categories) or `shipping`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(order|items|shipping)$")]
    applies_to: Option<String>,
    /// SKUs it applies to (`items`).
    #[serde(default)]
    skus: Vec<String>,
    /// Categories it applies to, with their subcategories (`items`).
    #[serde(default)]
    categories: Vec<String>,
    /// Least subtotal (minor units) an order needs.
    #[serde(default, deserialize_with = "int::opt")]
    #[schema(value_type = Option<u64>, minimum = 0)]
    min_subtotal: Option<i64>,
    /// Valid from.
    #[serde(default)]
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// Valid until.
    #[serde(default)]
    #[schema(format = DateTime)]
    ends_at: Option<String>,
    /// Most uses in all.
    #[serde(default, deserialize_with = "int::opt")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 4294967295_u64)]
    usage_limit: Option<i64>,
    /// Most uses per customer (per account; per email for guests).
    #[serde(default, deserialize_with = "int::opt")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 4294967295_u64)]
    per_customer_limit: Option<i64>,
    /// Switched on (default true).
    #[serde(default)]
    active: Option<bool>,
    /// Applied to every cart it matches without being entered (default false); then it
    /// takes no usage limits.
    #[serde(default)]
    automatic: Option<bool>,
}

fn parse_time(field: &'static str, v: Option<String>) -> Result<Option<Millis>, Invalid> {
    v.map(|s| {
        time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Millis)
            .map_err(|_| Invalid::new(field, "an RFC 3339 date-time"))
    })
    .transpose()
}

impl PromotionIn {
    fn draft(self) -> Result<(Option<String>, PromotionDraft), Invalid> {
        let value = u64::try_from(self.value).map_err(|_| Invalid::new("value", "at least 1"))?;
        let count = |field: &'static str, v: Option<i64>| {
            v.map(|n| u32::try_from(n).map_err(|_| Invalid::new(field, "0 to 4294967295")))
                .transpose()
        };
        let reduction = match self.kind.as_str() {
            "percent" => Reduction::Percent(value),
            "fixed" => Reduction::Fixed(value),
            _ => return Err(Invalid::new("kind", "percent or fixed")),
        };
        let target = match self.applies_to.as_deref().unwrap_or("order") {
            "order" => Target::Order,
            "shipping" => Target::Shipping,
            "items" => Target::Items {
                skus: self
                    .skus
                    .iter()
                    .map(|s| Sku::parse(s))
                    .collect::<Result<_, _>>()?,
                categories: self.categories,
            },
            _ => return Err(Invalid::new("applies_to", "order, items or shipping")),
        };
        let draft = PromotionDraft {
            reduction,
            target,
            min_subtotal: u64::try_from(self.min_subtotal.unwrap_or(0))
                .map_err(|_| Invalid::new("min_subtotal", "at least 0"))?,
            starts_at: parse_time("starts_at", self.starts_at)?,
            ends_at: parse_time("ends_at", self.ends_at)?,
            usage_limit: count("usage_limit", self.usage_limit)?,
            per_customer_limit: count("per_customer_limit", self.per_customer_limit)?,
            active: self.active.unwrap_or(true),
            automatic: self.automatic.unwrap_or(false),
        };
        Ok((self.code, draft))
    }
}

/// A promotion on the wire, with its uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromotionOut {
    code: String,
    /// `percent` or `fixed`.
    kind: &'static str,
    value: u64,
    /// `order`, `items` or `shipping`.
    applies_to: &'static str,
    skus: Vec<String>,
    categories: Vec<String>,
    min_subtotal: u64,
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    #[schema(format = DateTime)]
    ends_at: Option<String>,
    usage_limit: Option<u32>,
    per_customer_limit: Option<u32>,
    active: bool,
    /// Applied without being entered.
    automatic: bool,
    /// Committed uses.
    used: u32,
    /// Uses held by checkouts under way.
    held: u32,
    /// Uses left (`null`: no limit).
    remaining: Option<u32>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<&Promotion> for PromotionOut {
    fn from(p: &Promotion) -> Self {
        let d = &p.draft;
        let (kind, value) = match d.reduction {
            Reduction::Percent(v) => ("percent", v),
            Reduction::Fixed(v) => ("fixed", v),
        };
        let (applies_to, skus, categories) = match &d.target {
            Target::Order => ("order", vec![], vec![]),
            Target::Shipping => ("shipping", vec![], vec![]),
            Target::Items { skus, categories } => (
                "items",
                skus.iter().map(ToString::to_string).collect(),
                categories.clone(),
            ),
        };
        PromotionOut {
            code: p.code.clone(),
            kind,
            value,
            applies_to,
            skus,
            categories,
            min_subtotal: d.min_subtotal,
            starts_at: d.starts_at.map(rfc3339),
            ends_at: d.ends_at.map(rfc3339),
            usage_limit: d.usage_limit,
            per_customer_limit: d.per_customer_limit,
            active: d.active,
            automatic: d.automatic,
            used: p.used,
            held: p.holds.len() as u32,
            remaining: p.remaining(),
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// Every promotion.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromotionsOut {
    /// By code.
    items: Vec<PromotionOut>,
}

/// A promotion's code in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PromotionPath {
    /// The code (case does not matter).
    #[param(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    #[allow(dead_code)]
    code: String,
}

/// Creates a promotion code.
#[utoipa::path(
    post,
    path = "/api/v1/admin/promotions",
    tag = "admin",
    request_body = PromotionIn,
    responses(
        (status = 201, description = "The promotion", body = PromotionOut),
        (status = 409, description = "The code exists (`already_exists`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A setting breaks a rule (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn create(
    State(s): State<AppState>,
    Json(body): Json<PromotionIn>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, draft) = body.draft()?;
    let code = code.ok_or_else(|| Invalid::new("code", "is required"))?;
    let p = s.engine.create_promotion(&code, draft).await?;
    let location = format!("/api/v1/admin/promotions/{}", p.code);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(PromotionOut::from(&p)),
    ))
}

/// Every promotion, by code.
#[utoipa::path(
    get,
    path = "/api/v1/admin/promotions",
    tag = "admin",
    responses((status = 200, description = "The promotions", body = PromotionsOut)),
)]
async fn list(State(s): State<AppState>) -> Result<axum::Json<PromotionsOut>, ApiError> {
    let items = s.engine.promotions().await?;
    Ok(axum::Json(PromotionsOut {
        items: items.iter().map(PromotionOut::from).collect(),
    }))
}

/// A promotion, with its uses.
#[utoipa::path(
    get,
    path = "/api/v1/admin/promotions/{code}",
    tag = "admin",
    params(PromotionPath),
    responses((status = 200, description = "The promotion", body = PromotionOut)),
)]
async fn get(
    State(s): State<AppState>,
    Path(code): Path<String>,
) -> Result<axum::Json<PromotionOut>, ApiError> {
    Ok(axum::Json(PromotionOut::from(
        &s.engine.promotion(&code).await?,
    )))
}

/// Creates or replaces a promotion's settings; its uses so far are kept.
#[utoipa::path(
    put,
    path = "/api/v1/admin/promotions/{code}",
    tag = "admin",
    params(PromotionPath),
    request_body = PromotionIn,
    responses(
        (status = 200, description = "The promotion", body = PromotionOut),
        (status = 422, description = "A setting breaks a rule, or the body names another code", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn put(
    State(s): State<AppState>,
    Path(code): Path<String>,
    Json(body): Json<PromotionIn>,
) -> Result<axum::Json<PromotionOut>, ApiError> {
    let (named, draft) = body.draft()?;
    if named.is_some_and(|n| !n.eq_ignore_ascii_case(&code)) {
        return Err(Invalid::new("code", "must be the path's code").into());
    }
    Ok(axum::Json(PromotionOut::from(
        &s.engine.put_promotion(&code, draft).await?,
    )))
}

/// Deletes a promotion.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/promotions/{code}",
    tag = "admin",
    params(PromotionPath),
    responses((status = 204, description = "Deleted")),
)]
async fn delete(
    State(s): State<AppState>,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.engine.delete_promotion(&code).await?;
    Ok(StatusCode::NO_CONTENT)
}

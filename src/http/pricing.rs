//! The store's pricing settings, for the admin: shipping zones and methods
//! (`/api/v1/admin/shipping`) and the tax table with the price mode
//! (`/api/v1/admin/tax`). Each is one document, read and replaced whole.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::extract::Json;
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::int;
use crate::domain::Invalid;
use crate::domain::pricing::{PriceMode, PricingSettings, ShippingMethod, ShippingZone, TaxRate};

/// Admin routes.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_shipping, put_shipping))
        .routes(routes!(get_tax, put_tax))
}

/// The shipping zones.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingIn {
    /// Zones; none: shipping is not charged and checkouts need no method.
    zones: Vec<ZoneIn>,
}

/// A shipping zone: countries served alike.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneIn {
    /// Its id (1–64 of `A-Z a-z 0-9 _ -`).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    id: String,
    /// What the admin calls it.
    name: String,
    /// ISO 3166-1 alpha-2 codes; each country in one zone at most.
    countries: Vec<String>,
    /// Its methods.
    #[serde(default)]
    methods: Vec<MethodIn>,
}

/// A shipping method: a flat rate, optionally free above a threshold, optionally only for
/// parcels within weight bounds.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MethodIn {
    /// Its id, unique across zones (what a checkout names).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    id: String,
    /// What the shopper sees.
    name: String,
    /// Flat rate (minor units).
    #[serde(deserialize_with = "int::de")]
    #[schema(value_type = u64, minimum = 0)]
    rate: i64,
    /// Free when the lines cost at least this after discounts.
    #[serde(
        default,
        deserialize_with = "int::opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>, minimum = 0)]
    free_above: Option<i64>,
    /// Only for parcels of at least this many grams.
    #[serde(
        default,
        deserialize_with = "int::opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>, minimum = 0)]
    min_weight_grams: Option<i64>,
    /// Only for parcels of at most this many grams.
    #[serde(
        default,
        deserialize_with = "int::opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>, minimum = 0)]
    max_weight_grams: Option<i64>,
}

fn non_negative(field: &'static str, v: i64) -> Result<u64, Invalid> {
    u64::try_from(v).map_err(|_| Invalid::new(field, "at least 0"))
}

fn optional(field: &'static str, v: Option<i64>) -> Result<Option<u64>, Invalid> {
    v.map(|v| non_negative(field, v)).transpose()
}

impl ShippingIn {
    fn zones(self) -> Result<Vec<ShippingZone>, Invalid> {
        self.zones
            .into_iter()
            .map(|z| {
                Ok(ShippingZone {
                    id: z.id,
                    name: z.name,
                    countries: z.countries,
                    methods: z
                        .methods
                        .into_iter()
                        .map(|m| {
                            Ok(ShippingMethod {
                                id: m.id,
                                name: m.name,
                                rate: non_negative("zones.methods.rate", m.rate)?,
                                free_above: optional("zones.methods.free_above", m.free_above)?,
                                min_weight_grams: optional(
                                    "zones.methods.min_weight_grams",
                                    m.min_weight_grams,
                                )?,
                                max_weight_grams: optional(
                                    "zones.methods.max_weight_grams",
                                    m.max_weight_grams,
                                )?,
                            })
                        })
                        .collect::<Result<_, Invalid>>()?,
                })
            })
            .collect()
    }
}

fn shipping_out(s: &PricingSettings) -> ShippingIn {
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    ShippingIn {
        zones: s
            .zones
            .iter()
            .map(|z| ZoneIn {
                id: z.id.clone(),
                name: z.name.clone(),
                countries: z.countries.clone(),
                methods: z
                    .methods
                    .iter()
                    .map(|m| MethodIn {
                        id: m.id.clone(),
                        name: m.name.clone(),
                        rate: int(m.rate),
                        free_above: m.free_above.map(int),
                        min_weight_grams: m.min_weight_grams.map(int),
                        max_weight_grams: m.max_weight_grams.map(int),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The shipping zones and methods.
#[utoipa::path(
    get,
    path = "/api/v1/admin/shipping",
    tag = "admin",
    responses((status = 200, description = "The shipping zones", body = ShippingIn)),
)]
async fn get_shipping(State(s): State<AppState>) -> axum::Json<ShippingIn> {
    axum::Json(shipping_out(&s.engine.pricing_settings()))
}

/// Replaces the shipping zones and methods.
#[utoipa::path(
    put,
    path = "/api/v1/admin/shipping",
    tag = "admin",
    request_body = ShippingIn,
    responses(
        (status = 200, description = "The shipping zones now", body = ShippingIn),
        (status = 422, description = "A zone or method breaks a rule (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn put_shipping(
    State(s): State<AppState>,
    Json(body): Json<ShippingIn>,
) -> Result<axum::Json<ShippingIn>, ApiError> {
    let settings = s.engine.set_shipping_zones(body.zones()?).await?;
    Ok(axum::Json(shipping_out(&settings)))
}

/// The tax table and whether catalog prices include tax.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxIn {
    /// Whether catalog prices include tax (then the tax in them is shown, not added).
    prices_include_tax: bool,
    /// Rates by country (and optionally region) and tax class; the `shipping` class
    /// taxes the shipping charge.
    rates: Vec<RateIn>,
}

/// A rate of the tax table.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateIn {
    /// Its name on the bill (`VAT`, `GST`, `Sales tax` …).
    name: String,
    /// ISO 3166-1 alpha-2 code.
    #[schema(pattern = "^[A-Za-z]{2}$")]
    country: String,
    /// A region of the country (e.g. `CA`); absent for the whole country. A region's
    /// rate wins over its country's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    /// The product tax class it applies to (`standard` unless products say otherwise;
    /// `shipping` for the shipping charge).
    tax_class: String,
    /// Basis points: 1900 is 19 % (at most 10000).
    #[serde(deserialize_with = "int::de")]
    #[schema(value_type = u64, minimum = 0, maximum = 10000)]
    rate_bp: i64,
}

fn tax_out(s: &PricingSettings) -> TaxIn {
    TaxIn {
        prices_include_tax: s.mode == PriceMode::TaxInclusive,
        rates: s
            .taxes
            .iter()
            .map(|r| RateIn {
                name: r.name.clone(),
                country: r.country.clone(),
                region: r.region.clone(),
                tax_class: r.tax_class.clone(),
                rate_bp: i64::try_from(r.rate_bp).unwrap_or(i64::MAX),
            })
            .collect(),
    }
}

/// The tax table.
#[utoipa::path(
    get,
    path = "/api/v1/admin/tax",
    tag = "admin",
    responses((status = 200, description = "The tax table", body = TaxIn)),
)]
async fn get_tax(State(s): State<AppState>) -> axum::Json<TaxIn> {
    axum::Json(tax_out(&s.engine.pricing_settings()))
}

/// Replaces the tax table and the price mode.
#[utoipa::path(
    put,
    path = "/api/v1/admin/tax",
    tag = "admin",
    request_body = TaxIn,
    responses(
        (status = 200, description = "The tax table now", body = TaxIn),
        (status = 422, description = "A rate breaks a rule (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn put_tax(
    State(s): State<AppState>,
    Json(body): Json<TaxIn>,
) -> Result<axum::Json<TaxIn>, ApiError> {
    let mode = if body.prices_include_tax {
        PriceMode::TaxInclusive
    } else {
        PriceMode::TaxExclusive
    };
    let rates = body
        .rates
        .into_iter()
        .map(|r| {
            Ok(TaxRate {
                name: r.name,
                country: r.country,
                region: r.region,
                tax_class: r.tax_class,
                rate_bp: non_negative("rates.rate_bp", r.rate_bp)?,
            })
        })
        .collect::<Result<_, Invalid>>()?;
    let settings = s.engine.set_taxes(mode, rates).await?;
    Ok(axum::Json(tax_out(&settings)))
}

//! Pricing: one pure function from a cart's lines, the promotions that apply, the chosen
//! shipping method, the destination and the tax table to a breakdown — subtotal,
//! discounts, shipping, tax lines, total — in integer minor units.
//!
//! **Rounding rule.** Every amount is an integer number of minor units. A percentage
//! (in basis points: 1250 = 12.5 %) of an amount is rounded half up, once, where it is
//! taken: per discount on the base it applies to, per tax rate on the base it taxes. An
//! order-wide discount is allotted to the lines in proportion to their totals (largest
//! remainder, so the parts sum to the discount exactly), because tax is charged on what the
//! customer pays for each line.
//!
//! **Stacking.** At most one promotion code, plus every automatic (code-less) promotion
//! that matches. They apply in a fixed order — line discounts, then order discounts, then
//! shipping discounts, and within each percentages before fixed amounts — each on what is
//! left after the ones before, so no discount can exceed what it applies to and the total
//! never goes below zero.
//!
//! **Tax.** A rate table by country (and optionally region) and tax class. With
//! tax-exclusive prices the tax is added; with tax-inclusive prices it is the part of
//! each (discounted) amount that is tax, shown but not added. Shipping is taxed at the
//! `shipping` class's rate when the table has one.

use serde::{Deserialize, Serialize};

use super::{Millis, Sku};

/// One basis point is 1/100 of a percent: 10 000 is 100 %.
pub const FULL: u64 = 10_000;

/// `amount × bp / 10 000`, rounded half up.
pub fn percent_of(amount: u64, bp: u64) -> u64 {
    let wide = u128::from(amount) * u128::from(bp) + u128::from(FULL / 2);
    u64::try_from(wide / u128::from(FULL)).unwrap_or(u64::MAX)
}

/// A line to price: what the catalog says about the SKU, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceLine {
    /// What.
    pub sku: Sku,
    /// Its category path.
    pub category: String,
    /// How many.
    pub quantity: u32,
    /// Price per unit (minor units), as the catalog lists it.
    pub unit_price: u64,
    /// Its tax class (`standard` unless the product says otherwise).
    pub tax_class: String,
    /// Weight of one unit, if known.
    pub weight_grams: Option<u32>,
}

impl PriceLine {
    /// `quantity × unit_price`.
    pub fn total(&self) -> u64 {
        u64::from(self.quantity).saturating_mul(self.unit_price)
    }
}

/// How much a promotion takes off. (Externally tagged, as every stored enum: the store's
/// codec, bincode, cannot read internally tagged ones.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduction {
    /// A share of what it applies to, in basis points (1..=10 000).
    Percent(u64),
    /// A fixed amount (minor units), at most what it applies to.
    Fixed(u64),
}

impl Reduction {
    /// What it takes off `base` (never more than `base`).
    pub fn of(self, base: u64) -> u64 {
        match self {
            Reduction::Percent(bp) => percent_of(base, bp.min(FULL)),
            Reduction::Fixed(amount) => amount.min(base),
        }
    }
}

/// What a promotion applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The whole order (the lines, not shipping).
    Order,
    /// The lines whose SKU is listed or whose category is (or is under) a listed one.
    Items {
        /// SKUs.
        skus: Vec<Sku>,
        /// Category paths (`Space Suits` covers `Space Suits/Helmets`).
        categories: Vec<String>,
    },
    /// The shipping charge.
    Shipping,
}

impl Target {
    fn covers(&self, line: &PriceLine) -> bool {
        match self {
            Target::Order => true,
            Target::Shipping => false,
            Target::Items { skus, categories } => {
                skus.contains(&line.sku)
                    || categories
                        .iter()
                        .any(|c| line.category == *c || line.category.starts_with(&format!("{c}/")))
            }
        }
    }
}

/// A promotion as pricing sees it (its usage limits are the promotion actor's business).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The code (for an automatic promotion, its name).
    pub code: Option<String>,
    /// Applied without being entered, whenever it matches.
    pub automatic: bool,
    /// How much.
    pub reduction: Reduction,
    /// On what.
    pub target: Target,
    /// The order's subtotal must be at least this.
    pub min_subtotal: u64,
    /// Valid from (inclusive).
    pub starts_at: Option<Millis>,
    /// Valid until (exclusive).
    pub ends_at: Option<Millis>,
    /// Switched on.
    pub active: bool,
}

/// Why an offer does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotApplicable {
    /// Switched off.
    #[error("the promotion is not active")]
    Inactive,
    /// Before its start.
    #[error("the promotion has not started")]
    NotStarted,
    /// After its end.
    #[error("the promotion has expired")]
    Expired,
    /// The subtotal is below its minimum.
    #[error("the order is below the promotion's minimum")]
    BelowMinimum,
    /// Nothing in the cart is covered.
    #[error("nothing in the cart is covered by the promotion")]
    NothingCovered,
}

impl Offer {
    /// Whether the offer applies to these lines at `now`, and why not.
    pub fn applies(&self, lines: &[PriceLine], now: Millis) -> Result<(), NotApplicable> {
        if !self.active {
            return Err(NotApplicable::Inactive);
        }
        if self.starts_at.is_some_and(|s| now < s) {
            return Err(NotApplicable::NotStarted);
        }
        if self.ends_at.is_some_and(|e| now >= e) {
            return Err(NotApplicable::Expired);
        }
        let subtotal: u64 = lines.iter().map(PriceLine::total).sum();
        if subtotal < self.min_subtotal {
            return Err(NotApplicable::BelowMinimum);
        }
        if matches!(self.target, Target::Items { .. })
            && !lines.iter().any(|l| self.target.covers(l))
        {
            return Err(NotApplicable::NothingCovered);
        }
        Ok(())
    }
}

/// A shipping method as pricing sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingRate {
    /// The method's id.
    pub id: String,
    /// Flat rate (minor units).
    pub rate: u64,
    /// Free when the lines cost at least this after their discounts.
    pub free_above: Option<u64>,
}

impl ShippingRate {
    /// What it charges lines that cost `goods` after their discounts.
    pub fn charge(&self, goods: u64) -> u64 {
        match self.free_above {
            Some(f) if goods >= f => 0,
            _ => self.rate,
        }
    }
}

/// A rate of the tax table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRate {
    /// Its name on the bill (`VAT`, `GST` …).
    pub name: String,
    /// ISO 3166-1 alpha-2 country.
    pub country: String,
    /// Region within the country; `None` applies to the whole country.
    pub region: Option<String>,
    /// The tax class it applies to (`standard`, `reduced`, `shipping` …).
    pub tax_class: String,
    /// Basis points.
    pub rate_bp: u64,
}

/// Whether catalog prices include tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceMode {
    /// Prices are net; tax is added.
    #[default]
    TaxExclusive,
    /// Prices are gross; the tax in them is shown.
    TaxInclusive,
}

/// Where the order goes, for tax and shipping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// ISO 3166-1 alpha-2 country, upper case.
    pub country: String,
    /// Region, if any.
    pub region: Option<String>,
}

/// A discount on the bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscountLine {
    /// The code (or an automatic promotion's name).
    pub code: Option<String>,
    /// Whether it applied without being entered.
    pub automatic: bool,
    /// Minor units taken off.
    pub amount: u64,
}

/// A tax on the bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxLine {
    /// Its name.
    pub name: String,
    /// Basis points.
    pub rate_bp: u64,
    /// Minor units.
    pub amount: u64,
}

/// What an order costs, and why.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Breakdown {
    /// Sum of line totals at catalog prices.
    pub subtotal: u64,
    /// Discounts, in the order they applied.
    pub discounts: Vec<DiscountLine>,
    /// The shipping charge (before shipping discounts, which are among `discounts`).
    pub shipping: u64,
    /// Tax lines (added to the total for tax-exclusive prices, included in it otherwise).
    pub tax: Vec<TaxLine>,
    /// Whether the tax lines are included in the prices (not added).
    pub tax_included: bool,
    /// What the customer pays.
    pub total: u64,
    /// What the lines cost after their discounts (line and order discounts, not
    /// shipping's), tax not added: what a free-shipping threshold looks at.
    #[serde(default)]
    pub goods: u64,
    /// What each line costs the customer, in the order of the lines: after its share of
    /// the discounts, with its share of the tax (added or included). What a refund of a
    /// line gives back.
    pub lines_paid: Vec<u64>,
    /// What the shipping costs the customer, after shipping discounts, with its tax.
    /// `lines_paid` and `shipping_paid` sum to `total`.
    pub shipping_paid: u64,
}

impl Breakdown {
    /// The sum of the discounts.
    pub fn discount_total(&self) -> u64 {
        self.discounts.iter().map(|d| d.amount).sum()
    }

    /// The sum of the tax lines.
    pub fn tax_total(&self) -> u64 {
        self.tax.iter().map(|t| t.amount).sum()
    }

    /// A breakdown of plain lines: no discount, shipping or tax (orders made before
    /// pricing existed, and imported ones).
    pub fn plain(line_totals: &[u64]) -> Breakdown {
        let subtotal = line_totals.iter().sum();
        Breakdown {
            subtotal,
            total: subtotal,
            goods: subtotal,
            lines_paid: line_totals.to_vec(),
            ..Breakdown::default()
        }
    }
}

/// Everything [`price`] needs.
#[derive(Debug, Clone, Copy)]
pub struct PriceInput<'a> {
    /// The lines at catalog prices.
    pub lines: &'a [PriceLine],
    /// The entered code's offer (if any) and the automatic offers; those that do not
    /// apply are skipped.
    pub offers: &'a [Offer],
    /// The chosen shipping method, if any.
    pub shipping: Option<&'a ShippingRate>,
    /// Where it goes (no tax without one).
    pub destination: Option<&'a Destination>,
    /// The tax table.
    pub taxes: &'a [TaxRate],
    /// Whether prices include tax.
    pub mode: PriceMode,
    /// Now, for the offers' validity.
    pub now: Millis,
}

/// A tax class's canonical form: lower case, 1–32 of `a-z 0-9 _ -`.
pub fn tax_class(class: &str) -> Result<String, &'static str> {
    let class = class.trim().to_ascii_lowercase();
    if class.is_empty()
        || class.len() > 32
        || !class
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err("1 to 32 of a-z 0-9 _ -");
    }
    Ok(class)
}

/// A shipping method of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingMethod {
    /// Its id, unique across zones (what a checkout names).
    pub id: String,
    /// What the shopper sees.
    pub name: String,
    /// Flat rate (minor units).
    pub rate: u64,
    /// Free when the subtotal after discounts is at least this.
    pub free_above: Option<u64>,
    /// Only for parcels of at least this weight.
    pub min_weight_grams: Option<u64>,
    /// Only for parcels of at most this weight.
    pub max_weight_grams: Option<u64>,
}

impl ShippingMethod {
    /// The method as pricing sees it.
    pub fn rate(&self) -> ShippingRate {
        ShippingRate {
            id: self.id.clone(),
            rate: self.rate,
            free_above: self.free_above,
        }
    }

    /// Whether a parcel of `weight` grams may go by this method.
    pub fn carries(&self, weight: u64) -> bool {
        self.min_weight_grams.is_none_or(|m| weight >= m)
            && self.max_weight_grams.is_none_or(|m| weight <= m)
    }
}

/// Countries served alike, and the methods that ship there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingZone {
    /// Its id.
    pub id: String,
    /// What the admin calls it.
    pub name: String,
    /// ISO 3166-1 alpha-2 codes, upper case.
    pub countries: Vec<String>,
    /// Its methods.
    pub methods: Vec<ShippingMethod>,
}

/// The store's rules for shipping and tax.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PricingSettings {
    /// Shipping zones; none means shipping is not charged (and not asked for).
    pub zones: Vec<ShippingZone>,
    /// Whether catalog prices include tax.
    pub mode: PriceMode,
    /// The tax table.
    pub taxes: Vec<TaxRate>,
}

/// Most zones, methods per zone, countries per zone and tax rates.
pub mod settings_limits {
    /// Zones.
    pub const ZONES: usize = 50;
    /// Methods per zone.
    pub const METHODS: usize = 20;
    /// Countries per zone.
    pub const COUNTRIES: usize = 250;
    /// Rates in the tax table.
    pub const RATES: usize = 1_000;
    /// Highest amount (minor units) of a rate or threshold.
    pub const AMOUNT: u64 = 1_000_000_000_000;
}

fn slug(field: &'static str, s: &str) -> Result<(), super::Invalid> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(super::Invalid::new(field, "1 to 64 of A-Z a-z 0-9 _ -"));
    }
    Ok(())
}

fn label(field: &'static str, s: &str) -> Result<String, super::Invalid> {
    let t = s.trim();
    if t.is_empty() || s.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(super::Invalid::new(
            field,
            "1 to 200 characters, no control characters",
        ));
    }
    Ok(t.to_owned())
}

/// A country code's canonical form: two ASCII letters, upper case.
pub fn country_code(field: &'static str, c: &str) -> Result<String, super::Invalid> {
    let c = c.trim().to_ascii_uppercase();
    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(super::Invalid::new(
            field,
            "an ISO 3166-1 alpha-2 code such as DE",
        ));
    }
    Ok(c)
}

fn amount(field: &'static str, v: u64) -> Result<u64, super::Invalid> {
    if v > settings_limits::AMOUNT {
        return Err(super::Invalid::new(
            field,
            format!("at most {}", settings_limits::AMOUNT),
        ));
    }
    Ok(v)
}

impl PricingSettings {
    /// Checks the zones (ids unique, countries valid and in one zone each, weight bounds
    /// ordered) and normalises codes.
    pub fn with_zones(&self, zones: Vec<ShippingZone>) -> Result<PricingSettings, super::Invalid> {
        use super::Invalid;
        use settings_limits as l;
        if zones.len() > l::ZONES {
            return Err(Invalid::new("zones", format!("at most {} zones", l::ZONES)));
        }
        let mut zone_ids = std::collections::HashSet::new();
        let mut method_ids = std::collections::HashSet::new();
        let mut countries = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(zones.len());
        for z in zones {
            slug("zones.id", &z.id)?;
            if !zone_ids.insert(z.id.clone()) {
                return Err(Invalid::new("zones.id", format!("{} appears twice", z.id)));
            }
            if z.countries.is_empty() || z.countries.len() > l::COUNTRIES {
                return Err(Invalid::new(
                    "zones.countries",
                    format!("1 to {} countries", l::COUNTRIES),
                ));
            }
            if z.methods.len() > l::METHODS {
                return Err(Invalid::new(
                    "zones.methods",
                    format!("at most {} methods per zone", l::METHODS),
                ));
            }
            let mut zone_countries = Vec::new();
            for c in &z.countries {
                let c = country_code("zones.countries", c)?;
                if !countries.insert(c.clone()) {
                    return Err(Invalid::new(
                        "zones.countries",
                        format!("{c} is in two zones"),
                    ));
                }
                zone_countries.push(c);
            }
            let mut methods = Vec::with_capacity(z.methods.len());
            for m in z.methods {
                slug("zones.methods.id", &m.id)?;
                if !method_ids.insert(m.id.clone()) {
                    return Err(Invalid::new(
                        "zones.methods.id",
                        format!("{} appears twice", m.id),
                    ));
                }
                if let (Some(lo), Some(hi)) = (m.min_weight_grams, m.max_weight_grams)
                    && lo > hi
                {
                    return Err(Invalid::new(
                        "zones.methods.max_weight_grams",
                        "must be at least min_weight_grams",
                    ));
                }
                methods.push(ShippingMethod {
                    name: label("zones.methods.name", &m.name)?,
                    rate: amount("zones.methods.rate", m.rate)?,
                    free_above: m
                        .free_above
                        .map(|f| amount("zones.methods.free_above", f))
                        .transpose()?,
                    ..m
                });
            }
            out.push(ShippingZone {
                name: label("zones.name", &z.name)?,
                countries: zone_countries,
                methods,
                ..z
            });
        }
        Ok(PricingSettings {
            zones: out,
            ..self.clone()
        })
    }

    /// Checks the tax table (rates at most 100 %, one rate per country, region and class)
    /// and normalises codes.
    pub fn with_taxes(
        &self,
        mode: PriceMode,
        rates: Vec<TaxRate>,
    ) -> Result<PricingSettings, super::Invalid> {
        use super::Invalid;
        if rates.len() > settings_limits::RATES {
            return Err(Invalid::new(
                "rates",
                format!("at most {} rates", settings_limits::RATES),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(rates.len());
        for r in rates {
            if r.rate_bp > FULL {
                return Err(Invalid::new(
                    "rates.rate_bp",
                    "at most 10000 basis points (100 %)",
                ));
            }
            let region = match r.region.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(reg) => {
                    slug("rates.region", reg)?;
                    Some(reg.to_ascii_uppercase())
                }
            };
            let rate = TaxRate {
                name: label("rates.name", &r.name)?,
                country: country_code("rates.country", &r.country)?,
                region,
                tax_class: tax_class(&r.tax_class)
                    .map_err(|m| Invalid::new("rates.tax_class", m))?,
                rate_bp: r.rate_bp,
            };
            let key = (
                rate.country.clone(),
                rate.region.clone(),
                rate.tax_class.clone(),
            );
            if !seen.insert(key) {
                return Err(Invalid::new(
                    "rates",
                    format!(
                        "two rates for {} {} {}",
                        rate.country,
                        rate.region.as_deref().unwrap_or("(whole country)"),
                        rate.tax_class
                    ),
                ));
            }
            out.push(rate);
        }
        Ok(PricingSettings {
            mode,
            taxes: out,
            ..self.clone()
        })
    }

    /// Whether shipping is charged at all (some zone is configured).
    pub fn ships(&self) -> bool {
        !self.zones.is_empty()
    }

    /// The methods that ship a parcel of `weight` grams to `country`.
    pub fn methods_for(&self, country: &str, weight: u64) -> Vec<&ShippingMethod> {
        let country = country.trim().to_ascii_uppercase();
        self.zones
            .iter()
            .filter(|z| z.countries.contains(&country))
            .flat_map(|z| &z.methods)
            .filter(|m| m.carries(weight))
            .collect()
    }

    /// The method `id`, if it ships a parcel of `weight` grams to `country`.
    pub fn method(&self, id: &str, country: &str, weight: u64) -> Option<&ShippingMethod> {
        self.methods_for(country, weight)
            .into_iter()
            .find(|m| m.id == id)
    }
}

/// A parcel's weight: every line's units, those without a weight counted as nothing.
pub fn weight_of(lines: &[PriceLine]) -> u64 {
    lines
        .iter()
        .map(|l| u64::from(l.weight_grams.unwrap_or(0)) * u64::from(l.quantity))
        .sum()
}

/// Splits `amount` over `weights` in proportion (largest remainder): the parts sum to
/// `amount` exactly, and none exceeds its weight when `amount <= sum(weights)`.
pub fn allot(amount: u64, weights: &[u64]) -> Vec<u64> {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let amount = u128::from(amount).min(total);
    let mut parts: Vec<(u128, u128, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let exact = amount * u128::from(w);
            (exact / total, exact % total, i)
        })
        .collect();
    let given: u128 = parts.iter().map(|p| p.0).sum();
    let mut left = amount - given;
    parts.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    for p in parts.iter_mut() {
        if left == 0 {
            break;
        }
        p.0 += 1;
        left -= 1;
    }
    parts.sort_by_key(|p| p.2);
    parts.into_iter().map(|p| p.0 as u64).collect()
}

/// The rate for `class` at `dest`: a region's own rate over its country's.
fn rate_for<'a>(taxes: &'a [TaxRate], dest: &Destination, class: &str) -> Option<&'a TaxRate> {
    let here = |t: &&TaxRate| t.country == dest.country && t.tax_class == class;
    taxes
        .iter()
        .filter(here)
        .find(|t| t.region.is_some() && t.region == dest.region)
        .or_else(|| taxes.iter().filter(here).find(|t| t.region.is_none()))
}

/// Prices an order. See the module's documentation for the rules.
pub fn price(input: PriceInput<'_>) -> Breakdown {
    let PriceInput {
        lines,
        offers,
        shipping,
        destination,
        taxes,
        mode,
        now,
    } = input;
    let subtotal: u64 = lines.iter().map(PriceLine::total).sum();
    // What each line still costs after the discounts so far.
    let mut net: Vec<u64> = lines.iter().map(PriceLine::total).collect();
    // The shipping charge is settled once the line discounts are (a free-above
    // threshold looks at what the lines cost after them).
    let mut shipping_charge = None;
    let mut shipping_left = 0;
    let charge = |net: &[u64]| shipping.map_or(0, |s| s.charge(net.iter().sum()));
    let applicable: Vec<&Offer> = offers
        .iter()
        .filter(|o| o.applies(lines, now).is_ok())
        .collect();
    let mut discounts = Vec::new();
    let stage = |o: &Offer| {
        let target = match o.target {
            Target::Items { .. } => 0,
            Target::Order => 1,
            Target::Shipping => 2,
        };
        (target, matches!(o.reduction, Reduction::Fixed(_)))
    };
    let mut ordered = applicable;
    ordered.sort_by_key(|o| stage(o));
    for offer in ordered {
        let amount = match &offer.target {
            Target::Shipping => {
                if shipping_charge.is_none() {
                    shipping_charge = Some(charge(&net));
                    shipping_left = charge(&net);
                }
                let off = offer.reduction.of(shipping_left);
                shipping_left -= off;
                off
            }
            target => {
                let covered: Vec<usize> = (0..lines.len())
                    .filter(|&i| target.covers(&lines[i]))
                    .collect();
                let base: u64 = covered.iter().map(|&i| net[i]).sum();
                let off = offer.reduction.of(base);
                let weights: Vec<u64> = covered.iter().map(|&i| net[i]).collect();
                for (&i, part) in covered.iter().zip(allot(off, &weights)) {
                    net[i] -= part;
                }
                off
            }
        };
        if amount > 0 {
            discounts.push(DiscountLine {
                code: offer.code.clone(),
                automatic: offer.automatic,
                amount,
            });
        }
    }
    let shipping_charge = match shipping_charge {
        Some(c) => c,
        None => {
            shipping_left = charge(&net);
            shipping_left
        }
    };
    // Tax, per rate, on what is paid for each line (and for shipping).
    let mut tax: Vec<TaxLine> = Vec::new();
    // Tax added to each line (and, last, to shipping), for tax-exclusive prices.
    let mut added = vec![0u64; lines.len() + 1];
    if let Some(dest) = destination {
        // One tax line per name and rate, on the sum of what it taxes.
        // Each base remembers what it taxes (a line's index, or `lines.len()` for
        // shipping), so that its tax can be shared out to them.
        type Base<'t> = (&'t TaxRate, Vec<(usize, u64)>);
        fn add<'t>(bases: &mut Vec<Base<'t>>, rate: &'t TaxRate, who: usize, amount: u64) {
            let same = |r: &&TaxRate| r.name == rate.name && r.rate_bp == rate.rate_bp;
            match bases.iter_mut().find(|(r, _)| same(r)) {
                Some((_, parts)) => parts.push((who, amount)),
                None => bases.push((rate, vec![(who, amount)])),
            }
        }
        let mut bases: Vec<Base<'_>> = Vec::new();
        for (i, (line, &paid)) in lines.iter().zip(&net).enumerate() {
            if let Some(rate) = rate_for(taxes, dest, &line.tax_class) {
                add(&mut bases, rate, i, paid);
            }
        }
        if shipping_left > 0
            && let Some(rate) = rate_for(taxes, dest, "shipping")
        {
            add(&mut bases, rate, lines.len(), shipping_left);
        }
        for (rate, parts) in bases {
            let base: u64 = parts.iter().map(|p| p.1).sum();
            let amount = match mode {
                PriceMode::TaxExclusive => percent_of(base, rate.rate_bp.min(FULL)),
                // The tax inside a gross amount g at rate r is g·r / (1 + r).
                PriceMode::TaxInclusive => {
                    let wide = u128::from(base) * u128::from(rate.rate_bp);
                    let denominator = u128::from(FULL + rate.rate_bp);
                    u64::try_from((wide + denominator / 2) / denominator).unwrap_or(u64::MAX)
                }
            };
            if mode == PriceMode::TaxExclusive {
                let weights: Vec<u64> = parts.iter().map(|p| p.1).collect();
                for ((who, _), share) in parts.iter().zip(allot(amount, &weights)) {
                    added[*who] += share;
                }
            }
            if amount > 0 {
                tax.push(TaxLine {
                    name: rate.name.clone(),
                    rate_bp: rate.rate_bp,
                    amount,
                });
            }
        }
    }
    let lines_paid: Vec<u64> = net.iter().zip(&added).map(|(n, a)| n + a).collect();
    let shipping_paid = shipping_left + added[lines.len()];
    Breakdown {
        subtotal,
        discounts,
        shipping: shipping_charge,
        tax,
        tax_included: mode == PriceMode::TaxInclusive,
        total: lines_paid.iter().sum::<u64>() + shipping_paid,
        goods: net.iter().sum(),
        lines_paid,
        shipping_paid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(sku: &str, category: &str, quantity: u32, unit_price: u64) -> PriceLine {
        PriceLine {
            sku: Sku::parse(sku).unwrap(),
            category: category.into(),
            quantity,
            unit_price,
            tax_class: "standard".into(),
            weight_grams: None,
        }
    }

    fn offer(code: Option<&str>, reduction: Reduction, target: Target) -> Offer {
        Offer {
            code: code.map(Into::into),
            automatic: code.is_none(),
            reduction,
            target,
            min_subtotal: 0,
            starts_at: None,
            ends_at: None,
            active: true,
        }
    }

    fn vat(country: &str, region: Option<&str>, class: &str, bp: u64) -> TaxRate {
        TaxRate {
            name: "VAT".into(),
            country: country.into(),
            region: region.map(Into::into),
            tax_class: class.into(),
            rate_bp: bp,
        }
    }

    fn de() -> Destination {
        Destination {
            country: "DE".into(),
            region: None,
        }
    }

    fn input<'a>(
        lines: &'a [PriceLine],
        offers: &'a [Offer],
        shipping: Option<&'a ShippingRate>,
        destination: Option<&'a Destination>,
        taxes: &'a [TaxRate],
        mode: PriceMode,
    ) -> PriceInput<'a> {
        PriceInput {
            lines,
            offers,
            shipping,
            destination,
            taxes,
            mode,
            now: 1_000,
        }
    }

    #[test]
    fn a_percentage_is_rounded_half_up_once() {
        assert_eq!(percent_of(333, 1500), 50); // 49.95
        assert_eq!(percent_of(333, 1485), 49); // 49.45
        assert_eq!(percent_of(1, 5000), 1); // 0.5
        assert_eq!(percent_of(u64::MAX, FULL), u64::MAX);
    }

    #[test]
    fn an_order_discount_is_allotted_to_lines_and_tax_follows_what_is_paid() {
        let lines = [line("A", "Suits", 1, 10_000), line("B", "Food", 2, 2_500)];
        let mut food = lines[1].clone();
        food.tax_class = "reduced".into();
        let lines = [lines[0].clone(), food];
        let offers = [offer(
            Some("TENOFF"),
            Reduction::Fixed(1_500),
            Target::Order,
        )];
        let taxes = [
            vat("DE", None, "standard", 1_900),
            vat("DE", None, "reduced", 700),
        ];
        let ship = ShippingRate {
            id: "std".into(),
            rate: 490,
            free_above: None,
        };
        let b = price(input(
            &lines,
            &offers,
            Some(&ship),
            Some(&de()),
            &taxes,
            PriceMode::TaxExclusive,
        ));
        assert_eq!(b.subtotal, 15_000);
        assert_eq!(b.discounts[0].amount, 1_500);
        // 1 500 split 2:1 → A pays 9 000, B 4 500; no shipping rate in the table.
        assert_eq!(
            b.tax,
            [
                TaxLine {
                    name: "VAT".into(),
                    rate_bp: 1_900,
                    amount: 1_710
                },
                TaxLine {
                    name: "VAT".into(),
                    rate_bp: 700,
                    amount: 315
                },
            ]
        );
        assert_eq!(b.total, 15_000 - 1_500 + 490 + 1_710 + 315);
    }

    #[test]
    fn inclusive_prices_show_the_tax_inside_them() {
        let lines = [line("A", "", 1, 11_900)];
        let taxes = [vat("DE", None, "standard", 1_900)];
        let b = price(input(
            &lines,
            &[],
            None,
            Some(&de()),
            &taxes,
            PriceMode::TaxInclusive,
        ));
        assert_eq!(b.tax[0].amount, 1_900);
        assert!(b.tax_included);
        assert_eq!(b.total, 11_900);
    }

    #[test]
    fn a_region_rate_overrides_its_countrys_and_shipping_has_its_own_class() {
        let lines = [line("A", "", 1, 10_000)];
        let taxes = [
            vat("US", None, "standard", 0),
            vat("US", Some("CA"), "standard", 725),
            vat("US", Some("CA"), "shipping", 725),
        ];
        let ship = ShippingRate {
            id: "std".into(),
            rate: 1_000,
            free_above: Some(20_000),
        };
        let ca = Destination {
            country: "US".into(),
            region: Some("CA".into()),
        };
        let b = price(input(
            &lines,
            &[],
            Some(&ship),
            Some(&ca),
            &taxes,
            PriceMode::TaxExclusive,
        ));
        assert_eq!(b.tax[0].amount, 725 + 73); // 10 000 and 1 000 at 7.25 %, one line
        let or = Destination {
            country: "US".into(),
            region: Some("OR".into()),
        };
        let b = price(input(
            &lines,
            &[],
            Some(&ship),
            Some(&or),
            &taxes,
            PriceMode::TaxExclusive,
        ));
        assert!(b.tax.is_empty());
        // Free above the threshold.
        let big = [line("A", "", 3, 10_000)];
        let b = price(input(
            &big,
            &[],
            Some(&ship),
            None,
            &[],
            PriceMode::TaxExclusive,
        ));
        assert_eq!((b.shipping, b.total), (0, 30_000));
    }

    #[test]
    fn offers_apply_only_within_their_rules() {
        let lines = [
            line("HELM-1", "Suits/Helmets", 1, 5_000),
            line("SOCK", "Clothes", 1, 1_000),
        ];
        let helmets = Target::Items {
            skus: vec![],
            categories: vec!["Suits".into()],
        };
        let mut o = offer(Some("HALF"), Reduction::Percent(5_000), helmets);
        let priced = |o: &Offer| {
            price(input(
                &lines,
                std::slice::from_ref(o),
                None,
                None,
                &[],
                PriceMode::TaxExclusive,
            ))
        };
        assert_eq!(priced(&o).discounts[0].amount, 2_500, "only the helmet");
        o.min_subtotal = 6_001;
        assert_eq!(o.applies(&lines, 1_000), Err(NotApplicable::BelowMinimum));
        assert!(priced(&o).discounts.is_empty());
        o.min_subtotal = 0;
        o.ends_at = Some(1_000);
        assert_eq!(o.applies(&lines, 1_000), Err(NotApplicable::Expired));
        o.ends_at = None;
        o.starts_at = Some(1_001);
        assert_eq!(o.applies(&lines, 1_000), Err(NotApplicable::NotStarted));
        o.starts_at = None;
        o.active = false;
        assert_eq!(o.applies(&lines, 1_000), Err(NotApplicable::Inactive));
        let socks_only = [lines[1].clone()];
        let o = offer(
            None,
            Reduction::Percent(1_000),
            Target::Items {
                skus: vec![Sku::parse("HELM-1").unwrap()],
                categories: vec![],
            },
        );
        assert_eq!(
            o.applies(&socks_only, 0),
            Err(NotApplicable::NothingCovered)
        );
    }

    #[test]
    fn a_code_and_automatic_offers_stack_in_a_fixed_order() {
        let lines = [line("A", "", 1, 10_000)];
        let ship = ShippingRate {
            id: "std".into(),
            rate: 500,
            free_above: None,
        };
        let offers = [
            offer(None, Reduction::Percent(10_000), Target::Shipping),
            offer(Some("BIG"), Reduction::Fixed(20_000), Target::Order),
            offer(None, Reduction::Percent(1_000), Target::Order),
        ];
        let b = price(input(
            &lines,
            &offers,
            Some(&ship),
            None,
            &[],
            PriceMode::TaxExclusive,
        ));
        // 10 % first (percentages before fixed amounts), then the fixed one takes what
        // is left, then shipping goes free: nothing below zero.
        let amounts: Vec<u64> = b.discounts.iter().map(|d| d.amount).collect();
        assert_eq!(amounts, [1_000, 9_000, 500]);
        assert_eq!(b.total, 0);
    }

    fn method(id: &str, rate: u64, lo: Option<u64>, hi: Option<u64>) -> ShippingMethod {
        ShippingMethod {
            id: id.into(),
            name: id.into(),
            rate,
            free_above: None,
            min_weight_grams: lo,
            max_weight_grams: hi,
        }
    }

    #[test]
    fn shipping_methods_apply_by_country_and_weight() {
        let zones = vec![
            ShippingZone {
                id: "eu".into(),
                name: "EU".into(),
                countries: vec!["de".into(), "FR".into()],
                methods: vec![
                    method("letter", 190, None, Some(500)),
                    method("parcel", 490, Some(1), Some(30_000)),
                ],
            },
            ShippingZone {
                id: "us".into(),
                name: "US".into(),
                countries: vec!["US".into()],
                methods: vec![method("ground", 900, None, None)],
            },
        ];
        let s = PricingSettings::default()
            .with_zones(zones.clone())
            .unwrap();
        assert_eq!(s.zones[0].countries, ["DE", "FR"]);
        let ids = |c: &str, w: u64| -> Vec<String> {
            s.methods_for(c, w).iter().map(|m| m.id.clone()).collect()
        };
        assert_eq!(ids("DE", 0), ["letter"]);
        assert_eq!(ids("de", 400), ["letter", "parcel"]);
        assert_eq!(ids("FR", 2_000), ["parcel"]);
        assert!(ids("FR", 40_000).is_empty());
        assert_eq!(ids("US", 40_000), ["ground"]);
        assert!(ids("JP", 1).is_empty());
        assert!(s.method("ground", "DE", 1).is_none());
        // A country in two zones, a repeated method id, inverted bounds: refused.
        let mut twice = zones.clone();
        twice[1].countries.push("FR".into());
        assert!(PricingSettings::default().with_zones(twice).is_err());
        let mut dup = zones.clone();
        dup[1].methods[0].id = "letter".into();
        assert!(PricingSettings::default().with_zones(dup).is_err());
        let mut inverted = zones;
        inverted[0].methods[0].min_weight_grams = Some(600);
        assert!(PricingSettings::default().with_zones(inverted).is_err());
    }

    #[test]
    fn the_tax_table_is_checked() {
        let ok = PricingSettings::default()
            .with_taxes(
                PriceMode::TaxInclusive,
                vec![vat("de", None, "Standard", 1_900)],
            )
            .unwrap();
        assert_eq!(ok.taxes[0].country, "DE");
        assert_eq!(ok.taxes[0].tax_class, "standard");
        assert_eq!(ok.mode, PriceMode::TaxInclusive);
        let s = PricingSettings::default();
        assert!(
            s.with_taxes(
                PriceMode::TaxExclusive,
                vec![vat("DE", None, "standard", 10_001)]
            )
            .is_err()
        );
        assert!(
            s.with_taxes(
                PriceMode::TaxExclusive,
                vec![vat("Germany", None, "standard", 1)]
            )
            .is_err()
        );
        assert!(
            s.with_taxes(
                PriceMode::TaxExclusive,
                vec![
                    vat("DE", None, "standard", 1),
                    vat("DE", None, "standard", 2)
                ]
            )
            .is_err()
        );
    }

    fn arb_lines() -> impl Strategy<Value = Vec<PriceLine>> {
        prop::collection::vec(
            (1u32..50, 0u64..100_000, prop::bool::ANY, prop::bool::ANY),
            1..8,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (q, p, cat, reduced))| PriceLine {
                    sku: Sku::parse(&format!("S{i}")).unwrap(),
                    category: if cat { "A/B".into() } else { "C".into() },
                    quantity: q,
                    unit_price: p,
                    tax_class: if reduced {
                        "reduced".into()
                    } else {
                        "standard".into()
                    },
                    weight_grams: None,
                })
                .collect()
        })
    }

    fn arb_offer() -> impl Strategy<Value = Offer> {
        let reduction = prop_oneof![
            (1u64..=10_000).prop_map(Reduction::Percent),
            (0u64..500_000).prop_map(Reduction::Fixed),
        ];
        let target = prop_oneof![
            Just(Target::Order),
            Just(Target::Shipping),
            Just(Target::Items {
                skus: vec![Sku::parse("S0").unwrap()],
                categories: vec!["A".into()],
            }),
        ];
        (reduction, target, 0u64..200_000).prop_map(|(reduction, target, min_subtotal)| Offer {
            code: None,
            automatic: true,
            reduction,
            target,
            min_subtotal,
            starts_at: None,
            ends_at: None,
            active: true,
        })
    }

    proptest! {
        #[test]
        fn the_bill_adds_up_and_no_discount_exceeds_its_base(
            lines in arb_lines(),
            offers in prop::collection::vec(arb_offer(), 0..4),
            rate in 0u64..5_000,
            free_above in prop::option::of(0u64..300_000),
            standard in 0u64..3_000,
            reduced in 0u64..1_500,
            inclusive in prop::bool::ANY,
        ) {
            let ship = ShippingRate { id: "s".into(), rate, free_above };
            let taxes = [vat("DE", None, "standard", standard), vat("DE", None, "reduced", reduced), vat("DE", None, "shipping", standard)];
            let mode = if inclusive { PriceMode::TaxInclusive } else { PriceMode::TaxExclusive };
            let b = price(input(&lines, &offers, Some(&ship), Some(&de()), &taxes, mode));
            let discounts: u64 = b.discounts.iter().map(|d| d.amount).sum();
            let tax: u64 = b.tax.iter().map(|t| t.amount).sum();
            let added = if inclusive { 0 } else { tax };
            prop_assert_eq!(b.total + discounts, b.subtotal + b.shipping + added);
            // What each line and the shipping cost sums to the total, and no line costs
            // more than its list price plus its tax.
            prop_assert_eq!(b.lines_paid.iter().sum::<u64>() + b.shipping_paid, b.total);
            // The shipping charge is the method's charge for what the lines cost.
            prop_assert_eq!(b.shipping, ship.charge(b.goods));
            prop_assert!(b.goods <= b.subtotal);
            prop_assert_eq!(b.lines_paid.len(), lines.len());
            if inclusive {
                for (paid, line) in b.lines_paid.iter().zip(&lines) {
                    prop_assert!(*paid <= line.total());
                }
            }
            prop_assert!(discounts <= b.subtotal + b.shipping);
            let subtotal: u64 = lines.iter().map(PriceLine::total).sum();
            prop_assert_eq!(b.subtotal, subtotal);
            if inclusive {
                // The tax inside never exceeds what is paid.
                prop_assert!(tax <= b.total);
            }
        }

        #[test]
        fn an_allotment_sums_exactly_and_never_exceeds_a_weight(
            weights in prop::collection::vec(0u64..1_000_000, 1..10),
            share in 0u64..=10_000,
        ) {
            let total: u64 = weights.iter().sum();
            let amount = percent_of(total, share);
            let parts = allot(amount, &weights);
            prop_assert_eq!(parts.iter().sum::<u64>(), amount);
            for (p, w) in parts.iter().zip(&weights) {
                prop_assert!(p <= w);
            }
        }
    }
}

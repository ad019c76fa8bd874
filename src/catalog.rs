//! The catalog's read side for the use cases that price things: a cart priced from the
//! stored products, and in full ([`quote`]) with the price book. (The catalog's writes go through its actor, `actors/catalog.rs`; the
//! rule itself is pure, [`crate::domain::cart::price`].)

use crate::domain::Millis;
use crate::domain::cart::{Cart, CatalogEntry, PricedCart, PricedLine};
use crate::domain::order::Address;
use crate::domain::pricing::{
    Breakdown, NotApplicable, Offer, PriceInput, PriceLine, ShippingMethod, price, weight_of,
};
use crate::pricebook::Book;
use crate::storage::{StorageError, Tables};

/// Prices `cart` from the catalog as stored; a failed read is an error, never a silently
/// missing line (a product deleted since it was added is left out, as `price` says).
pub fn price_cart(tables: &Tables, cart: &Cart) -> Result<PricedCart, StorageError> {
    let mut failed = None;
    let priced = crate::domain::cart::price(cart, |sku| match tables.product(sku.as_str()) {
        Ok(p) => p.map(|p| CatalogEntry {
            name: p.name.clone(),
            unit_price: p.price,
            category: p.category.clone(),
            tax_class: p.tax_class.clone(),
            weight_grams: p.weight_grams,
        }),
        Err(e) => {
            failed.get_or_insert(e);
            None
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(priced),
    }
}

/// Why an entered promotion code does not take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeProblem {
    /// No such code (or an automatic promotion's name, which is not entered).
    #[error("no such promotion code")]
    Unknown,
    /// The code exists but does not apply to this cart now.
    #[error(transparent)]
    NotApplicable(NotApplicable),
    /// Every use is taken.
    #[error("the promotion has been used up")]
    Exhausted,
}

/// Why shipping cannot be charged as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShippingProblem {
    /// The store charges shipping and no method was chosen.
    #[error("choose a shipping method")]
    Required,
    /// The method does not ship this cart to this address (or does not exist).
    #[error("shipping method {0} does not apply to this cart and address")]
    NotApplicable(String),
    /// A method was chosen but no address is known.
    #[error("give a shipping address to choose a shipping method")]
    NoAddress,
}

/// What to price a cart for.
#[derive(Debug, Clone, Copy)]
pub struct QuoteInput<'a> {
    /// The cart.
    pub cart: &'a Cart,
    /// Where it goes, if known.
    pub address: Option<&'a Address>,
    /// The chosen shipping method, if any.
    pub method: Option<&'a str>,
    /// Now, for the promotions' validity.
    pub now: Millis,
}

/// A cart priced in full: lines from the catalog, the bill from
/// [`crate::domain::pricing::price`], and what did not take effect.
#[derive(Debug, Clone)]
pub struct Quote {
    /// The lines at catalog prices.
    pub priced: PricedCart,
    /// The bill.
    pub breakdown: Breakdown,
    /// The shipping method charged, if any.
    pub shipping: Option<ShippingMethod>,
    /// Why the cart's promotion code is not applied, if it is not.
    pub code_problem: Option<CodeProblem>,
    /// Why shipping is not charged as asked, if it is not.
    pub shipping_problem: Option<ShippingProblem>,
}

/// Prices a cart in full with the price book: the cart's code (if it applies) and every
/// automatic promotion that matches, the chosen shipping method (if it ships this cart
/// there), the tax for the address.
pub fn quote(tables: &Tables, book: &Book, input: QuoteInput<'_>) -> Result<Quote, StorageError> {
    let priced = price_cart(tables, input.cart)?;
    let lines: Vec<PriceLine> = priced.lines.iter().map(PricedLine::price_line).collect();
    let mut offers: Vec<Offer> = Vec::new();
    let mut code_problem = None;
    if let Some(code) = &input.cart.promotion_code {
        match tables.promotions.get(code)? {
            Some(p) if !p.draft.automatic => {
                let offer = p.offer();
                if let Err(why) = offer.applies(&lines, input.now) {
                    code_problem = Some(CodeProblem::NotApplicable(why));
                } else if p.remaining() == Some(0) {
                    code_problem = Some(CodeProblem::Exhausted);
                } else {
                    offers.push(offer);
                }
            }
            _ => code_problem = Some(CodeProblem::Unknown),
        }
    }
    offers.extend(book.automatic.values().cloned());
    let settings = &book.settings;
    let destination = input.address.map(Address::destination);
    let weight = weight_of(&lines);
    let (shipping, shipping_problem) = match (input.method, &destination) {
        (Some(id), Some(dest)) => match settings.method(id, &dest.country, weight) {
            Some(m) => (Some(m.clone()), None),
            None => (None, Some(ShippingProblem::NotApplicable(id.to_owned()))),
        },
        (Some(_), None) => (None, Some(ShippingProblem::NoAddress)),
        (None, _) if settings.ships() => (None, Some(ShippingProblem::Required)),
        (None, _) => (None, None),
    };
    let rate = shipping.as_ref().map(ShippingMethod::rate);
    let breakdown = price(PriceInput {
        lines: &lines,
        offers: &offers,
        shipping: rate.as_ref(),
        destination: destination.as_ref(),
        taxes: &settings.taxes,
        mode: settings.mode,
        now: input.now,
    });
    Ok(Quote {
        priced,
        breakdown,
        shipping,
        code_problem,
        shipping_problem,
    })
}

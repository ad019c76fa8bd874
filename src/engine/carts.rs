//! Cart use cases: create, read, change lines and email, and the expiry sweep.

use super::{Engine, EngineError, check_id, millis};
use crate::actors::cart::CartFailure;
use crate::catalog::{CodeProblem, QuoteInput, ShippingProblem};
use crate::domain::Sku;
use crate::domain::cart::{Cart, CartDetails, PricedCart};
use crate::domain::pricing::{Breakdown, ShippingMethod, weight_of};
use crate::domain::promotion::normalize_code;

/// A cart priced from the catalog and the price book.
#[derive(Debug, Clone)]
pub struct CartView {
    /// The stored cart.
    pub cart: Cart,
    /// Lines at current catalog prices.
    pub priced: PricedCart,
    /// The bill as it stands: the code and automatic promotions that apply, the chosen
    /// shipping method (if it ships there), the tax for the cart's address.
    pub breakdown: Breakdown,
    /// The shipping method charged, if any.
    pub shipping: Option<ShippingMethod>,
    /// Why the cart's code is not applied, if it is not.
    pub code_problem: Option<CodeProblem>,
    /// Why shipping is not charged as chosen, if it is not.
    pub shipping_problem: Option<ShippingProblem>,
    /// The store's currency.
    pub currency: String,
}

/// A shipping method that ships a cart to its address, with what it would cost.
#[derive(Debug, Clone)]
pub struct ShippingOption {
    /// The method.
    pub method: ShippingMethod,
    /// What it would charge this cart (its rate, or 0 above its free threshold).
    pub charge: u64,
}

impl Engine {
    /// Creates an empty cart: an id the engine can recognise as its own (96 random bits,
    /// the time, a MAC; see [`CartIds`]). Nothing is stored until the cart's first
    /// change, so nothing can be lost: the id is the empty cart, for the cart lifetime.
    ///
    /// [`CartIds`]: crate::domain::cart::CartIds
    pub async fn create_cart(&self) -> Result<CartView, EngineError> {
        let random = super::credentials::random_bytes::<12>()?;
        let now = self.inner.store.clock().now();
        let id = self.inner.cart_ids.issue(random, now);
        let cart = Cart::new(id, now, millis(self.inner.config.cart_ttl));
        self.price_cart(cart).await
    }

    /// A cart, priced from the catalog.
    pub async fn cart(&self, id: &str) -> Result<CartView, EngineError> {
        check_id(id, "cart")?;
        let cart = self.inner.carts.get(id).await??;
        self.price_cart(cart).await
    }

    /// Adds `quantity` of `sku` to the cart.
    pub async fn cart_add_item(
        &self,
        id: &str,
        sku: &str,
        quantity: i64,
    ) -> Result<CartView, EngineError> {
        let sku = Sku::parse(sku)?;
        check_id(id, "cart")?;
        let cart = self.inner.carts.add_item(id, &sku, quantity).await??;
        self.price_cart(cart).await
    }

    /// Sets the quantity of `sku`; 0 removes the line.
    pub async fn cart_set_quantity(
        &self,
        id: &str,
        sku: &str,
        quantity: i64,
    ) -> Result<CartView, EngineError> {
        let sku = Sku::parse(sku)?;
        check_id(id, "cart")?;
        let cart = self.inner.carts.set_quantity(id, &sku, quantity).await??;
        self.price_cart(cart).await
    }

    /// Removes the line of `sku` (no-op if absent).
    pub async fn cart_remove_item(&self, id: &str, sku: &str) -> Result<CartView, EngineError> {
        let sku = Sku::parse(sku)?;
        check_id(id, "cart")?;
        let cart = self.inner.carts.remove_item(id, &sku).await??;
        self.price_cart(cart).await
    }

    /// Records the shopper's email on the cart.
    pub async fn cart_set_email(&self, id: &str, email: &str) -> Result<CartView, EngineError> {
        let details = CartDetails {
            email: Some(email.to_owned()),
            ..CartDetails::default()
        };
        self.cart_set_details(id, &details).await
    }

    /// Records the shopper's email, shipping address or shipping method on the cart
    /// (what is `None` is left as it is).
    pub async fn cart_set_details(
        &self,
        id: &str,
        details: &CartDetails,
    ) -> Result<CartView, EngineError> {
        check_id(id, "cart")?;
        let cart = self.inner.carts.set_details(id, details).await??;
        self.price_cart(cart).await
    }

    /// Enters a promotion code on the cart (replacing any other: one code per cart). A
    /// code that does not exist, is not valid now, does not apply to the cart or is used
    /// up is refused with its reason and changes nothing.
    pub async fn cart_apply_promotion(
        &self,
        id: &str,
        code: &str,
    ) -> Result<CartView, EngineError> {
        check_id(id, "cart")?;
        let code = normalize_code(code).map_err(|_| EngineError::PromotionUnknown)?;
        let mut cart = self.inner.carts.get(id).await??;
        cart.open().map_err(CartFailure::from)?;
        cart.promotion_code = Some(code.clone());
        if let Some(problem) = self.quote(&cart)?.code_problem {
            return Err(problem.into());
        }
        let cart = self.inner.carts.set_promotion(id, Some(code)).await??;
        self.price_cart(cart).await
    }

    /// Removes the promotion code from the cart (`NotFound` if it is not the cart's).
    pub async fn cart_remove_promotion(
        &self,
        id: &str,
        code: &str,
    ) -> Result<CartView, EngineError> {
        check_id(id, "cart")?;
        let cart = self.inner.carts.get(id).await??;
        let code = normalize_code(code).map_err(|_| EngineError::NotFound("promotion code"))?;
        if cart.promotion_code.as_deref() != Some(code.as_str()) {
            return Err(EngineError::NotFound("promotion code"));
        }
        let cart = self.inner.carts.set_promotion(id, None).await??;
        self.price_cart(cart).await
    }

    /// The shipping methods that ship the cart to its address (the cart's, or
    /// `country` if given), cheapest first. Empty without an address or a zone for it.
    pub async fn cart_shipping_methods(
        &self,
        id: &str,
        country: Option<&str>,
    ) -> Result<Vec<ShippingOption>, EngineError> {
        check_id(id, "cart")?;
        let cart = self.inner.carts.get(id).await??;
        let country = match country {
            Some(c) => Some(crate::domain::pricing::country_code("country", c)?),
            None => cart
                .shipping_address
                .as_ref()
                .map(|a| a.destination().country),
        };
        let Some(country) = country else {
            return Ok(Vec::new());
        };
        self.catalog_durable().await?;
        // Priced once: the parcel's weight from its lines, each method's charge for what
        // the lines cost after their discounts (the rule `price` applies).
        let view = self.quote(&cart)?;
        let lines: Vec<_> = view.priced.lines.iter().map(|l| l.price_line()).collect();
        let mut options: Vec<ShippingOption> = self
            .inner
            .book
            .current()
            .settings
            .methods_for(&country, weight_of(&lines))
            .into_iter()
            .map(|m| ShippingOption {
                charge: m.rate().charge(view.breakdown.goods),
                method: m.clone(),
            })
            .collect();
        options.sort_by(|a, b| a.charge.cmp(&b.charge).then(a.method.id.cmp(&b.method.id)));
        Ok(options)
    }

    /// The cart priced in full for its own address and method.
    fn quote(&self, cart: &Cart) -> Result<crate::catalog::Quote, EngineError> {
        let book = self.inner.book.current();
        Ok(crate::catalog::quote(
            self.inner.store.tables(),
            &book,
            QuoteInput {
                cart,
                address: cart.shipping_address.as_ref(),
                method: cart.shipping_method.as_deref(),
                now: self.now(),
            },
        )?)
    }

    async fn price_cart(&self, cart: Cart) -> Result<CartView, EngineError> {
        self.catalog_durable().await?;
        let q = self.quote(&cart)?;
        Ok(CartView {
            cart,
            priced: q.priced,
            breakdown: q.breakdown,
            shipping: q.shipping,
            code_problem: q.code_problem,
            shipping_problem: q.shipping_problem,
            currency: self.inner.config.currency.clone(),
        })
    }

    /// Deletes every stored cart whose expiry has passed. Each goes through its actor, so
    /// a resident cart and the store never disagree. Returns how many were removed.
    pub async fn sweep_expired_carts(&self) -> Result<usize, EngineError> {
        let now = self.inner.store.clock().now();
        let mut removed = 0;
        for page in self.inner.store.tables().carts.pages(1000) {
            for (_, cart) in page?.iter().filter(|(_, c)| c.is_expired(now)) {
                if let Err(CartFailure::NotFound) = self.inner.carts.expire_if_due(&cart.id).await?
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

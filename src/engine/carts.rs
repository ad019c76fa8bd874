//! Cart use cases: create, read, change lines and email, and the expiry sweep.

use super::{Engine, EngineError, check_id};
use crate::actors::cart::CartFailure;
use crate::domain::Sku;
use crate::domain::cart::{Cart, PricedCart};

/// A cart priced from the catalog.
#[derive(Debug, Clone)]
pub struct CartView {
    /// The stored cart.
    pub cart: Cart,
    /// Lines and totals at current catalog prices.
    pub priced: PricedCart,
    /// The store's currency.
    pub currency: String,
}

impl Engine {
    /// Creates an empty cart with a fresh random id (122 random bits).
    pub async fn create_cart(&self) -> Result<CartView, EngineError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let cart = self.inner.carts.create(&id).await??;
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
        check_id(id, "cart")?;
        let cart = self.inner.carts.set_email(id, email).await??;
        self.price_cart(cart).await
    }

    async fn price_cart(&self, cart: Cart) -> Result<CartView, EngineError> {
        self.catalog_durable().await?;
        let priced = crate::catalog::price_cart(self.inner.store.tables(), &cart)?;
        Ok(CartView {
            cart,
            priced,
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

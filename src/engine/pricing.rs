//! The store's pricing settings, for the admin: shipping zones and methods, the tax
//! table and whether prices include tax. Written one at a time, durable before they
//! answer, then put in the price book every cart view and checkout reads.

use super::{Engine, EngineError};
use crate::domain::pricing::{PriceMode, PricingSettings, ShippingZone, TaxRate};
use crate::pricebook::SETTINGS_KEY;

impl Engine {
    /// The pricing settings in force.
    pub fn pricing_settings(&self) -> PricingSettings {
        self.inner.book.current().settings.clone()
    }

    /// Replaces the shipping zones (and their methods). No zones: shipping is not
    /// charged and checkouts need no method.
    pub async fn set_shipping_zones(
        &self,
        zones: Vec<ShippingZone>,
    ) -> Result<PricingSettings, EngineError> {
        self.change_settings(|s| s.with_zones(zones)).await
    }

    /// Replaces the tax table and the price mode.
    pub async fn set_taxes(
        &self,
        mode: PriceMode,
        rates: Vec<TaxRate>,
    ) -> Result<PricingSettings, EngineError> {
        self.change_settings(|s| s.with_taxes(mode, rates)).await
    }

    async fn change_settings(
        &self,
        change: impl FnOnce(&PricingSettings) -> Result<PricingSettings, crate::domain::Invalid>,
    ) -> Result<PricingSettings, EngineError> {
        let _one_at_a_time = self.inner.settings_lock.lock().await;
        let next = change(&self.inner.book.current().settings)?;
        let store = &self.inner.store;
        store.tables().settings.put(SETTINGS_KEY, &next)?;
        let barrier = store.barrier();
        barrier.wait(barrier.ticket()).await?;
        self.inner.book.set_settings(next.clone());
        Ok(next)
    }
}

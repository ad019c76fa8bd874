//! Inventory use cases: stock levels, restocks and reservations, by SKU.

use super::{Engine, EngineError};
use crate::actors::entity::Answer;
use crate::actors::sku::SkuFailure;
use crate::domain::inventory::StockLevel;
use crate::domain::{Invalid, Sku};

/// Stock of one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryView {
    /// Which SKU.
    pub sku: String,
    /// Units in stock.
    pub on_hand: u64,
    /// Units held by open reservations.
    pub reserved: u64,
    /// Units a shopper can buy.
    pub available: u64,
}

impl InventoryView {
    fn new(sku: &Sku, s: &StockLevel) -> Self {
        InventoryView {
            sku: sku.to_string(),
            on_hand: s.on_hand,
            reserved: s.reserved,
            available: s.available(),
        }
    }
}

impl Engine {
    /// A SKU that shoppers and admins address: only SKUs in the catalog.
    async fn catalog_sku(&self, sku: &str) -> Result<Sku, EngineError> {
        let sku = Sku::parse(sku).map_err(|_| EngineError::NotFound("product"))?;
        if self.read_product(&sku).await?.is_none() {
            return Err(EngineError::NotFound("product"));
        }
        Ok(sku)
    }

    /// Stock of a SKU in the catalog.
    pub async fn inventory(&self, sku: &str) -> Result<InventoryView, EngineError> {
        let sku = self.catalog_sku(sku).await?;
        view(&sku, self.inner.skus.get(sku.as_str()).await)
    }

    /// Sets the stock on hand (refused below what is reserved).
    pub async fn set_on_hand(&self, sku: &str, on_hand: i64) -> Result<InventoryView, EngineError> {
        let sku = self.catalog_sku(sku).await?;
        view(
            &sku,
            self.inner.skus.set_on_hand(sku.as_str(), on_hand).await,
        )
    }

    /// Adds received stock.
    pub async fn restock(&self, sku: &str, quantity: i64) -> Result<InventoryView, EngineError> {
        let sku = self.catalog_sku(sku).await?;
        view(&sku, self.inner.skus.restock(sku.as_str(), quantity).await)
    }

    // Reservation traffic (checkout's hot path) reads no catalog: the checkout has priced
    // every line from the catalog already, and a SKU without stock refuses any
    // reservation on its own.

    /// Holds `quantity` units under `reservation` (idempotent on the id).
    pub async fn reserve(
        &self,
        sku: &str,
        reservation: &str,
        quantity: u32,
    ) -> Result<InventoryView, EngineError> {
        let sku = reservation_sku(sku, reservation)?;
        view(
            &sku,
            self.inner
                .skus
                .reserve(sku.as_str(), reservation, quantity)
                .await,
        )
    }

    /// Turns a reservation into a sale. A reservation that has lapsed is refused
    /// ([`EngineError::UnknownReservation`]): reserve again.
    pub async fn commit_reservation(
        &self,
        sku: &str,
        reservation: &str,
    ) -> Result<InventoryView, EngineError> {
        let sku = reservation_sku(sku, reservation)?;
        view(
            &sku,
            self.inner.skus.commit(sku.as_str(), reservation, 0).await,
        )
    }

    /// Releases a reservation (no-op if unknown).
    pub async fn release_reservation(
        &self,
        sku: &str,
        reservation: &str,
    ) -> Result<InventoryView, EngineError> {
        let sku = reservation_sku(sku, reservation)?;
        view(
            &sku,
            self.inner.skus.release(sku.as_str(), reservation).await,
        )
    }
}

/// The view of a stock answer.
fn view(sku: &Sku, answer: Answer<StockLevel, SkuFailure>) -> Result<InventoryView, EngineError> {
    Ok(InventoryView::new(sku, &answer??))
}

/// The SKU and reservation id of a reservation call, checked.
fn reservation_sku(sku: &str, reservation: &str) -> Result<Sku, EngineError> {
    check_reservation_id(reservation)?;
    Sku::parse(sku).map_err(|_| EngineError::NotFound("product"))
}

fn check_reservation_id(id: &str) -> Result<(), Invalid> {
    use crate::domain::inventory::MAX_RESERVATION_ID;
    if id.is_empty() || id.len() > MAX_RESERVATION_ID || id.chars().any(char::is_control) {
        return Err(Invalid::new(
            "reservation",
            format!("must be 1 to {MAX_RESERVATION_ID} bytes of printable characters"),
        ));
    }
    Ok(())
}

//! Inventory use cases: stock levels, restocks and reservations, by SKU.

use super::{Engine, EngineError};
use crate::actors::sku::SkuCmd;
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
    /// Stock operations that shoppers and admins address by SKU: only SKUs in the catalog.
    async fn sku_call(
        &self,
        sku: &str,
        cmd: impl Fn() -> SkuCmd,
    ) -> Result<InventoryView, EngineError> {
        let sku = Sku::parse(sku).map_err(|_| EngineError::NotFound("product"))?;
        if self.read_product(&sku).await?.is_none() {
            return Err(EngineError::NotFound("product"));
        }
        self.stock_call(&sku, cmd).await
    }

    /// Reservation traffic (checkout's hot path): no catalog read. The checkout has
    /// priced every line from the catalog already, and a SKU without stock refuses any
    /// reservation on its own.
    async fn reservation_call(
        &self,
        sku: &str,
        cmd: impl Fn() -> SkuCmd,
    ) -> Result<InventoryView, EngineError> {
        let sku = Sku::parse(sku).map_err(|_| EngineError::NotFound("product"))?;
        self.stock_call(&sku, cmd).await
    }

    async fn stock_call(
        &self,
        sku: &Sku,
        cmd: impl Fn() -> SkuCmd,
    ) -> Result<InventoryView, EngineError> {
        let stock = self.inner.skus.call(sku.as_str(), cmd).await??;
        Ok(InventoryView::new(sku, &stock))
    }

    /// Stock of a SKU in the catalog.
    pub async fn inventory(&self, sku: &str) -> Result<InventoryView, EngineError> {
        self.sku_call(sku, || SkuCmd::Get).await
    }

    /// Sets the stock on hand (refused below what is reserved).
    pub async fn set_on_hand(&self, sku: &str, on_hand: i64) -> Result<InventoryView, EngineError> {
        self.sku_call(sku, || SkuCmd::SetOnHand(on_hand)).await
    }

    /// Adds received stock.
    pub async fn restock(&self, sku: &str, quantity: i64) -> Result<InventoryView, EngineError> {
        self.sku_call(sku, || SkuCmd::Restock(quantity)).await
    }

    /// Holds `quantity` units under `reservation` (idempotent on the id).
    pub async fn reserve(
        &self,
        sku: &str,
        reservation: &str,
        quantity: u32,
    ) -> Result<InventoryView, EngineError> {
        check_reservation_id(reservation)?;
        self.reservation_call(sku, || SkuCmd::Reserve {
            id: reservation.to_owned(),
            quantity,
        })
        .await
    }

    /// Turns a reservation into a sale. A reservation that has lapsed is refused
    /// ([`EngineError::UnknownReservation`]): reserve again.
    pub async fn commit_reservation(
        &self,
        sku: &str,
        reservation: &str,
    ) -> Result<InventoryView, EngineError> {
        check_reservation_id(reservation)?;
        self.reservation_call(sku, || SkuCmd::Commit {
            id: reservation.to_owned(),
            quantity: 0,
        })
        .await
    }

    /// Releases a reservation (no-op if unknown).
    pub async fn release_reservation(
        &self,
        sku: &str,
        reservation: &str,
    ) -> Result<InventoryView, EngineError> {
        check_reservation_id(reservation)?;
        self.reservation_call(sku, || SkuCmd::Release {
            id: reservation.to_owned(),
        })
        .await
    }
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

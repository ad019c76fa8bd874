//! The cart entity: one actor per cart, state = the stored [`Cart`] (or nothing).

use crate::domain::cart::{Cart, CartError};
use crate::domain::{Millis, Sku, now_millis};
use crate::storage::{StorageError, Store};

use super::entity::{Effect, Entity};

/// Commands a cart accepts.
#[derive(Debug, Clone)]
pub(crate) enum CartCmd {
    Create,
    Get,
    Add(Sku, i64),
    Set(Sku, i64),
    Remove(Sku),
    SetEmail(String),
    /// Deletes the cart if it has expired (the store sweep).
    ExpireIfDue,
}

/// Why a cart command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CartFailure {
    /// No such cart (or it expired).
    #[error("cart not found")]
    NotFound,
    /// A new cart's id was already taken.
    #[error("cart already exists")]
    AlreadyExists,
    /// The SKU is not in the catalog.
    #[error("unknown sku {0}")]
    UnknownSku(Sku),
    /// A cart rule refused the change.
    #[error(transparent)]
    Rule(#[from] CartError),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) struct CartEntity {
    pub store: Store,
    pub ttl_ms: Millis,
}

impl CartEntity {
    fn save(&self, state: &mut Option<Cart>, next: Cart) -> Effect<Result<Cart, CartFailure>> {
        match self.store.tables().carts.put(&next.id, &next) {
            Ok(()) => {
                *state = Some(next.clone());
                Effect::wrote(Ok(next))
            }
            Err(e) => Effect::read(Err(e.into())),
        }
    }

    fn known_sku(&self, sku: &Sku) -> Result<(), CartFailure> {
        match self.store.tables().products.contains(sku.as_str()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(CartFailure::UnknownSku(sku.clone())),
            Err(e) => Err(e.into()),
        }
    }
}

impl Entity for CartEntity {
    const KIND: &'static str = "cart";
    type State = Option<Cart>;
    type Cmd = CartCmd;
    type Reply = Result<Cart, CartFailure>;

    fn load(&self, id: &str) -> Result<Option<Cart>, StorageError> {
        let cart = self.store.tables().carts.get(id)?;
        match cart {
            Some(c) if c.is_expired(now_millis()) => {
                self.store.tables().carts.remove(id)?;
                Ok(None)
            }
            other => Ok(other),
        }
    }

    async fn handle(
        &self,
        id: &str,
        state: &mut Option<Cart>,
        cmd: CartCmd,
    ) -> Effect<Self::Reply> {
        let now = now_millis();
        if state.as_ref().is_some_and(|c| c.is_expired(now)) {
            if let Err(e) = self.store.tables().carts.remove(id) {
                return Effect::read(Err(e.into()));
            }
            *state = None;
        }
        let ttl = self.ttl_ms;
        let next = match (&cmd, state.as_ref()) {
            (CartCmd::Create, None) => Ok(Cart::new(id.to_owned(), now, ttl)),
            (CartCmd::Create, Some(_)) => return Effect::read(Err(CartFailure::AlreadyExists)),
            (CartCmd::ExpireIfDue, _) => {
                return Effect::read(state.clone().ok_or(CartFailure::NotFound));
            }
            (_, None) => return Effect::read(Err(CartFailure::NotFound)),
            (CartCmd::Get, Some(c)) => return Effect::read(Ok(c.clone())),
            (CartCmd::Add(sku, q), Some(c)) => self.known_sku(sku).and_then(|()| {
                c.add_item(sku.clone(), *q, now, ttl)
                    .map_err(CartFailure::from)
            }),
            (CartCmd::Set(sku, q), Some(c)) => {
                // Lowering or removing a line never needs the catalog; adding one does.
                let known = if *q <= 0 || c.quantity_of(sku) > 0 {
                    Ok(())
                } else {
                    self.known_sku(sku)
                };
                known.and_then(|()| {
                    c.set_quantity(sku.clone(), *q, now, ttl)
                        .map_err(CartFailure::from)
                })
            }
            (CartCmd::Remove(sku), Some(c)) => {
                c.remove_item(sku, now, ttl).map_err(CartFailure::from)
            }
            (CartCmd::SetEmail(email), Some(c)) => {
                c.set_email(email, now, ttl).map_err(CartFailure::from)
            }
        };
        match next {
            Ok(cart) => self.save(state, cart),
            Err(e) => Effect::read(Err(e)),
        }
    }

    fn evict_now(&self, state: &Option<Cart>) -> bool {
        state.is_none()
    }
}

//! Actors: every cart, inventory SKU and order is a virtual ractor actor.
//!
//! ```text
//!  Engine
//!   ├─ Directory<CartEntity>    ─ Supervisor ─┬─ Host (cart a1f…)
//!   │                                         └─ Host (cart 93c…)
//!   ├─ Directory<SkuEntity>     ─ Supervisor ─┬─ Host (SKU HELM-01)
//!   │                                         └─ …
//!   ├─ Directory<CatalogEntity> ─ Supervisor ─── Host ("catalog": serialises product writes)
//!   └─ Directory<OrderEntity>   ─ Supervisor ─┬─ Host (order 5d2…: runs its checkout saga)
//!                                             └─ …
//! ```
//!
//! `entity.rs` is the shared machinery (activation, passivation, supervision, the write
//! path through the durability barrier); each other file defines one kind. Nothing
//! outside this module sees a message enum or an `ActorRef`: the engine calls the typed
//! methods of each kind's handle.

pub(crate) mod cart;
pub(crate) mod catalog;
pub(crate) mod customer;
pub(crate) mod entity;
pub(crate) mod order;
pub(crate) mod promotion;
pub(crate) mod sku;

pub use entity::CallError;

//! Emporium: an actor-based, single-process commerce engine over an embedded store.
//!
//! # Layout
//!
//! - [`engine`]: the facade — [`Engine::open`] and one async method per use case. HTTP
//!   handlers, embedding programs and benches all go through it.
//! - [`domain`]: pure types and rules (carts, inventory, products, validation).
//! - `actors`: one virtual ractor actor per cart and per SKU, activated from the store
//!   on their first message, passivated when idle, supervised per kind.
//! - [`storage`]: the only module that touches sled — typed tables, codecs, atomic
//!   batches and the group-committed durability barrier.
//! - [`search`]: the tantivy index derived from the store (full text, facets, suggest).
//! - [`http`]: the axum JSON API, thin over the engine.
//!
//! Dependencies point one way: `http → engine → actors → storage`; all may use `domain`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), emporium::EngineError> {
//! use emporium::{Config, Engine};
//! let engine = Engine::open(Config::new("./data")).await?;
//! let cart = engine.create_cart().await?;
//! println!("{}", cart.cart.id);
//! engine.shutdown().await
//! # }
//! ```

#![warn(missing_docs)]

pub mod actors;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod http;
pub mod notify;
pub mod payments;
pub mod recommend;
pub mod search;
pub mod storage;

pub use actors::{Delivery, Subscriber};
pub use config::{Config, Durability};
pub use engine::{
    CartView, Engine, EngineError, EngineStats, ImportReport, InventoryView, KindCounts,
    ProductView, SearchPage, SearchRequest,
};

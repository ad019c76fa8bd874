//! Emporium: an actor-based, single-process commerce engine over an embedded store.
//!
//! # Layout
//!
//! - [`app`]: the application — [`app::Application::build`] is the one startup path of
//!   the binary, the tests and the examples.
//! - [`engine`]: the facade — [`Engine::open`] and one async method per use case. HTTP
//!   handlers, embedding programs and benches all go through it.
//! - [`domain`]: pure types and rules (carts, inventory, orders, products, payment and
//!   notification records, validation).
//! - `actors`: one virtual ractor actor per cart, SKU and order and the catalog writer,
//!   activated from the store on their first message, passivated when idle, supervised
//!   per kind.
//! - [`dispatcher`]: feeds the durable event log to in-process subscribers
//!   ([`notify`], [`recommend`]).
//! - [`payments`]: the gateway trait, its call policy and the simulated gateway.
//! - [`catalog`]: the catalog's read side for pricing.
//! - [`storage`]: the only module that touches sled — typed tables, codecs, atomic
//!   batches and the group-committed durability barrier.
//! - [`search`]: the tantivy index derived from the store (full text, facets, suggest).
//! - [`http`]: the axum JSON API, thin over the engine.
//!
//! Dependencies point one way: `http → engine → actors, notify, recommend, search →
//! payments, catalog, dispatcher → storage → domain`; all may use `domain`, and
//! `storage` uses nothing else of ours (a test in `storage` checks that).
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
pub mod app;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dispatcher;
pub mod domain;
pub mod engine;
pub mod http;
pub mod media;
pub mod notify;
pub mod payments;
pub mod pricebook;
pub mod recommend;
pub mod search;
pub mod storage;
pub mod webhooks;

pub use clock::Clock;
pub use config::{Config, Durability};
pub use dispatcher::{Delivery, Subscriber};
pub use engine::{
    CartView, Engine, EngineError, EngineStats, ImportReport, InventoryView, KindCounts,
    ProductView, SearchPage, SearchRequest,
};

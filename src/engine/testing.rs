//! Hooks for tests that exercise failure handling from outside the crate (the integration
//! tests cannot see `#[cfg(test)]` items). Nothing here is for production callers.

use super::{Engine, EngineError};

/// Makes the actor of cart `id` panic, to exercise supervision (the next message
/// re-activates it from the store).
pub async fn panic_cart(engine: &Engine, id: &str) -> Result<(), EngineError> {
    Ok(engine.inner.carts.0.panic_entity(id).await?)
}

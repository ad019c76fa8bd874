//! Promotion codes: the admin's create, replace, read, list and delete, and the uses a
//! checkout takes (reserve for an order, commit with it, release or give back).

use super::{Engine, EngineError, millis};
use crate::actors::promotion::PromotionFailure;
use crate::domain::promotion::{Promotion, PromotionDraft, UseError, normalize_code};

/// Most promotions one listing returns.
pub const MAX_PROMOTIONS_LISTED: usize = 1000;

impl From<PromotionFailure> for EngineError {
    fn from(e: PromotionFailure) -> Self {
        match e {
            PromotionFailure::NotFound => EngineError::NotFound("promotion"),
            PromotionFailure::AlreadyExists => EngineError::AlreadyExists("promotion".into()),
            PromotionFailure::Use(UseError::Exhausted) => EngineError::PromotionExhausted,
            PromotionFailure::Use(UseError::CustomerLimit) => EngineError::PromotionCustomerLimit,
            PromotionFailure::Use(e @ (UseError::Busy | UseError::NotHeld(_))) => {
                EngineError::unavailable_because("a promotion use", e)
            }
            PromotionFailure::Storage(s) => s.into(),
        }
    }
}

/// A code as a lookup takes it: one that cannot exist is not found.
fn existing_code(code: &str) -> Result<String, EngineError> {
    normalize_code(code).map_err(|_| EngineError::NotFound("promotion"))
}

impl Engine {
    /// Creates a promotion code (`AlreadyExists` if it is taken).
    pub async fn create_promotion(
        &self,
        code: &str,
        draft: PromotionDraft,
    ) -> Result<Promotion, EngineError> {
        let code = normalize_code(code)?;
        let draft = draft.validated()?;
        Ok(self.inner.promotions.create(&code, draft).await??)
    }

    /// Creates or replaces a promotion's settings; its uses so far are kept.
    pub async fn put_promotion(
        &self,
        code: &str,
        draft: PromotionDraft,
    ) -> Result<Promotion, EngineError> {
        let code = normalize_code(code)?;
        let draft = draft.validated()?;
        Ok(self.inner.promotions.put(&code, draft).await??)
    }

    /// A promotion, with its uses.
    pub async fn promotion(&self, code: &str) -> Result<Promotion, EngineError> {
        let code = existing_code(code)?;
        Ok(self.inner.promotions.get(&code).await??)
    }

    /// Every promotion, by code (at most [`MAX_PROMOTIONS_LISTED`]).
    pub async fn promotions(&self) -> Result<Vec<Promotion>, EngineError> {
        let mut out = Vec::new();
        for page in self.inner.store.tables().promotions.pages(200) {
            out.extend(page?.into_iter().map(|(_, p)| p));
            if out.len() >= MAX_PROMOTIONS_LISTED {
                out.truncate(MAX_PROMOTIONS_LISTED);
                break;
            }
        }
        let barrier = self.inner.store.barrier();
        barrier.wait(barrier.current()).await?;
        Ok(out)
    }

    /// Deletes a promotion.
    pub async fn delete_promotion(&self, code: &str) -> Result<(), EngineError> {
        let code = existing_code(code)?;
        self.inner.promotions.delete(&code).await??;
        Ok(())
    }

    /// Holds a use of `code` for `order_id` by `customer` (`customer:{id}` or
    /// `email:{address}`) until the checkout commits or releases it, or the reservation
    /// TTL passes. Idempotent on the order. [`EngineError::PromotionExhausted`] when every
    /// use is taken, [`EngineError::PromotionCustomerLimit`] when the customer has used it
    /// as often as allowed.
    pub async fn reserve_promotion(
        &self,
        code: &str,
        order_id: &str,
        customer: &str,
    ) -> Result<Promotion, EngineError> {
        let code = existing_code(code)?;
        let expires_at = self.now() + millis(self.inner.config.reservation_ttl);
        Ok(self
            .inner
            .promotions
            .reserve(&code, order_id, customer, expires_at)
            .await??)
    }

    /// Commits the use held for `order_id` (idempotent).
    pub async fn commit_promotion(
        &self,
        code: &str,
        order_id: &str,
    ) -> Result<Promotion, EngineError> {
        let code = existing_code(code)?;
        Ok(self.inner.promotions.commit(&code, order_id).await??)
    }

    /// Releases the use held for `order_id` (idempotent).
    pub async fn release_promotion(
        &self,
        code: &str,
        order_id: &str,
    ) -> Result<Promotion, EngineError> {
        let code = existing_code(code)?;
        Ok(self.inner.promotions.release(&code, order_id).await??)
    }

    /// Gives back the use committed for `order_id` (its order was cancelled in full).
    pub async fn return_promotion(
        &self,
        code: &str,
        order_id: &str,
    ) -> Result<Promotion, EngineError> {
        let code = existing_code(code)?;
        Ok(self.inner.promotions.give_back(&code, order_id).await??)
    }
}

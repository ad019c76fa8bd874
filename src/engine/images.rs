//! Product images: upload (checked, stored durably, then added to the product by the
//! catalog writer), removal, and the files by name (see `crate::media`).

use super::{Engine, EngineError};
use crate::domain::Sku;
use crate::media::{self, ImageKind};

impl Engine {
    /// Stores an image and adds its URL (the 480-pixel variant) to the product's images;
    /// the same image twice is one entry. The file is durable before this returns; the
    /// product write is durable as every product write is.
    pub async fn add_product_image(
        &self,
        sku: &str,
        bytes: Vec<u8>,
    ) -> Result<super::ProductView, EngineError> {
        self.add_image(sku, bytes, true).await
    }

    /// [`Engine::add_product_image`], its variants made on their first request rather
    /// than now (the demo's pictures: a shop starting up need not resize 226 of them).
    pub async fn add_product_image_lazily(
        &self,
        sku: &str,
        bytes: Vec<u8>,
    ) -> Result<super::ProductView, EngineError> {
        self.add_image(sku, bytes, false).await
    }

    async fn add_image(
        &self,
        sku: &str,
        bytes: Vec<u8>,
        eager: bool,
    ) -> Result<super::ProductView, EngineError> {
        let sku = Sku::parse(sku).map_err(|_| EngineError::NotFound("product"))?;
        self.read_product(&sku)
            .await?
            .ok_or(EngineError::NotFound("product"))?;
        let image = self.inner.media.ingest(bytes, eager).await?;
        let url = image.url(480);
        let (product, _) = self
            .inner
            .catalog
            .edit_images(&sku, crate::actors::catalog::ImageEdit::Add(url))
            .await??;
        self.stored_view(product).await
    }

    /// Removes the image `hash` from the product's images (`NotFound` if it is not one
    /// of them). The file stays: the same image may be another product's.
    pub async fn remove_product_image(
        &self,
        sku: &str,
        hash: &str,
    ) -> Result<super::ProductView, EngineError> {
        let sku = Sku::parse(sku).map_err(|_| EngineError::NotFound("product"))?;
        let product = self
            .read_product(&sku)
            .await?
            .ok_or(EngineError::NotFound("product"))?;
        let url = product
            .images
            .iter()
            .find(|u| media::hash_of_url(u) == Some(hash))
            .ok_or(EngineError::NotFound("image"))?
            .clone();
        let (product, _) = self
            .inner
            .catalog
            .edit_images(&sku, crate::actors::catalog::ImageEdit::Remove(url))
            .await??;
        self.stored_view(product).await
    }

    /// The bytes of image `hash` at `width` as `kind`, made now if need be; `None` if
    /// there is no such image.
    pub async fn image_file(
        &self,
        hash: &str,
        width: u32,
        kind: ImageKind,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.inner.media.variant(hash, width, kind).await?)
    }

    /// Whether image `hash` is stored.
    pub fn has_image(&self, hash: &str) -> bool {
        self.inner.media.has(hash)
    }
}

//! Product images: accepted only as JPEG, PNG or WebP (told by their magic bytes, never by
//! a name or a declared type), their pixel size capped before anything is decoded, stored
//! content-addressed (`images/{sha256}.{ext}` in the data directory, written to a temporary
//! file, fsynced, renamed into place and the directory fsynced before the upload is
//! answered), and served in fixed widths made from the original (`{sha256}-{width}.{ext}`)
//! by bounded background work — at most [`RESIZE_SLOTS`] at a time — or on the first
//! request for one not made yet.
//!
//! Files, not sled: an image is far over the store's record limit, and sled never fsyncs
//! the blobs it keeps large values in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest;

/// The widths every image is served in.
pub const VARIANT_WIDTHS: [u32; 3] = [160, 480, 1200];
/// Largest upload accepted, in bytes.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// Longest side accepted, in pixels.
pub const MAX_SIDE: u32 = 12_000;
/// Most pixels accepted (a decompression bomb declares far more than its bytes hold).
pub const MAX_PIXELS: u64 = 40_000_000;
/// Resizes run at once.
pub const RESIZE_SLOTS: usize = 2;

/// An accepted image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP.
    WebP,
}

impl ImageKind {
    /// The format of `bytes`, by their magic bytes; `None` for anything else (SVG, GIF,
    /// HTML, …).
    pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageKind::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageKind::Png)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageKind::WebP)
        } else {
            None
        }
    }

    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpg",
            ImageKind::Png => "png",
            ImageKind::WebP => "webp",
        }
    }

    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::WebP => "image/webp",
        }
    }

    /// The kind of an extension.
    pub fn from_ext(ext: &str) -> Option<ImageKind> {
        [ImageKind::Jpeg, ImageKind::Png, ImageKind::WebP]
            .into_iter()
            .find(|k| k.ext() == ext)
    }

    fn format(self) -> image::ImageFormat {
        match self {
            ImageKind::Jpeg => image::ImageFormat::Jpeg,
            ImageKind::Png => image::ImageFormat::Png,
            ImageKind::WebP => image::ImageFormat::WebP,
        }
    }
}

/// Why an image was refused or could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    /// Not JPEG, PNG or WebP by its first bytes.
    #[error("only JPEG, PNG and WebP images are accepted")]
    Unsupported,
    /// Over [`MAX_IMAGE_BYTES`].
    #[error("an image is at most {MAX_IMAGE_BYTES} bytes")]
    TooLarge,
    /// Over [`MAX_SIDE`] or [`MAX_PIXELS`].
    #[error("{width}×{height} pixels is over the limit ({MAX_SIDE} a side, {MAX_PIXELS} in all)")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The bytes do not decode as the image they claim to be.
    #[error("the image does not decode: {0}")]
    Undecodable(String),
    /// The file system failed.
    #[error("storing the image failed: {0}")]
    Io(#[source] Arc<std::io::Error>),
}

impl From<std::io::Error> for ImageError {
    fn from(e: std::io::Error) -> Self {
        ImageError::Io(Arc::new(e))
    }
}

/// An image as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// SHA-256 of the original bytes, hex.
    pub hash: String,
    /// Its format.
    pub kind: ImageKind,
    /// Pixel width of the original.
    pub width: u32,
    /// Pixel height of the original.
    pub height: u32,
}

impl StoredImage {
    /// The URL of the image at `width` (one of [`VARIANT_WIDTHS`]).
    pub fn url(&self, width: u32) -> String {
        variant_url(&self.hash, width, self.kind)
    }
}

/// `/images/{hash}-{width}.{ext}`.
pub fn variant_url(hash: &str, width: u32, kind: ImageKind) -> String {
    format!("/images/{hash}-{width}.{}", kind.ext())
}

/// One of our image URLs at another width (one of [`VARIANT_WIDTHS`]); any other URL as
/// it is.
pub fn at_width(url: &str, width: u32) -> String {
    match url.strip_prefix("/images/").and_then(parse_variant) {
        Some((hash, _, kind)) => variant_url(hash, width, kind),
        None => url.to_owned(),
    }
}

/// The hash named by one of our image URLs (any width), if it is one.
pub fn hash_of_url(url: &str) -> Option<&str> {
    let name = url.strip_prefix("/images/")?;
    let (hash, _) = name.split_once('-')?;
    is_hash(hash).then_some(hash)
}

fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A variant's file name parsed: `{hash}-{width}.{ext}`.
pub fn parse_variant(name: &str) -> Option<(&str, u32, ImageKind)> {
    let (stem, ext) = name.rsplit_once('.')?;
    let (hash, width) = stem.split_once('-')?;
    let width: u32 = width.parse().ok()?;
    (is_hash(hash) && VARIANT_WIDTHS.contains(&width)).then_some(())?;
    Some((hash, width, ImageKind::from_ext(ext)?))
}

fn limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_PIXELS * 4 + (64 << 20));
    l
}

fn reader(bytes: &[u8], kind: ImageKind) -> image::ImageReader<std::io::Cursor<&[u8]>> {
    let mut r = image::ImageReader::with_format(std::io::Cursor::new(bytes), kind.format());
    r.limits(limits());
    r
}

/// Checks an upload: its format by magic bytes, its size, its declared dimensions (read
/// from the header, before any pixel is decoded), then that it decodes within the limits.
pub fn inspect(bytes: &[u8]) -> Result<StoredImage, ImageError> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge);
    }
    let kind = ImageKind::sniff(bytes).ok_or(ImageError::Unsupported)?;
    // The header alone (no pixel is decoded to read it), so that the declared size is
    // known and refused with its figures.
    let (width, height) =
        image::ImageReader::with_format(std::io::Cursor::new(bytes), kind.format())
            .into_dimensions()
            .map_err(|e| ImageError::Undecodable(e.to_string()))?;
    if width == 0
        || height == 0
        || width > MAX_SIDE
        || height > MAX_SIDE
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(ImageError::TooManyPixels { width, height });
    }
    reader(bytes, kind)
        .decode()
        .map_err(|e| ImageError::Undecodable(e.to_string()))?;
    Ok(StoredImage {
        hash: hex(&sha2::Sha256::digest(bytes)),
        kind,
        width,
        height,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `image` resized to `width` pixels wide (never wider than it is), encoded as `kind`.
pub fn resize(original: &[u8], kind: ImageKind, width: u32) -> Result<Vec<u8>, ImageError> {
    let img = reader(original, kind)
        .decode()
        .map_err(|e| ImageError::Undecodable(e.to_string()))?;
    let img = if img.width() > width {
        img.resize(width, u32::MAX, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    // JPEG has no alpha channel.
    let img = match kind {
        ImageKind::Jpeg => image::DynamicImage::ImageRgb8(img.to_rgb8()),
        _ => img,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, kind.format())
        .map_err(|e| ImageError::Undecodable(e.to_string()))?;
    Ok(out.into_inner())
}

/// Writes `bytes` to `path` durably: a temporary file beside it, fsynced, renamed into
/// place, the directory fsynced.
fn write_durably(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = path.parent().expect("a file in a directory");
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("image")
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_all()?;
    }
    drop(f);
    std::fs::rename(&tmp, path)?;
    if sync {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The image files of a data directory.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    slots: Arc<tokio::sync::Semaphore>,
}

impl MediaStore {
    /// The images under `data_dir/images` (created if missing).
    pub fn open(data_dir: &Path) -> std::io::Result<MediaStore> {
        let dir = data_dir.join("images");
        std::fs::create_dir_all(&dir)?;
        Ok(MediaStore {
            dir,
            slots: Arc::new(tokio::sync::Semaphore::new(RESIZE_SLOTS)),
        })
    }

    fn original_path(&self, hash: &str, kind: ImageKind) -> PathBuf {
        self.dir.join(format!("{hash}.{}", kind.ext()))
    }

    fn variant_path(&self, hash: &str, width: u32, kind: ImageKind) -> PathBuf {
        self.dir.join(format!("{hash}-{width}.{}", kind.ext()))
    }

    /// Checks and stores an upload; durable when this returns. The variants are made in
    /// the background if `eager`, else on their first request. The same bytes again are
    /// the same image (nothing is rewritten).
    pub async fn ingest(&self, bytes: Vec<u8>, eager: bool) -> Result<StoredImage, ImageError> {
        let store = self.clone();
        let stored = tokio::task::spawn_blocking(move || -> Result<_, ImageError> {
            let image = inspect(&bytes)?;
            let path = store.original_path(&image.hash, image.kind);
            if !path.exists() {
                write_durably(&path, &bytes, true)?;
            }
            Ok(image)
        })
        .await
        .map_err(|e| ImageError::Io(Arc::new(std::io::Error::other(e))))??;
        if !eager {
            return Ok(stored);
        }
        let (store, image) = (self.clone(), stored.clone());
        tokio::spawn(async move {
            for width in VARIANT_WIDTHS {
                if let Err(e) = store.variant(&image.hash, width, image.kind).await {
                    tracing::warn!(hash = %image.hash, width, error = %e, "resizing failed; it will be tried on first request");
                }
            }
        });
        Ok(stored)
    }

    /// The bytes of a variant, made now if it was not made yet; `None` if there is no
    /// such original.
    pub async fn variant(
        &self,
        hash: &str,
        width: u32,
        kind: ImageKind,
    ) -> Result<Option<Vec<u8>>, ImageError> {
        let path = self.variant_path(hash, width, kind);
        match tokio::fs::read(&path).await {
            Ok(b) => return Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let original = match tokio::fs::read(self.original_path(hash, kind)).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        // Made by another request while this one waited?
        if let Ok(b) = tokio::fs::read(&path).await {
            return Ok(Some(b));
        }
        let made = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ImageError> {
            let bytes = resize(&original, kind, width)?;
            // A variant can always be made again: renamed into place, not fsynced.
            write_durably(&path, &bytes, false)?;
            Ok(bytes)
        })
        .await
        .map_err(|e| ImageError::Io(Arc::new(std::io::Error::other(e))))??;
        Ok(Some(made))
    }

    /// Whether the original of `hash` is stored (any format).
    pub fn has(&self, hash: &str) -> bool {
        [ImageKind::Jpeg, ImageKind::Png, ImageKind::WebP]
            .into_iter()
            .any(|k| self.original_path(hash, k).exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn formats_are_told_by_their_bytes_and_anything_else_is_refused() {
        assert_eq!(ImageKind::sniff(&png(2, 2)), Some(ImageKind::Png));
        assert_eq!(
            ImageKind::sniff(b"\xFF\xD8\xFF\xE0rest"),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(
            ImageKind::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageKind::WebP)
        );
        for bad in [
            &b"<svg xmlns='http://www.w3.org/2000/svg'/>"[..],
            b"GIF89a....",
            b"<html><script>alert(1)</script>",
            b"",
        ] {
            assert!(matches!(inspect(bad), Err(ImageError::Unsupported)));
        }
        // PNG's magic with garbage after it.
        let mut broken = png(4, 4);
        broken.truncate(20);
        assert!(matches!(inspect(&broken), Err(ImageError::Undecodable(_))));
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // A valid PNG header declaring 100 000 × 100 000 pixels, and nothing behind it.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        // The IHDR chunk's CRC (over its type and data, bytes 12..29) made right again.
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            inspect(&bomb),
            Err(ImageError::TooManyPixels {
                width: 100_000,
                height: 100_000
            })
        ));
    }

    /// CRC-32 (IEEE), as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn variants_keep_the_aspect_and_never_grow() {
        let original = png(600, 300);
        let info = inspect(&original).unwrap();
        assert_eq!(
            (info.width, info.height, info.kind),
            (600, 300, ImageKind::Png)
        );
        let small = resize(&original, ImageKind::Png, 160).unwrap();
        let small = inspect(&small).unwrap();
        assert_eq!((small.width, small.height), (160, 80));
        let big = inspect(&resize(&original, ImageKind::Png, 1200).unwrap()).unwrap();
        assert_eq!(big.width, 600);
        assert_eq!(
            parse_variant(&format!("{}-480.png", info.hash)),
            Some((info.hash.as_str(), 480, ImageKind::Png))
        );
        assert_eq!(parse_variant(&format!("{}-481.png", info.hash)), None);
        assert_eq!(parse_variant("../../etc/passwd-160.png"), None);
        assert_eq!(hash_of_url(&info.url(160)), Some(info.hash.as_str()));
        assert_eq!(at_width(&info.url(480), 1200), info.url(1200));
        assert_eq!(
            at_width("https://cdn.example.com/a.jpg", 160),
            "https://cdn.example.com/a.jpg"
        );
    }
}

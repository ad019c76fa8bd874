//! Product images over HTTP (upload, refusals, variants, caching headers, removal, a
//! `kill -9` right after an upload) and HTTP caching of catalog reads.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// A PNG of `width × height` with a gradient.
fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The same picture as a JPEG.
fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(width, height, |x, _| image::Rgb([200, (x % 256) as u8, 40]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

async fn upload(app: &TestApp, sku: &str, bytes: Vec<u8>, content_type: &str) -> Resp {
    app.send(
        app.admin(
            app.client
                .post(app.url(&format!("/api/v1/admin/products/{sku}/images"))),
        )
        .header("content-type", content_type)
        .body(bytes),
    )
    .await
}

async fn raw_get(app: &TestApp, path: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_checked_stored_by_content_served_in_widths_and_cached_for_good() {
    let app = spawn_app().await;
    app.create_product("HELM-1", 5000, 3).await;
    let original = png(1600, 900);
    let r = upload(&app, "HELM-1", original.clone(), "image/png").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["images"][0].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("/images/") && url.ends_with("-480.png"),
        "{url}"
    );
    // The same bytes again: the same image, listed once.
    let again = upload(&app, "HELM-1", original, "application/octet-stream").await;
    assert_eq!(again.body["images"].as_array().unwrap().len(), 1);
    let hash = url
        .trim_start_matches("/images/")
        .split('-')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(hash.len(), 64);

    for (width, height) in [(160, 90), (480, 270), (1200, 675)] {
        let path = format!("/images/{hash}-{width}.png");
        let res = raw_get(&app, &path, None).await;
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers().clone();
        assert_eq!(h["content-type"], "image/png");
        assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let etag = h["etag"].to_str().unwrap().to_owned();
        assert_eq!(etag, format!("\"{hash}-{width}\""));
        let bytes = res.bytes().await.unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (width, height));
        let not_modified = raw_get(&app, &path, Some(&etag)).await;
        assert_eq!(not_modified.status(), 304);
        assert_eq!(not_modified.headers()["etag"].to_str().unwrap(), etag);
        assert!(not_modified.bytes().await.unwrap().is_empty());
    }
    for missing in [
        format!("/images/{hash}-481.png"),
        format!("/images/{hash}-480.jpg"),
        format!("/images/{}-480.png", "0".repeat(64)),
        "/images/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/images/nothing".to_owned(),
    ] {
        let res = raw_get(&app, &missing, None).await;
        assert_eq!(res.status(), 404, "{missing}");
    }

    // A JPEG is served as a JPEG.
    let r = upload(&app, "HELM-1", jpeg(300, 200), "image/jpeg").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let jpg = r.body["images"][1].as_str().unwrap().to_owned();
    assert!(jpg.ends_with("-480.jpg"), "{jpg}");
    let res = raw_get(&app, &jpg, None).await;
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(img.width(), 300, "never made wider than the original");

    // Refused: not an image we take (whatever it claims to be), too many pixels,
    // undecodable, too large, an unknown product. Nothing is added.
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    for (bytes, ct, status, code) in [
        (svg, "image/svg+xml", 415, "unsupported_image"),
        (
            b"<html><script>alert(1)</script></html>".to_vec(),
            "image/png",
            415,
            "unsupported_image",
        ),
        (
            b"GIF89a\x01\x00\x01\x00".to_vec(),
            "image/gif",
            415,
            "unsupported_image",
        ),
        (
            png(4, 4)[..30].to_vec(),
            "image/png",
            422,
            "validation_failed",
        ),
        (
            vec![0xFF; 10 * 1024 * 1024 + 10],
            "image/jpeg",
            413,
            "payload_too_large",
        ),
    ] {
        let r = upload(&app, "HELM-1", bytes, ct).await;
        assert_eq!((r.status, r.code()), (status, code), "{ct}: {}", r.body);
    }
    let r = upload(&app, "NOPE-1", png(10, 10), "image/png").await;
    assert_eq!(r.status, 404);
    let product = app.get("/api/v1/products/HELM-1").await;
    assert_eq!(product.body["images"].as_array().unwrap().len(), 2);

    // Removal.
    let r = app
        .send(
            app.admin(
                app.client
                    .delete(app.url(&format!("/api/v1/admin/products/HELM-1/images/{hash}"))),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["images"], json!([jpg]));
    let r = app
        .send(
            app.admin(
                app.client
                    .delete(app.url(&format!("/api/v1/admin/products/HELM-1/images/{hash}"))),
            ),
        )
        .await;
    assert_eq!(r.status, 404);
    // Uploads are for admins only.
    let anonymous = app
        .send(
            app.client
                .post(app.url("/api/v1/admin/products/HELM-1/images"))
                .body(png(4, 4)),
        )
        .await;
    assert_eq!(anonymous.status, 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_reads_carry_an_etag_and_answer_304_until_they_change() {
    let app = spawn_app().await;
    app.create_product_in("HELM-1", "Space Suits/Helmets", 5000, 3)
        .await;
    for path in [
        "/api/v1/products/HELM-1",
        "/api/v1/categories",
        "/api/v1/products?q=product",
    ] {
        let first = raw_get(&app, path, None).await;
        assert_eq!(first.status(), 200, "{path}");
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(first.headers()["cache-control"], "public, max-age=60");
        let second = raw_get(&app, path, Some(&etag)).await;
        assert_eq!(second.status(), 304, "{path}");
        assert_eq!(second.headers()["etag"].to_str().unwrap(), etag);
        let other = raw_get(&app, path, Some("\"something-else\"")).await;
        assert_eq!(other.status(), 200);
    }
    // A change to the product is a new tag.
    let tag = raw_get(&app, "/api/v1/products/HELM-1", None)
        .await
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    app.set_on_hand("HELM-1", 9).await;
    let after = raw_get(&app, "/api/v1/products/HELM-1", Some(&tag)).await;
    assert_eq!(
        after.status(),
        200,
        "the stock changed: not the same document"
    );
    // Personal answers are never marked public.
    let cart = app.create_cart().await;
    let res = raw_get(&app, &format!("/api/v1/carts/{cart}"), None).await;
    assert!(res.headers().get("etag").is_none());
    assert!(
        res.headers()
            .get("cache-control")
            .is_none_or(|v| !v.to_str().unwrap().contains("public"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_upload_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_binary(&data, &[]).await;
    server
        .stock_product(BINARY_TOKEN, "HELM-1", "Helmet", 5000, 1)
        .await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!(
            "{}/api/v1/admin/products/HELM-1/images",
            server.base
        ))
        .bearer_auth(BINARY_TOKEN)
        .body(png(800, 600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    let url = body["images"][0].as_str().unwrap().to_owned();
    server.kill9();
    let server = start_binary(&data, &[]).await;
    let product = server.get_json("/api/v1/products/HELM-1").await;
    assert_eq!(product["images"][0], url.as_str());
    let res = client
        .get(format!("{}{url}", server.base))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(img.width(), 480);
    server.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_products_get_pictures_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    let items: Vec<_> = emporium::demo::items().into_iter().take(3).collect();
    engine.import_products(items.clone(), |_| {}).await.unwrap();
    assert_eq!(
        emporium::demo::paint(&engine, items.clone()).await.unwrap(),
        3
    );
    // Painted once: a second run finds them done.
    assert_eq!(
        emporium::demo::paint(&engine, items.clone()).await.unwrap(),
        0
    );
    let mut seen = std::collections::BTreeSet::new();
    for (_, item) in items {
        let sku = item.unwrap().sku.to_string();
        let product = engine.product(&sku).await.unwrap().product;
        assert_eq!(product.images.len(), 1, "{sku}");
        let (hash, width, kind) =
            emporium::media::parse_variant(product.images[0].trim_start_matches("/images/"))
                .unwrap();
        assert_eq!(width, 480);
        // Made on the first request.
        let bytes = engine.image_file(hash, 160, kind).await.unwrap().unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (160, 120));
        seen.insert(hash.to_owned());
    }
    assert_eq!(seen.len(), 3, "each product its own picture");
    engine.shutdown().await.unwrap();
}

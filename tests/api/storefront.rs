//! The storefront: pages as a person gets them. Escaping, security headers, caching and
//! CSRF over plain HTTP; then a shopper in headless Chromium (Debian's package, driven by
//! Selenium) who finds a product with a typo, buys it and sees the confirmation — with and
//! without JavaScript — with a screenshot of every page and axe-core run on each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// `name=value` of the `Set-Cookie` headers of a response, joined for a `Cookie` header.
fn cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_owned())
        .collect()
}

/// The value (32 hex digits) of the hidden field `name` of a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker).expect("the field") + marker.len();
    html[at..at + 32].to_owned()
}

/// The value of the hidden `csrf` field of a page.
fn csrf_of(html: &str) -> String {
    hidden(html, "csrf")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_what_they_show_and_carry_their_security_headers() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.admin(app.client.post(app.url("/api/v1/admin/products")))
                .json(
                    &json!({"sku": "XSS-1", "name": "<script>alert('x')</script> Helmet",
                              "description": "<img src=x onerror=alert(1)>", "price": 100,
                              "category": "Evil/<b>Bold</b>"}),
                ),
        )
        .await;
    assert_eq!(r.status, 201);
    let res = app.client.get(app.url("/p/XSS-1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["cache-control"], "private, no-store",
        "a page with a form token"
    );
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>alert"), "the name ran as a script");
    assert!(
        html.contains("&lt;script&gt;alert("),
        "the name is shown as text"
    );
    assert!(!html.contains("<img src=x"), "the description made markup");
    assert!(!html.contains("<b>Bold</b>"));
    assert!(
        !html.contains("style="),
        "no inline styles (the policy forbids them)"
    );
    // Listings are the same for everyone: public, tagged.
    let res = app
        .client
        .get(app.url("/search?q=helmet"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "public, max-age=60");
    let tag = res.headers()["etag"].to_str().unwrap().to_owned();
    let category = app.client.get(app.url("/c/Evil")).send().await.unwrap();
    let category = category.text().await.unwrap();
    assert!(
        !category.contains("None"),
        "a missing value shows as nothing"
    );
    assert!(res.headers().get("set-cookie").is_none());
    let again = app
        .client
        .get(app.url("/search?q=helmet"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // Unknown paths: a page for people, problem+json under the API.
    let res = app
        .client
        .get(app.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert!(res.text().await.unwrap().contains("<h1>Not found</h1>"));
    let api = app.get("/api/v1/nothing").await;
    assert_eq!(
        (api.status, api.content_type.as_str()),
        (404, "application/problem+json")
    );
    let missing = app.client.get(app.url("/p/NOPE-1")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Not found"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_their_token_and_a_double_submitted_checkout_places_one_order() {
    let app = spawn_app().await;
    app.create_product("HELM-1", 2500, 5).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/p/HELM-1")).send().await.unwrap();
    let mut jar = cookies(&page);
    assert!(jar[0].starts_with("emporium_csrf="), "{jar:?}");
    let raw = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Lax") && !raw.contains("Secure"),
        "on loopback: {raw}"
    );
    let elsewhere = client
        .get(app.url("/p/HELM-1"))
        .header("host", "shop.example.com")
        .send()
        .await
        .unwrap();
    let raw = elsewhere.headers()["set-cookie"].to_str().unwrap();
    assert!(raw.contains("; Secure"), "for a real host: {raw}");
    let token = csrf_of(&page.text().await.unwrap());
    let post = |path: &str, jar: &[String], form: &[(&str, &str)]| {
        client
            .post(app.url(path))
            .header("cookie", jar.join("; "))
            .form(form)
            .send()
    };
    // Without the token, with another one, without the cookie: refused, nothing added.
    for (jar, form) in [
        (jar.clone(), vec![("sku", "HELM-1"), ("quantity", "1")]),
        (
            jar.clone(),
            vec![
                ("sku", "HELM-1"),
                ("quantity", "1"),
                ("csrf", "0123456789abcdef0123456789abcdef"),
            ],
        ),
        (
            vec![],
            vec![
                ("sku", "HELM-1"),
                ("quantity", "1"),
                ("csrf", token.as_str()),
            ],
        ),
    ] {
        let r = post("/cart/items", &jar, &form).await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(cookies(&r).iter().all(|c| !c.starts_with("emporium_cart")));
    }
    let r = post(
        "/cart/items",
        &jar,
        &[("sku", "HELM-1"), ("quantity", "2"), ("csrf", &token)],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/cart");
    jar.extend(cookies(&r));
    let cart = client
        .get(app.url("/cart"))
        .header("cookie", jar.join("; "))
        .send()
        .await
        .unwrap();
    let html = cart.text().await.unwrap();
    assert!(
        html.contains("Product HELM-1") && html.contains("50.00 USD"),
        "{html}"
    );
    assert!(!html.contains("None"), "a missing value shows as nothing");
    // A refused change says why on the page.
    let r = post(
        "/cart/promotion",
        &jar,
        &[("code", "NOPE"), ("csrf", &token)],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("The code NOPE cannot be used")
    );
    // The checkout form carries its own key: submitted twice, one order.
    let form = client
        .get(app.url("/checkout"))
        .header("cookie", jar.join("; "))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = hidden(&form, "key");
    let fields = [
        ("csrf", token.as_str()),
        ("key", key.as_str()),
        ("email", "ada@example.com"),
        ("name", "Ada"),
        ("line1", "1 Orbit Way"),
        ("city", "Base"),
        ("postal_code", "1"),
        ("country", "US"),
        ("payment_token", "tok_visa"),
    ];
    let first = post("/checkout", &jar, &fields).await.unwrap();
    let second = post("/checkout", &jar, &fields).await.unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(
        first.headers()["location"],
        second.headers()["location"],
        "the same order"
    );
    let orders = app.admin_get("/api/v1/admin/orders?status=paid").await;
    assert_eq!(orders.body["items"].as_array().unwrap().len(), 1);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let confirmation = client
        .get(app.url(&location))
        .header("cookie", jar.join("; "))
        .send()
        .await
        .unwrap();
    assert!(
        cookies(&confirmation).iter().any(|c| c == "emporium_cart="),
        "the finished cart is forgotten"
    );
    assert!(confirmation.text().await.unwrap().contains("Thank you!"));
    app.stop().await;
}

/// Installs what the browser test needs when it is missing: Chromium and its driver
/// (Debian), Selenium (PyPI), axe-core (npm, into `dir`). Returns the path of axe.
fn ensure_browser(dir: &Path) -> PathBuf {
    let ok = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/chromedriver").exists() {
        let installed = ok(
            "apt-get",
            &[
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "chromium",
                "chromium-driver",
            ],
        ) || (ok("apt-get", &["update", "-q"])
            && ok(
                "apt-get",
                &[
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "chromium",
                    "chromium-driver",
                ],
            ));
        assert!(
            installed,
            "this test needs Debian's chromium and chromium-driver"
        );
    }
    if !ok("python3", &["-c", "import selenium"]) {
        assert!(
            ok(
                "python3",
                &["-m", "pip", "install", "--quiet", "--user", SELENIUM]
            ) || ok("python3", &["-m", "pip", "install", "--quiet", SELENIUM]),
            "this test needs {SELENIUM}"
        );
    }
    let axe = dir.join("node_modules/axe-core/axe.min.js");
    if !axe.exists() {
        assert!(
            std::process::Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(dir)
                .arg(AXE)
                .status()
                .is_ok_and(|s| s.success()),
            "this test needs {AXE} from npm"
        );
    }
    axe
}

/// The versions `.ci/run` installs too.
const SELENIUM: &str = "selenium==4.27.1";
const AXE: &str = "axe-core@4.10.2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_buys_in_a_real_browser_with_and_without_javascript() {
    let tools = std::env::temp_dir().join("emporium-browser-tools");
    std::fs::create_dir_all(&tools).unwrap();
    let axe = tokio::task::spawn_blocking({
        let tools = tools.clone();
        move || ensure_browser(&tools)
    })
    .await
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // Default flags: the shop's cookies work over plain HTTP on loopback.
    let server = start_binary(&data, &[]).await;
    let client = reqwest::Client::new();
    for (sku, name) in [
        ("HELM-1", "Aurora EVA Helmet"),
        ("SUIT-1", "Kepler Pressure Suit"),
    ] {
        server
            .stock_product(BINARY_TOKEN, sku, name, 249_900, 10)
            .await;
        let picture = emporium::demo::art::picture(sku, "Space Suits");
        let r = client
            .post(format!(
                "{}/api/v1/admin/products/{sku}/images",
                server.base
            ))
            .bearer_auth(BINARY_TOKEN)
            .body(picture)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // The helmet was bought with the suit before: the cart page suggests the suit.
    let r = client
        .post(format!("{}/api/v1/admin/orders/import", server.base))
        .bearer_auth(BINARY_TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(r#"{"id": "past-1", "created_at": "2026-11-01T10:00:00Z", "items": [{"sku": "HELM-1", "quantity": 1}, {"sku": "SUIT-1", "quantity": 1}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Searchable within a second of the write.
    let searchable = eventually(Duration::from_secs(10), || {
        let (client, base) = (client.clone(), server.base.clone());
        async move {
            let r: Value = client
                .get(format!("{base}/api/v1/products?q=helmet"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["total"].as_u64() >= Some(1)
        }
    })
    .await;
    assert!(searchable);
    // Screenshots are kept as artifacts of the test run.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("storefront-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for mode in ["js", "nojs"] {
        let out = tokio::task::spawn_blocking({
            let (base, shots, axe) = (server.base.clone(), shots.clone(), axe.clone());
            move || {
                std::process::Command::new("python3")
                    .arg(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/tests/browser/shop_flow.py"
                    ))
                    .arg(&base)
                    .arg(&shots)
                    .arg(&axe)
                    .arg(mode)
                    // A typo the search forgives.
                    .arg("helmte")
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        let pages: Vec<&str> = report["pages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            pages,
            [
                "home",
                "search",
                "product",
                "cart",
                "checkout",
                "confirmation",
                "sign-in",
                "account",
                "not-found"
            ]
        );
        assert!(
            report["order_heading"]
                .as_str()
                .unwrap()
                .starts_with("Thank you! Order"),
            "{report}"
        );
        assert_eq!(report["not_found_heading"], "Not found");
        assert_eq!(
            report["cart_suggestions"],
            json!({"heading": "Goes well with your cart", "names": ["Kepler Pressure Suit"]}),
            "{report}"
        );
        assert_eq!(report["account_heading"], "Hello, Ada");
        if mode == "js" {
            for (page, violations) in report["violations"].as_object().unwrap() {
                assert_eq!(
                    violations,
                    &json!([]),
                    "serious accessibility violations on {page}"
                );
            }
        }
        for page in pages {
            assert!(shots.join(format!("{mode}-{page}.png")).exists());
        }
    }
    // Two orders, two receipts in the outbox.
    let outbox = data.join("outbox");
    let receipts = eventually(Duration::from_secs(10), || {
        let n = emporium::notify::mailer::read_outbox(&outbox)
            .unwrap_or_default()
            .iter()
            .filter(|(id, _)| id.starts_with("order_confirmation"))
            .count();
        async move { n == 2 }
    })
    .await;
    assert!(receipts, "a receipt for each order");
    server.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_up_shopper_keeps_the_cart_and_finds_the_order_in_the_account() {
    let app = spawn_app().await;
    app.create_product("HELM-1", 2500, 5).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/p/HELM-1")).send().await.unwrap();
    let mut jar = cookies(&page);
    let token = csrf_of(&page.text().await.unwrap());
    let post = |path: &str, jar: &[String], form: &[(&str, &str)]| {
        client
            .post(app.url(path))
            .header("cookie", jar.join("; "))
            .form(form)
            .send()
    };
    let r = post(
        "/cart/items",
        &jar,
        &[("sku", "HELM-1"), ("quantity", "1"), ("csrf", &token)],
    )
    .await
    .unwrap();
    jar.extend(cookies(&r));
    // Signing up signs in and attaches the guest cart.
    let r = post(
        "/account/sign-up",
        &jar,
        &[
            ("csrf", &token),
            ("name", "Ada"),
            ("email", "ada@example.com"),
            ("password", "correct horse battery"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account");
    let session: Vec<String> = cookies(&r);
    assert!(session[0].starts_with("emporium_session="), "{session:?}");
    jar.extend(session);
    let form = client
        .get(app.url("/checkout"))
        .header("cookie", jar.join("; "))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = hidden(&form, "key");
    let r = post(
        "/checkout",
        &jar,
        &[
            ("csrf", &token),
            ("key", &key),
            ("email", "ada@example.com"),
            ("name", "Ada"),
            ("line1", "1 Orbit Way"),
            ("city", "Base"),
            ("postal_code", "1"),
            ("country", "US"),
            ("payment_token", "tok_visa"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let account = client
        .get(app.url("/account"))
        .header("cookie", jar.join("; "))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let order_path = location.split('?').next().unwrap();
    assert!(
        account.contains(order_path),
        "the order is in the history: {account}"
    );
    // The order is the account's: a guest with its link gets a 404 page.
    let stranger = client.get(app.url(&location)).send().await.unwrap();
    assert_eq!(stranger.status(), 404);
    // A product's page lifts what this shopper bought before: HELM-1 was bought with
    // LAMP-1 once, five other products three times each.
    app.create_product("LAMP-1", 900, 5).await;
    let mut history = Vec::new();
    for i in 1..=5 {
        app.create_product(&format!("PART-{i}"), 300, 5).await;
        for k in 0..3 {
            history.push(format!(
                r#"{{"id": "h{i}-{k}", "created_at": "2011-05-01T10:00:00Z", "items": [{{"sku": "LAMP-1", "quantity": 1}}, {{"sku": "PART-{i}", "quantity": 1}}]}}"#
            ));
        }
    }
    history.push(r#"{"id": "h-helm", "created_at": "2011-05-01T10:00:00Z", "items": [{"sku": "LAMP-1", "quantity": 1}, {"sku": "HELM-1", "quantity": 1}]}"#.into());
    let r = app.import_orders(&history.join("\n")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let also = |html: String| -> Vec<String> {
        let section = html.split("id=\"also\"").nth(1).unwrap_or_default();
        section
            .split("href=\"/p/")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap().to_owned())
            .collect()
    };
    let page = |cookie: Option<String>| {
        let mut req = client.get(app.url("/p/LAMP-1"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let as_guest = also(page(None).await);
    assert_eq!(as_guest.len(), 4, "{as_guest:?}");
    assert!(!as_guest.contains(&"HELM-1".to_owned()), "{as_guest:?}");
    let as_ada = also(page(Some(jar.join("; "))).await);
    assert_eq!(
        as_ada.first().map(String::as_str),
        Some("HELM-1"),
        "{as_ada:?}"
    );
    // A wrong password says so on the page, without saying which part is wrong.
    let r = post(
        "/account/sign-in",
        &[jar[0].clone()],
        &[
            ("csrf", &token),
            ("email", "ada@example.com"),
            ("password", "wrong password!"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("the email or the password is wrong")
    );
    // Signing out ends the session.
    let r = post("/account/sign-out", &jar, &[("csrf", &token)])
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let after = client
        .get(app.url("/account"))
        .header("cookie", jar.join("; "))
        .send()
        .await
        .unwrap();
    assert_eq!(after.headers()["location"], "/account/sign-in");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_shows_what_sells_first() {
    let app = spawn_app().await;
    for sku in ["A-1", "B-1", "C-1"] {
        app.create_product(sku, 1000, 50).await;
    }
    for _ in 0..2 {
        let cart = app.cart_with("C-1", 1).await;
        let r = crate::checkout::checkout(
            &app,
            &cart,
            Some("k"),
            &crate::checkout::checkout_body("tok_visa"),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let learned = eventually(Duration::from_secs(10), || {
        let engine = app.engine.clone();
        async move {
            engine
                .bestsellers(3)
                .await
                .unwrap()
                .first()
                .is_some_and(|p| p.product.sku.as_str() == "C-1")
        }
    })
    .await;
    assert!(learned, "the sold product comes first");
    app.engine.search_flush().await.unwrap();
    assert_eq!(
        app.engine.bestsellers(3).await.unwrap().len(),
        3,
        "filled from the catalog"
    );
    let home = app.client.get(app.url("/")).send().await.unwrap();
    let html = home.text().await.unwrap();
    let best = html.find("Best sellers").unwrap();
    assert!(
        html[best..].find("/p/C-1") < html[best..].find("/p/A-1"),
        "C-1 is listed before the others"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_in_the_data_directory_overrides_the_built_in_one_for_that_shop_only() {
    let custom = spawn_app_configured(
        |c| {
            let dir = c.data_dir.join("templates").join("shop");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("home.html"),
                "<!doctype html><title>{{ shop }}</title><p>Our own front page for {{ shop }}</p>",
            )
            .unwrap();
        },
        |_| {},
    )
    .await;
    let plain = spawn_app().await;
    let page = |app: &TestApp| {
        let url = app.url("/");
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(
        page(&custom)
            .await
            .contains("Our own front page for Emporium")
    );
    let built_in = page(&plain).await;
    assert!(
        built_in.contains("Gear for space explorers") && !built_in.contains("Our own"),
        "another shop in the same process keeps the built-in page"
    );
    custom.stop().await;
    plain.stop().await;
}

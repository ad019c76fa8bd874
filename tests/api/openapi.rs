//! The OpenAPI document: served at `/api/v1/openapi.json`, naming exactly the routes of the
//! contract in `../shared/API.md`, every operation routed by the server; and Schemathesis
//! (a real OpenAPI client, from PyPI) fuzzing a live server: no server errors, no response
//! that breaks the document.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::*;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// (method, path) of every route in the contract's tables: the first cell of each row
/// holds backticked `METHOD /path?query` items; a bare `METHOD` item lends its method to
/// the next path (`GET`/`PUT /x`).
fn contract_routes() -> BTreeSet<(String, String)> {
    let api = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/API.md"),
    )
    .expect("../shared/API.md");
    let mut out = BTreeSet::new();
    for line in api.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line[1..].split(" | ").next().unwrap_or("");
        let mut pending: Vec<&str> = Vec::new();
        for (i, item) in first_cell.split('`').enumerate() {
            if i % 2 == 0 {
                continue; // outside backticks
            }
            let mut words = item.split_whitespace();
            let (Some(method), path) = (words.next(), words.next()) else {
                continue;
            };
            if !METHODS.contains(&method) {
                continue;
            }
            match path {
                Some(p) if p.starts_with('/') => {
                    let path = p.split('?').next().unwrap_or(p);
                    pending.push(method);
                    for m in pending.drain(..) {
                        out.insert((m.to_owned(), path.to_owned()));
                    }
                }
                _ => pending.push(method),
            }
        }
    }
    out
}

/// Routes the issues added to the contract (their names are as fixed as API.md's), by
/// issue.
const ISSUE_ROUTES: &[(&str, &str)] = &[
    // Issue 17: customer accounts.
    ("POST", "/api/v1/customers"),
    ("POST", "/api/v1/sessions"),
    ("DELETE", "/api/v1/sessions/current"),
    ("GET", "/api/v1/customers/me"),
    ("PATCH", "/api/v1/customers/me"),
    ("GET", "/api/v1/customers/me/addresses"),
    ("POST", "/api/v1/customers/me/addresses"),
    ("PUT", "/api/v1/customers/me/addresses/{id}"),
    ("DELETE", "/api/v1/customers/me/addresses/{id}"),
    ("GET", "/api/v1/customers/me/orders"),
    ("GET", "/api/v1/admin/customers"),
    ("GET", "/api/v1/admin/customers/{id}/orders"),
    ("DELETE", "/api/v1/customers/me"),
    ("GET", "/api/v1/customers/me/export"),
    ("POST", "/api/v1/customers/me/verify"),
    ("POST", "/api/v1/customers/password-reset"),
    ("POST", "/api/v1/customers/password-reset/confirm"),
    // Issue 18: promotions (admin).
    ("POST", "/api/v1/admin/promotions"),
    ("GET", "/api/v1/admin/promotions"),
    ("GET", "/api/v1/admin/promotions/{code}"),
    ("PUT", "/api/v1/admin/promotions/{code}"),
    ("DELETE", "/api/v1/admin/promotions/{code}"),
    // Issue 18: codes on carts, shipping, tax.
    ("POST", "/api/v1/carts/{id}/promotions"),
    ("DELETE", "/api/v1/carts/{id}/promotions/{code}"),
    ("GET", "/api/v1/carts/{id}/shipping-methods"),
    ("GET", "/api/v1/admin/shipping"),
    ("PUT", "/api/v1/admin/shipping"),
    ("GET", "/api/v1/admin/tax"),
    ("PUT", "/api/v1/admin/tax"),
    // Issue 19: product images.
    ("POST", "/api/v1/admin/products/{sku}/images"),
    ("DELETE", "/api/v1/admin/products/{sku}/images/{hash}"),
    // Issue 20: webhooks.
    ("POST", "/api/v1/admin/webhooks"),
    ("GET", "/api/v1/admin/webhooks"),
    ("GET", "/api/v1/admin/webhooks/{id}"),
    ("PATCH", "/api/v1/admin/webhooks/{id}"),
    ("DELETE", "/api/v1/admin/webhooks/{id}"),
    ("POST", "/api/v1/admin/webhooks/{id}/rotate-secret"),
    ("GET", "/api/v1/admin/webhooks/{id}/deliveries"),
    ("POST", "/api/v1/admin/webhooks/{id}/replay"),
    ("POST", "/api/v1/admin/webhooks/{id}/resume"),
    // Issue 22: basket-level recommendations.
    ("GET", "/api/v1/carts/{id}/recommendations"),
];

fn document_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn the_document_names_exactly_the_contracts_routes_and_each_is_routed() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    let doc = r.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );

    let mut contract = contract_routes();
    assert!(contract.len() >= 30, "parsed only {contract:?} from API.md");
    contract.extend(
        ISSUE_ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
    );
    let documented = document_routes(&doc);
    assert_eq!(
        documented.difference(&contract).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not in the contract"
    );
    assert_eq!(
        contract.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "in the contract but not documented"
    );

    // The router serves every documented operation: none falls through to the
    // router's "no such route" or its 405.
    for (method, path) in &documented {
        let concrete = path.replace('{', "x").replace('}', "");
        let req = app
            .client
            .request(method.parse().unwrap(), app.url(&concrete))
            .bearer_auth(ADMIN_TOKEN);
        let req = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
            req.json(&json!({}))
        } else {
            req
        };
        let r = app.send(req).await;
        assert_ne!(r.status, 405, "{method} {path}: {}", r.body);
        assert!(
            !(r.status == 404 && r.body["detail"] == "no such route"),
            "{method} {path} is documented but not routed"
        );
    }

    // Admin operations declare the token; every error is problem+json.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if path.starts_with("/api/v1/admin/") {
                assert_eq!(
                    op["security"][0]["admin_token"],
                    json!([]),
                    "{method} {path}"
                );
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
            }
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = resp["content"].as_object();
                    let is_problem =
                        content.is_some_and(|c| c.contains_key("application/problem+json"));
                    let is_status = path == "/ready";
                    assert!(is_problem || is_status, "{method} {path} {status}: {resp}");
                }
            }
        }
    }
    app.stop().await;
}

/// Installs Schemathesis (pinned) from PyPI if it is missing.
fn ensure_schemathesis() {
    let has = || {
        std::process::Command::new("python3")
            .args(["-c", "import schemathesis"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has() {
        let installed = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--user", SCHEMATHESIS])
            .status()
            .is_ok_and(|s| s.success())
            || std::process::Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", SCHEMATHESIS])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            installed && has(),
            "this test needs {SCHEMATHESIS} (pip install {SCHEMATHESIS})"
        );
    }
}

/// The version `.ci/run` installs too.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

#[tokio::test]
async fn schemathesis_with_every_check_finds_the_server_and_its_document_in_agreement() {
    ensure_schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary(dir.path(), &["--demo"]).await;
    // A customer whose session the `/customers/me` routes are fuzzed with (the admin token
    // goes only to admin routes: on a shopper route any other bearer is a bad session).
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/v1/customers", server.base))
        .json(&json!({"email": "fuzz@example.com", "password": "fuzzing password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let session: Value = client
        .post(format!("{}/api/v1/sessions", server.base))
        .json(&json!({"email": "fuzz@example.com", "password": "fuzzing password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = session["token"].as_str().unwrap().to_owned();
    let st_dir = tempfile::tempdir().unwrap();
    // Outcomes that depend on earlier requests or on a language, not on the request's own
    // shape, so no schema can rule them out. The contract (API.md) fixes them: checking
    // out an empty cart is `422 empty_cart`; adding to a line past its 999 units is `422`;
    // a template that does not compile is `422`; a string the `email` format admits may
    // still fail the server's practical address check (registration's `422`); a mailed
    // token the fuzzer makes up is refused (`422`); a promotion's settings are checked
    // across fields (a percentage over 10000, an end before its start: `422`), and so are
    // shipping zones (a country in two zones) and tax tables (two rates for one place); a
    // promotion code the fuzzer makes up does not exist (`422 promotion_unknown`); a
    // partial refund may ask for more than is left, a cart's details may name an address
    // the server's field rules refuse; an upload's bytes are an image only if their
    // first bytes say so (`415`), and then must decode (`422`); a webhook's URL must be
    // http(s) to a host deliveries may reach and its event types ones the log has (the
    // schema gives the URL no pattern, so the fuzzer never makes an endpoint that would
    // post beyond loopback), and a replay cannot start past the log's end. The fuzzing customer's session goes to
    // the `/customers/me` routes but not to their DELETEs (erasing the account would end
    // it for the rest of the run). For these operations a schema-valid
    // request may also be refused with 422. Everything else must be accepted exactly
    // when the document says it is valid.
    let also_422 = r#"checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]"#;
    std::fs::write(
        st_dir.path().join("schemathesis.toml"),
        format!(
            r#"
[[operations]]
include-path-regex = "^/api/v1/admin/products/[^/]+/images$"
headers = {{ Authorization = "Bearer {BINARY_TOKEN}" }}
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "415", "422", "429", "5xx"]

[[operations]]
include-path = "/api/v1/carts/{{id}}/checkout"
include-method = "POST"
{also_422}

[[operations]]
include-path = "/api/v1/carts/{{id}}/items"
include-method = "POST"
{also_422}

[[operations]]
include-path = "/api/v1/customers"
include-method = "POST"
{also_422}

[[operations]]
include-path = "/api/v1/admin/templates/{{name}}"
include-method = "PUT"
headers = {{ Authorization = "Bearer {BINARY_TOKEN}" }}
{also_422}

[[operations]]
include-path-regex = "^/api/v1/admin/(promotions|shipping|tax)"
include-method-regex = "(?i)^(post|put)$"
headers = {{ Authorization = "Bearer {BINARY_TOKEN}" }}
{also_422}

[[operations]]
include-path-regex = "^/api/v1/admin/webhooks"
include-method-regex = "(?i)^(post|patch)$"
headers = {{ Authorization = "Bearer {BINARY_TOKEN}" }}
{also_422}

[[operations]]
include-path = "/api/v1/admin/orders/{{id}}/refund"
headers = {{ Authorization = "Bearer {BINARY_TOKEN}" }}
{also_422}

[[operations]]
include-path = "/api/v1/carts/{{id}}/promotions"
include-method = "POST"
{also_422}

[[operations]]
include-path = "/api/v1/carts/{{id}}"
include-method = "PATCH"
{also_422}

[[operations]]
include-path-regex = "^/api/v1/admin/"
headers = {{ Authorization = "Bearer {BINARY_TOKEN}" }}

[[operations]]
include-path = "/api/v1/customers/password-reset/confirm"
{also_422}

[[operations]]
include-path = "/api/v1/customers/me/verify"
headers = {{ Authorization = "Bearer {session}" }}
{also_422}

[[operations]]
include-path-regex = "^/api/v1/customers/me"
include-method-regex = "(?i)^(get|post|put|patch)$"
headers = {{ Authorization = "Bearer {session}" }}
"#
        ),
    )
    .unwrap();
    // Bounded by count: 25 examples per operation in each phase, a fixed seed (a time
    // budget would make Schemathesis repeat until it is spent); stateful runs follow the
    // document's links (cart → items → checkout → order).
    let out = tokio::task::spawn_blocking({
        let base = server.base.clone();
        let work = st_dir.path().to_owned();
        move || {
            std::process::Command::new("python3")
                .args([
                    "-c",
                    "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'st'; sys.exit(schemathesis())",
                    "run",
                    &format!("{base}/api/v1/openapi.json"),
                    // Every check but one: adding an unknown SKU to a new cart is `404
                    // unknown_sku` by the contract, which `ensure_resource_availability`
                    // takes for the cart having vanished (it reads only the status; a
                    // per-operation setting does not reach its stateful runs).
                    "--checks",
                    "all",
                    "--exclude-checks",
                    "ensure_resource_availability",
                    // Hypothesis's health check on how long generating data takes
                    // measures the machine, not the API: on a loaded 2-core CI runner it
                    // failed the template route's large bodies. Every case is still
                    // generated and checked.
                    "--suppress-health-check=too_slow",
                    "--max-examples",
                    "25",
                    "--seed",
                    "1",
                    "--request-timeout",
                    "10",
                    "--no-color",
                ])
                // Schemathesis keeps a cache in its working directory: not in the repo.
                .current_dir(&work)
                .output()
                .expect("run schemathesis")
        }
    })
    .await
    .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{report}");
    assert!(report.contains("passed"), "{report}");
    assert!(server.terminate().success());
}

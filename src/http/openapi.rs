//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations
//! and the wire types' `ToSchema` derives.
//!
//! Every route is registered through `utoipa_axum`'s `routes!`, which adds the handler to
//! the router and its operation to the document in one step, so the two cannot disagree;
//! `tests/api/openapi.rs` also checks the document against `../shared/API.md`. What every
//! operation can answer — a problem+json `400`, `429`, `500`, `503`, and on admin routes
//! `401`/`403` — is added here once, not repeated on each handler.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, ToSchema};

pub use super::error::PROBLEM_JSON;

/// An error (RFC 9457 problem details). Some errors add members, e.g. `field` on a
/// validation error or `errors` listing each refused line.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// `urn:emporium:problem:{code}`.
    r#type: String,
    /// A short summary of the kind of problem.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong with this request.
    detail: String,
    /// The stable machine-readable code (see `API.md`).
    code: String,
}

/// The document's fixed parts: info, tags, the admin security scheme and the common
/// responses.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Emporium",
        description = "An actor-based, single-process commerce engine: catalog and search, carts, inventory, checkout, orders, notifications and the event log.",
    ),
    components(schemas(Problem)),
    tags(
        (name = "catalog", description = "Products, categories, search and recommendations"),
        (name = "carts", description = "Shopping carts"),
        (name = "orders", description = "Checkout and orders"),
        (name = "inventory", description = "Stock levels"),
        (name = "admin", description = "Store administration (bearer token)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
)]
pub struct ApiDoc;

/// Adds the responses every operation shares, and the admin token where it is required
/// (applied once the routes have added their operations).
pub struct CommonResponses;

fn problem(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn add(op: &mut Operation, code: &str, description: &str) {
    op.responses
        .responses
        .entry(code.to_owned())
        .or_insert_with(|| problem(description).into());
}

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin token given to `emporium serve`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A customer's session token (`POST /api/v1/sessions`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "emporium_session",
                    "The session cookie set at sign-in",
                ),
            )),
        );
        let session = || {
            [
                SecurityRequirement::new("session_token", Vec::<String>::new()),
                SecurityRequirement::new("session_cookie", Vec::<String>::new()),
            ]
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1/");
            let admin = path.starts_with("/api/v1/admin/");
            // Routes only a signed-in customer may use, and routes a guest may use whose
            // resource may belong to an account (a session that is sent must be valid).
            let signed_in =
                path.starts_with("/api/v1/customers/me") || path == "/api/v1/sessions/current";
            let shopper_session = path.starts_with("/api/v1/carts/")
                || path.starts_with("/api/v1/orders/")
                || path.ends_with("/recommendations");
            let has_params = path.contains('{');
            for (op, writes) in [
                (&mut item.get, false),
                (&mut item.put, true),
                (&mut item.post, true),
                (&mut item.delete, true),
                (&mut item.patch, true),
            ]
            .into_iter()
            .filter_map(|(op, w)| op.as_mut().map(|op| (op, w)))
            {
                add(
                    op,
                    "500",
                    "An internal error (its cause is logged, never sent)",
                );
                if !api {
                    continue;
                }
                add(op, "400", "The request is malformed (`invalid_request`)");
                add(
                    op,
                    "429",
                    "Too many requests from this client (`Retry-After` says when to retry)",
                );
                add(
                    op,
                    "503",
                    "The server is overloaded, starting, or the request took too long",
                );
                if has_params {
                    add(op, "404", "The resource does not exist (`not_found`)");
                }
                if path.contains("{sku}") {
                    add(op, "422", "The SKU is malformed (`validation_failed`)");
                }
                if op.request_body.is_some() {
                    add(
                        op,
                        "413",
                        "The request body is over the limit (`payload_too_large`)",
                    );
                    add(
                        op,
                        "415",
                        "The body is not `application/json` (`unsupported_media_type`)",
                    );
                    add(op, "422", "A field breaks a rule (`validation_failed`)");
                }
                if writes {
                    add(
                        op,
                        "507",
                        "The disk is full: the store accepts no writes until space is freed and the server restarted (`insufficient_storage`)",
                    );
                }
                if signed_in {
                    add(op, "401", "No valid session (`unauthorized`)");
                    op.security = Some(session().into());
                }
                // Guests use these without a session (so no security requirement is
                // declared); a customer's session is checked when one is sent.
                if shopper_session {
                    add(
                        op,
                        "401",
                        "A session was sent but is unknown, ended or expired (`unauthorized`)",
                    );
                }
                if admin {
                    add(op, "401", "No admin token (`unauthorized`)");
                    add(op, "403", "The admin token is not valid (`forbidden`)");
                    op.security = Some(vec![SecurityRequirement::new(
                        "admin_token",
                        Vec::<String>::new(),
                    )]);
                }
            }
        }
        add_links(doc);
    }
}

/// The shopper's journey as OpenAPI links (a cart's id leads to its items and checkout,
/// an order's id to its reads and transitions, a webhook endpoint's id to its
/// operations), so clients and tools such as
/// Schemathesis can follow cart → checkout → order.
fn add_links(doc: &mut OpenApi) {
    const FLOWS: &[(&str, &str, &[&str])] = &[
        (
            "create_cart",
            "201",
            &["get_cart", "patch_cart", "add_item", "checkout"],
        ),
        (
            "add_item",
            "200",
            &["get_cart", "set_quantity", "remove_item", "checkout"],
        ),
        (
            "checkout",
            "201",
            &["get_order", "cancel", "ship", "deliver", "refund"],
        ),
        (
            "create_webhook",
            "201",
            &[
                "get_webhook",
                "update_webhook",
                "delete_webhook",
                "rotate_webhook_secret",
                "list_webhook_deliveries",
                "replay_webhook",
                "resume_webhook",
            ],
        ),
    ];
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let Some((_, status, targets)) = FLOWS
                .iter()
                .find(|(id, _, _)| op.operation_id.as_deref() == Some(*id))
            else {
                continue;
            };
            let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) else {
                continue;
            };
            for target in *targets {
                let mut link = LinkBuilder::new()
                    .operation_id(*target)
                    .parameter("id", "$response.body#/id");
                if matches!(*target, "set_quantity" | "remove_item") {
                    link = link.parameter("sku", "$response.body#/items/0/sku");
                }
                response
                    .links
                    .insert((*target).to_owned(), link.build().into());
            }
        }
    }
}

/// The served document, rendered once from what the routes registered (the first
/// [`super::app`] built in the process publishes it; every app has the same routes).
static DOC: OnceLock<String> = OnceLock::new();

/// Finishes `doc` (the shared responses, links, the input limits) and keeps it for the
/// route.
pub(super) fn publish(mut doc: OpenApi, currency: &str) {
    DOC.get_or_init(|| {
        CommonResponses.modify(&mut doc);
        let mut json = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
        declare_limits(&mut json, currency);
        json.to_string()
    });
}

/// A character the server trims (Rust's `char::is_whitespace`, which Python's `\s` does
/// not match exactly: it also counts U+001C–U+001F), as a class body.
const WS: &str =
    "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
/// A control character (`char::is_control`), as a class body.
const CONTROL: &str = "\\x00-\\x1f\\x7f-\\x9f";
/// What `Sku::parse` accepts.
const SKU: &str = "^[A-Za-z0-9._-]{1,64}$";

/// Free text that must have `min` characters left after trimming, of at most `max`
/// characters as sent, with or without control characters.
fn text(min: usize, max: usize, controls: bool) -> Value {
    let any = if controls {
        "[\\s\\S]".to_owned()
    } else {
        format!("[^{CONTROL}]")
    };
    let solid = if controls {
        format!("[^{WS}]")
    } else {
        format!("[^{WS}{CONTROL}]")
    };
    let mut pattern = format!("^{any}*");
    for _ in 0..min {
        pattern.push_str(&format!("{solid}{any}*"));
    }
    pattern.push('$');
    json!({"maxLength": max, "pattern": pattern})
}

/// Merges `constraints` into the schema at `pointer` (which must exist: a renamed field
/// fails the document's test, not silently the declaration).
fn constrain(doc: &mut Value, pointer: &str, constraints: Value) {
    let target = doc
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the OpenAPI document"));
    if let (Some(t), Value::Object(c)) = (target.as_object_mut(), constraints) {
        t.extend(c);
    }
}

/// Merges `constraints` into the schema of parameter `name` of `method path`.
fn constrain_param(doc: &mut Value, path: &str, method: &str, name: &str, constraints: Value) {
    let pointer = format!("/paths/{}/{method}/parameters", path.replace('/', "~1"));
    let params = doc
        .pointer_mut(&pointer)
        .and_then(Value::as_array_mut)
        .unwrap_or_else(|| panic!("no parameters at {pointer}"));
    let param = params
        .iter_mut()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} of {method} {path}"));
    if let (Some(t), Value::Object(c)) = (param["schema"].as_object_mut(), constraints) {
        t.extend(c);
    }
}

/// Declares every limit the server enforces on what clients send, from the constants the
/// server checks, so that a client generated from the document sends only what the
/// server accepts, and the server refuses what the document rules out (Schemathesis
/// checks both ways, `tests/api/openapi.rs`). What a schema cannot say — a template that
/// does not render, a cart that is empty — stays a `422` or `409`.
fn declare_limits(doc: &mut Value, currency: &str) {
    use crate::domain::inventory::MAX_ON_HAND;
    use crate::domain::product::{CATEGORY_PATTERN, limits};
    let s = |name: &str, field: &str| format!("/components/schemas/{name}/properties/{field}");
    let sku = json!({"pattern": SKU});
    let category = json!({"pattern": CATEGORY_PATTERN});

    // Products, as created (the SKU is required) and as replaced (the path names it).
    constrain(
        doc,
        &s("ProductIn", "sku"),
        json!({"type": "string", "pattern": SKU}),
    );
    constrain(
        doc,
        "/components/schemas/ProductIn",
        json!({"required": ["sku", "name", "price"]}),
    );
    constrain(
        doc,
        &s("ProductIn", "name"),
        text(1, limits::NAME_CHARS, true),
    );
    constrain(
        doc,
        &s("ProductIn", "description"),
        json!({"maxLength": limits::DESCRIPTION_CHARS}),
    );
    constrain(doc, &s("ProductIn", "category"), category.clone());
    constrain(
        doc,
        &s("ProductIn", "price"),
        json!({"maximum": limits::PRICE}),
    );
    constrain(
        doc,
        &s("ProductIn", "currency"),
        json!({"enum": [currency, null]}),
    );
    constrain(
        doc,
        &s("ProductIn", "attributes"),
        json!({"maxProperties": limits::ATTRIBUTES,
               "propertyNames": {"type": "string", "maxLength": limits::ATTRIBUTE_CHARS,
                                 "pattern": format!("[^{WS}]")}}),
    );
    constrain(
        doc,
        "/components/schemas/AttrIn/oneOf/0",
        json!({"maxLength": limits::ATTRIBUTE_CHARS}),
    );
    constrain(
        doc,
        "/components/schemas/AttrIn/oneOf/1",
        json!({"maxItems": limits::ATTRIBUTE_VALUES,
               "items": {"type": "string", "maxLength": limits::ATTRIBUTE_CHARS}}),
    );
    constrain(
        doc,
        &s("ProductIn", "images"),
        json!({"maxItems": limits::IMAGES,
               "items": {"type": "string", "maxLength": limits::IMAGE_CHARS,
                         "pattern": "^(https?://|/)"}}),
    );
    let mut replace = doc["components"]["schemas"]["ProductIn"].clone();
    if let Some(o) = replace.as_object_mut() {
        o["properties"].as_object_mut().map(|p| p.remove("sku"));
        o.insert("required".into(), json!(["name", "price"]));
        o.insert(
            "description".into(),
            json!("A product in a replace request: the path names it."),
        );
    }
    doc["components"]["schemas"]["ProductReplaceIn"] = replace;
    constrain(
        doc,
        "/paths/~1api~1v1~1admin~1products~1{sku}/put/requestBody/content/application~1json/schema",
        json!({"$ref": "#/components/schemas/ProductReplaceIn"}),
    );
    for import in ["products", "orders"] {
        let body = format!("/paths/~1api~1v1~1admin~1{import}~1import/post/requestBody/content");
        constrain(
            doc,
            &format!("{body}/application~1x-ndjson/schema"),
            json!({"pattern": format!("[^{WS}]")}),
        );
    }

    // Carts and checkout.
    constrain(doc, &s("AddItemIn", "sku"), sku.clone());
    constrain(doc, &s("PatchCartIn", "email"), json!({"maxLength": 254}));
    constrain(doc, &s("CheckoutIn", "email"), json!({"maxLength": 254}));
    constrain(
        doc,
        &s("CheckoutIn", "payment_token"),
        json!({"pattern": format!("^[!-~]{{1,{}}}$", crate::domain::order::MAX_TOKEN)}),
    );
    for field in ["name", "line1", "city", "postal_code"] {
        constrain(doc, &s("AddressIn", field), text(1, 200, false));
    }
    constrain(doc, &s("AddressIn", "country"), text(2, 200, false));
    constrain(doc, &s("AddressIn", "line2"), text(0, 200, false));
    constrain_param(
        doc,
        "/api/v1/carts/{id}/checkout",
        "post",
        "Idempotency-Key",
        json!({"pattern": format!("^[!-~]{{1,{}}}$", crate::engine::MAX_IDEMPOTENCY_KEY)}),
    );

    // Customers.
    let name = text(0, crate::domain::customer::MAX_NAME_CHARS, false);
    constrain(doc, &s("RegisterIn", "name"), name.clone());
    constrain(doc, &s("ProfileIn", "name"), name);

    // Orders and stock.
    for field in ["carrier", "tracking"] {
        constrain(doc, &s("ShipIn", field), text(0, 200, false));
    }
    constrain(
        doc,
        &s("SetOnHandIn", "on_hand"),
        json!({"maximum": MAX_ON_HAND}),
    );

    // Query strings.
    let page = |max: u64| json!({"minimum": 1, "maximum": max});
    constrain_param(doc, "/api/v1/products", "get", "limit", page(100));
    constrain_param(
        doc,
        "/api/v1/products",
        "get",
        "q",
        json!({"maxLength": crate::engine::MAX_QUERY_CHARS}),
    );
    constrain_param(doc, "/api/v1/products", "get", "category", category);
    constrain_param(
        doc,
        "/api/v1/products",
        "get",
        "brand",
        json!({"maxLength": 200}),
    );
    for bound in ["min_price", "max_price"] {
        constrain_param(doc, "/api/v1/products", "get", bound, json!({"minimum": 0}));
    }
    constrain_param(
        doc,
        "/api/v1/products",
        "get",
        "sort",
        json!({"enum": ["", "relevance", "price_asc", "price_desc", "newest"]}),
    );
    constrain_param(
        doc,
        "/api/v1/products",
        "get",
        "cursor",
        json!({"pattern": format!("^(o0*([0-9]{{1,4}}|{}))?$", crate::engine::MAX_SEARCH_OFFSET)}),
    );
    constrain_param(doc, "/api/v1/search/suggest", "get", "limit", page(50));
    constrain_param(
        doc,
        "/api/v1/search/suggest",
        "get",
        "q",
        json!({"maxLength": crate::engine::MAX_QUERY_CHARS}),
    );
    for path in [
        "/api/v1/products/{sku}/recommendations",
        "/api/v1/carts/{id}/recommendations",
    ] {
        constrain_param(doc, path, "get", "limit", page(50));
    }
    constrain_param(doc, "/api/v1/admin/orders", "get", "limit", page(100));
    constrain_param(
        doc,
        "/api/v1/admin/orders",
        "get",
        "status",
        json!({"enum": ["", "pending", "paid", "shipped", "delivered", "cancelled", "refunded"]}),
    );
    constrain_param(
        doc,
        "/api/v1/admin/orders",
        "get",
        "cursor",
        json!({"pattern": "^([0-7][0-9a-fA-F]{15}[!-~]{1,160})?$"}),
    );
    constrain_param(doc, "/api/v1/admin/events", "get", "limit", page(1000));
    constrain_param(
        doc,
        "/api/v1/admin/webhooks/{id}/deliveries",
        "get",
        "limit",
        page(crate::engine::MAX_ATTEMPTS_PAGE as u64),
    );
    constrain_param(
        doc,
        "/api/v1/admin/webhooks/{id}/deliveries",
        "get",
        "cursor",
        json!({"pattern": "^[0-9]{1,19}$"}),
    );
    constrain_param(
        doc,
        "/api/v1/admin/events",
        "get",
        "cursor",
        json!({"pattern": "^[0-9]{1,19}$"}),
    );
    constrain_param(
        doc,
        "/api/v1/admin/notifications",
        "get",
        "limit",
        page(1000),
    );
    constrain_param(
        doc,
        "/api/v1/admin/notifications",
        "get",
        "cursor",
        json!({"pattern": "^[0-9]{0,19}$"}),
    );
    constrain_param(
        doc,
        "/api/v1/admin/templates/{name}",
        "get",
        "name",
        json!({"enum": crate::notify::templates::NAMES}),
    );
    constrain_param(
        doc,
        "/api/v1/admin/templates/{name}",
        "put",
        "name",
        json!({"enum": crate::notify::templates::NAMES}),
    );
    let part = crate::notify::templates::MAX_PART;
    constrain(doc, &s("TemplateIn", "subject"), text(1, part, true));
    for field in ["text", "html"] {
        constrain(doc, &s("TemplateIn", field), json!({"maxLength": part}));
    }
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This API's OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> impl IntoResponse {
    let doc = DOC.get().map_or("{}", String::as_str);
    ([(header::CONTENT_TYPE, "application/json")], doc)
}

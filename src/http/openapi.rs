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
        for (path, item) in doc.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1/");
            let admin = path.starts_with("/api/v1/admin/");
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
/// an order's id to its reads and transitions), so clients and tools such as
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

/// Finishes `doc` (the shared responses, links) and keeps it for the route.
pub(super) fn publish(mut doc: OpenApi) {
    DOC.get_or_init(|| {
        CommonResponses.modify(&mut doc);
        doc.to_json().expect("the OpenAPI document serializes")
    });
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

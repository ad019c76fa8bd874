//! The storefront: server-rendered HTML pages over the same engine as the JSON API —
//! home, category and search listings, product pages, the cart, one-page checkout and the
//! order page. Every action is a plain form post (a little vendored JavaScript only adds
//! suggestions while typing). Templates are compiled in (`templates/`) and may be
//! overridden by files of the same name in `{data_dir}/templates/shop/`.
//!
//! Safety: every form post carries a CSRF token that must equal the `emporium_csrf`
//! cookie (double submit; the cookies are `SameSite=Lax` and `HttpOnly`); output is
//! HTML-escaped by the template engine; pages send a Content-Security-Policy without
//! inline scripts or styles, `nosniff`, `Referrer-Policy` and `frame-ancestors 'none'`.
//! Pages with a cart or a form token in them are `private, no-store`; listings are the
//! same for everyone, `public` with an ETag (see `caching.rs`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::auth::cookie;
use crate::engine::{CartView, EngineError, ProductView, SearchRequest};
use crate::media;

/// The cookie holding the shopper's cart id.
pub const CART_COOKIE: &str = "emporium_cart";
/// The cookie holding the shopper's CSRF token.
pub const CSRF_COOKIE: &str = "emporium_csrf";

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("card.html", include_str!("templates/card.html")),
    ("home.html", include_str!("templates/home.html")),
    ("list.html", include_str!("templates/list.html")),
    ("product.html", include_str!("templates/product.html")),
    ("cart.html", include_str!("templates/cart.html")),
    ("bill.html", include_str!("templates/bill.html")),
    ("checkout.html", include_str!("templates/checkout.html")),
    ("order.html", include_str!("templates/order.html")),
    ("error.html", include_str!("templates/error.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("account.html", include_str!("templates/account.html")),
];

const CSS: &str = include_str!("assets/shop.css");
const JS: &str = include_str!("assets/shop.js");

/// The page security policy: our own scripts, styles and images only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Routes of the storefront and its assets.
pub fn router() -> OpenApiRouter<AppState> {
    let public = OpenApiRouter::new()
        .route("/", get(home))
        .route("/c/{*path}", get(category))
        .route("/search", get(search))
        .route_layer(axum::middleware::from_fn(super::caching::public_json));
    OpenApiRouter::new()
        .merge(public)
        .route("/p/{sku}", get(product))
        .route("/cart", get(cart))
        .route("/cart/items", post(add_item))
        .route("/cart/items/{sku}", post(set_quantity))
        .route("/cart/promotion", post(apply_code))
        .route("/cart/promotion/remove", post(remove_code))
        .route("/checkout", get(checkout_page).post(checkout))
        .route("/orders/{id}", get(order_page))
        .route("/account", get(account))
        .route("/account/sign-in", get(sign_in_page).post(sign_in))
        .route("/account/sign-up", post(sign_up))
        .route("/account/sign-out", post(sign_out))
        .route("/account/addresses", post(add_address))
        .route(
            "/assets/shop.css",
            get(|| asset(CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/assets/shop.js",
            get(|| asset(JS, "text/javascript; charset=utf-8")),
        )
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The storefront's compiled templates: the built-in ones, each overridden by a file of
/// the same name under `{data_dir}/templates/shop/` if there is one (read when the
/// application is built). One per application, in its state: two shops in one process
/// each have their own.
pub type Pages = std::sync::Arc<minijinja::Environment<'static>>;

/// Compiles the storefront's templates for the data directory `data_dir`.
pub fn pages(data_dir: &std::path::Path) -> Pages {
    std::sync::Arc::new({
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.add_filter("money", |minor: i64, currency: String| {
            crate::notify::templates::money(minor, currency)
        });
        // Percent-encodes all but unreserved characters and `/` (category paths keep
        // their slashes).
        env.add_filter("urlencode", |v: String| {
            v.split('/').map(urlencode).collect::<Vec<_>>().join("/")
        });
        let overrides = data_dir.join("templates").join("shop");
        for (name, source) in TEMPLATES {
            let custom = std::fs::read_to_string(overrides.join(name)).ok();
            let source = custom.unwrap_or_else(|| (*source).to_owned());
            if let Err(e) = env.add_template_owned(*name, source) {
                tracing::error!(template = name, error = %e, "a storefront template does not compile; the built-in one is used");
                env.add_template(
                    name,
                    TEMPLATES.iter().find(|t| t.0 == *name).expect("listed").1,
                )
                .expect("built-in templates compile");
            }
        }
        env
    })
}

/// The response headers every page carries.
fn page_headers(r: &mut Response, private: bool) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if private {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
}

/// Renders `name` with `ctx` (plus the shop's name and currency).
fn render(s: &AppState, status: StatusCode, name: &str, mut ctx: Value, private: bool) -> Response {
    let env = &s.pages;
    if let Value::Object(m) = &mut ctx {
        m.insert("shop".into(), json!("Emporium"));
        m.insert("currency".into(), json!(s.engine.config().currency));
    }
    let html = env.get_template(name).and_then(|t| t.render(&ctx));
    let mut r = match html {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "a storefront page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Something went wrong; it has been logged.",
            )
                .into_response()
        }
    };
    page_headers(&mut r, private);
    r
}

/// A friendly error page.
pub fn error_page(s: &AppState, status: StatusCode, detail: &str) -> Response {
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    render(
        s,
        status,
        "error.html",
        json!({"title": title, "detail": detail}),
        true,
    )
}

/// An engine error as a page: what a person can do about it.
fn failed(s: &AppState, e: EngineError) -> Response {
    let api = super::error::ApiError::from(e);
    let status = api.code.status();
    let detail = if status.is_server_error() {
        "The shop could not do that just now. Please try again in a moment.".to_owned()
    } else {
        api.detail.clone()
    };
    error_page(s, status, &detail)
}

/// 404 for any path that is neither the API nor a page.
pub async fn not_found(State(s): State<AppState>) -> Response {
    error_page(
        &s,
        StatusCode::NOT_FOUND,
        "There is no page here. Try the search box, or start from the home page.",
    )
}

fn card(v: &ProductView) -> Value {
    let p = &v.product;
    let (image, small) = p
        .images
        .first()
        .map(|u| (u.clone(), media::at_width(u, 160)))
        .unwrap_or_default();
    json!({
        "sku": p.sku.as_str(), "name": p.name, "price": p.price,
        "available": v.available, "image": image, "image_small": small,
    })
}

/// `GET /`.
async fn home(State(s): State<AppState>) -> Response {
    let categories = match s.engine.categories().await {
        Ok(c) => c,
        Err(e) => return failed(&s, e),
    };
    let products: Vec<Value> = match s.engine.bestsellers(8).await {
        Ok(p) => p.iter().map(card).collect(),
        Err(e) => return failed(&s, e),
    };
    let cats: Vec<Value> = categories
        .iter()
        .map(|c| json!({"path": c.path, "name": c.name, "count": c.count}))
        .collect();
    render(
        &s,
        StatusCode::OK,
        "home.html",
        json!({"categories": cats, "products": products}),
        false,
    )
}

/// Query string of a listing.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    q: Option<String>,
    brand: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
}

const SORTS: &[(&str, &str)] = &[
    ("relevance", "Best match"),
    ("price_asc", "Price, low to high"),
    ("price_desc", "Price, high to low"),
    ("newest", "Newest"),
];

async fn listing(s: &AppState, category: Option<String>, p: ListParams, action: &str) -> Response {
    let sort = p
        .sort
        .clone()
        .filter(|v| SORTS.iter().any(|(k, _)| k == v))
        .unwrap_or_else(|| "relevance".to_owned());
    let req = SearchRequest {
        q: p.q.clone(),
        category: category.clone(),
        brand: p.brand.clone(),
        sort: Some(sort.clone()),
        limit: Some(24),
        cursor: p.cursor.clone(),
        ..SearchRequest::default()
    };
    let page = match s.engine.search(req).await {
        Ok(p) => p,
        Err(e) => return failed(s, e),
    };
    // The link that keeps this listing's filters (and sort), ready for one more.
    let mut keep: Vec<(String, String)> = Vec::new();
    if let Some(q) = &p.q {
        keep.push(("q".into(), q.clone()));
    }
    keep.push(("sort".into(), sort.clone()));
    let encode = |pairs: &[(String, String)]| -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let base = format!("{action}?{}&", encode(&keep));
    let next = page.next_cursor.as_ref().map(|c| {
        let mut pairs = keep.clone();
        if let Some(b) = &p.brand {
            pairs.push(("brand".into(), b.clone()));
        }
        pairs.push(("cursor".into(), c.clone()));
        format!("{action}?{}", encode(&pairs))
    });
    let heading = match (&category, &p.q) {
        (Some(c), _) => c.rsplit('/').next().unwrap_or(c).to_owned(),
        (None, Some(q)) if !q.trim().is_empty() => format!("Results for “{q}”"),
        _ => "All products".to_owned(),
    };
    let subcategories: Vec<Value> = page
        .categories
        .iter()
        .map(|(path, count)| {
            json!({"path": path, "name": path.rsplit('/').next().unwrap_or(path), "count": count})
        })
        .collect();
    let brands: Vec<Value> = page
        .brands
        .iter()
        .take(12)
        .map(|(name, count)| json!({"name": name, "count": count}))
        .collect();
    let sorts: Vec<Value> = SORTS
        .iter()
        .map(|(v, l)| json!({"value": v, "label": l}))
        .collect();
    render(
        s,
        StatusCode::OK,
        "list.html",
        json!({
            "heading": heading, "total": page.total, "q": p.q, "brand": p.brand,
            "products": page.items.iter().map(card).collect::<Vec<_>>(),
            "subcategories": subcategories, "brands": brands, "sorts": sorts, "sort": sort,
            "action": action, "base": base, "next": next,
        }),
        false,
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /c/{path}`.
async fn category(
    State(s): State<AppState>,
    Path(path): Path<String>,
    Query(p): Query<ListParams>,
) -> Response {
    let action = format!("/c/{}", urlencode(&path));
    listing(&s, Some(path), p, &action).await
}

/// `GET /search?q=`.
async fn search(State(s): State<AppState>, Query(p): Query<ListParams>) -> Response {
    listing(&s, None, p, "/search").await
}

/// The shopper's CSRF token (the cookie's, or a new one) and whether it is new.
fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE)
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Some(t) => (t, false),
        None => (uuid::Uuid::new_v4().simple().to_string(), true),
    }
}

/// Whether the shop's cookies get `Secure`: yes (unless `--insecure-cookies`), except for a
/// page asked of a loopback host (`localhost`, `127.0.0.1`, `[::1]`), which a browser
/// reaches over plain HTTP on the shopper's own machine — the first command of the
/// README opens such a shop.
fn secure_cookies(s: &AppState, headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    s.secure_cookies && !matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

fn set_cookie(r: &mut Response, name: &str, value: &str, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}");
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&c).expect("ascii cookie"),
    );
}

/// A private page with the shopper's CSRF token (set as a cookie if new).
fn private_page(s: &AppState, headers: &HeaderMap, name: &str, mut ctx: Value) -> Response {
    private_page_with(s, headers, StatusCode::OK, name, &mut ctx)
}

fn private_page_with(
    s: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    ctx: &mut Value,
) -> Response {
    let (token, new) = csrf_token(headers);
    private_page_token(s, headers, status, name, ctx, &token, new)
}

fn private_page_token(
    s: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    ctx: &mut Value,
    token: &str,
    new: bool,
) -> Response {
    if let Value::Object(m) = ctx {
        m.insert("csrf".into(), json!(token));
    }
    let mut r = render(s, status, name, ctx.take(), true);
    if new {
        set_cookie(&mut r, CSRF_COOKIE, token, secure_cookies(s, headers));
    }
    r
}

/// Whether a form post carries the token of its cookie.
fn csrf_ok(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    match (cookie(headers, CSRF_COOKIE), form.get("csrf")) {
        (Some(c), Some(f)) => {
            !c.is_empty() && constant_time_eq::constant_time_eq(c.as_bytes(), f.as_bytes())
        }
        _ => false,
    }
}

/// A form post whose CSRF token matches its cookie; any other post is answered `403`
/// with a page, before its handler runs.
struct CheckedForm(HashMap<String, String>);

impl axum::extract::FromRequest<AppState> for CheckedForm {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, s: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let axum::Form(form) = axum::Form::<HashMap<String, String>>::from_request(req, s)
            .await
            .map_err(|_| error_page(s, StatusCode::BAD_REQUEST, "The form could not be read."))?;
        if !csrf_ok(&headers, &form) {
            return Err(forbidden(s));
        }
        Ok(CheckedForm(form))
    }
}

/// A form field, empty if absent.
fn field(form: &HashMap<String, String>, k: &str) -> String {
    form.get(k).cloned().unwrap_or_default()
}

/// An address from a form's fields (`name`, `line1`, `line2`, `city`, `postal_code`,
/// `country`, `region`; the optional ones empty are none).
fn address_of(form: &HashMap<String, String>) -> crate::domain::order::Address {
    let optional = |k: &str| Some(field(form, k)).filter(|v| !v.trim().is_empty());
    crate::domain::order::Address {
        name: field(form, "name"),
        line1: field(form, "line1"),
        line2: optional("line2"),
        city: field(form, "city"),
        postal_code: field(form, "postal_code"),
        country: field(form, "country"),
        region: optional("region"),
    }
}

/// A `Set-Cookie` that clears cookie `name`.
fn clear_cookie(r: &mut Response, name: &str) {
    let c = format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&c).expect("ascii"),
    );
}

fn forbidden(s: &AppState) -> Response {
    error_page(
        s,
        StatusCode::FORBIDDEN,
        "This form is out of date or did not come from this shop. Go back, reload the page and try again.",
    )
}

/// `GET /p/{sku}`. The view goes to the recommender under the browser's id (its CSRF
/// token, which no other browser has), for "viewed together".
async fn product(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    headers: HeaderMap,
) -> Response {
    let view = match s.engine.product(&sku).await {
        Ok(v) => v,
        Err(e) => return failed(&s, e),
    };
    let (browser, new) = csrf_token(&headers);
    s.engine.record_view(&browser, view.product.sku.as_str());
    let me = viewer(&s, &headers).await;
    let recs = s
        .engine
        .recommendations_for(&sku, 4, me.as_ref())
        .await
        .ok();
    let p = &view.product;
    let images: Vec<Value> = p
        .images
        .iter()
        .map(|u| {
            json!({"small": media::at_width(u, 160), "medium": media::at_width(u, 480),
                   "large": media::at_width(u, 1200)})
        })
        .collect();
    let mut ctx = json!({
        "p": {"sku": p.sku.as_str(), "name": p.name, "description": p.description,
              "category": p.category, "price": p.price, "available": view.available,
              "images": images},
        "recommendations": recs.as_ref().map(|r| r.items.iter().map(card).collect::<Vec<_>>()),
        "strategy": recs.as_ref().map(|r| r.strategy),
    });
    private_page_token(
        &s,
        &headers,
        StatusCode::OK,
        "product.html",
        &mut ctx,
        &browser,
        new,
    )
}

/// The signed-in customer of the session cookie, if it is a live session (a dead one is
/// a guest here: a page can always be shown).
async fn viewer(s: &AppState, headers: &HeaderMap) -> Option<crate::engine::Authenticated> {
    let token = cookie(headers, super::auth::SESSION_COOKIE)?;
    s.engine.authenticate(&token).await.ok()
}

/// The shopper's cart: the one in the cookie if it is still there and theirs (a cart an
/// account holds is shown only to that account).
async fn current_cart(s: &AppState, headers: &HeaderMap) -> Option<CartView> {
    let who = viewer(s, headers).await;
    cart_of(s, headers, who.as_ref()).await
}

/// [`current_cart`] for a shopper already authenticated (`None`: a guest), so that a
/// handler that needs both reads the session once.
async fn cart_of(
    s: &AppState,
    headers: &HeaderMap,
    who: Option<&crate::engine::Authenticated>,
) -> Option<CartView> {
    let id = cookie(headers, CART_COOKIE)?;
    s.engine.check_cart_access(&id, who).await.ok()?;
    let view = s.engine.cart(&id).await.ok()?;
    // A checked-out cart is done with: the next item starts a new one.
    (view.cart.status == crate::domain::cart::CartStatus::Open).then_some(view)
}

fn cart_context(view: Option<&CartView>) -> Value {
    match view {
        None => json!({"lines": []}),
        Some(v) => json!({
            "lines": v.priced.lines.iter().map(|l| json!({
                "sku": l.sku.as_str(), "name": l.name, "quantity": l.quantity,
                "unit_price": l.unit_price, "line_total": l.line_total,
            })).collect::<Vec<_>>(),
            "bill": crate::notify::bill_context(&v.breakdown),
            "code": v.cart.promotion_code,
        }),
    }
}

/// `GET /cart`, with what goes with the cart below it.
async fn cart(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let me = viewer(&s, &headers).await;
    let view = cart_of(&s, &headers, me.as_ref()).await;
    let mut ctx = cart_context(view.as_ref());
    if let Some(v) = view.filter(|v| !v.cart.lines.is_empty()) {
        // A page can always be shown: without recommendations if they fail.
        if let Ok(r) = s
            .engine
            .cart_recommendations(&v.cart.id, 4, me.as_ref())
            .await
        {
            ctx["recommendations"] = json!(r.items.iter().map(card).collect::<Vec<_>>());
            ctx["strategy"] = json!(r.strategy);
        }
    }
    private_page(&s, &headers, "cart.html", ctx)
}

/// The cart page again with a message (a refused change), status 422.
async fn cart_with_message(s: &AppState, headers: &HeaderMap, message: String) -> Response {
    let view = current_cart(s, headers).await;
    let mut ctx = cart_context(view.as_ref());
    ctx["message"] = json!(message);
    private_page_with(
        s,
        headers,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cart.html",
        &mut ctx,
    )
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `POST /cart/items`: `sku`, `quantity` (creates the cart on the first item).
async fn add_item(
    State(s): State<AppState>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm,
) -> Response {
    let sku = form.get("sku").cloned().unwrap_or_default();
    let quantity: i64 = form
        .get("quantity")
        .and_then(|q| q.trim().parse().ok())
        .unwrap_or(1);
    let (cart_id, new) = match current_cart(&s, &headers).await {
        Some(v) => (v.cart.id, false),
        None => match s.engine.create_cart().await {
            Ok(v) => (v.cart.id, true),
            Err(e) => return failed(&s, e),
        },
    };
    if let Err(e) = s.engine.cart_add_item(&cart_id, &sku, quantity).await {
        return cart_with_message(&s, &headers, super::error::ApiError::from(e).detail).await;
    }
    let mut r = see_other("/cart");
    if new {
        set_cookie(&mut r, CART_COOKIE, &cart_id, secure_cookies(&s, &headers));
    }
    r
}

/// `POST /cart/items/{sku}`: `quantity` (0 removes the line).
async fn set_quantity(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm,
) -> Response {
    let Some(view) = current_cart(&s, &headers).await else {
        return see_other("/cart");
    };
    let quantity: i64 = match form.get("quantity").and_then(|q| q.trim().parse().ok()) {
        Some(q) => q,
        None => {
            return cart_with_message(&s, &headers, "Enter a quantity from 0 to 999.".into()).await;
        }
    };
    match s
        .engine
        .cart_set_quantity(&view.cart.id, &sku, quantity)
        .await
    {
        Ok(_) => see_other("/cart"),
        Err(e) => cart_with_message(&s, &headers, super::error::ApiError::from(e).detail).await,
    }
}

/// `POST /cart/promotion`: `code`.
async fn apply_code(
    State(s): State<AppState>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm,
) -> Response {
    let Some(view) = current_cart(&s, &headers).await else {
        return see_other("/cart");
    };
    let code = form
        .get("code")
        .map(|c| c.trim().to_owned())
        .unwrap_or_default();
    match s.engine.cart_apply_promotion(&view.cart.id, &code).await {
        Ok(_) => see_other("/cart"),
        Err(e) => {
            let why = super::error::ApiError::from(e).detail;
            cart_with_message(
                &s,
                &headers,
                format!("The code {code} cannot be used: {why}."),
            )
            .await
        }
    }
}

/// `POST /cart/promotion/remove`.
async fn remove_code(
    State(s): State<AppState>,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm,
) -> Response {
    if let Some(view) = current_cart(&s, &headers).await
        && let Some(code) = view.cart.promotion_code.clone()
    {
        let _ = s.engine.cart_remove_promotion(&view.cart.id, &code).await;
    }
    see_other("/cart")
}

async fn checkout_context(
    s: &AppState,
    view: &CartView,
    form: Value,
    message: Option<String>,
) -> Value {
    let country = form["country"].as_str().map(str::to_owned);
    let methods: Vec<Value> = s
        .engine
        .cart_shipping_methods(&view.cart.id, Some(country.as_deref().unwrap_or("US")))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|o| json!({"id": o.method.id, "name": o.method.name, "charge": o.charge}))
        .collect();
    json!({
        "bill": crate::notify::bill_context(&view.breakdown), "methods": methods, "form": form,
        "message": message, "key": uuid::Uuid::new_v4().simple().to_string(),
    })
}

/// `GET /checkout`.
async fn checkout_page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(view) = current_cart(&s, &headers)
        .await
        .filter(|v| !v.priced.lines.is_empty())
    else {
        return see_other("/cart");
    };
    let mut ctx = checkout_context(&s, &view, json!({}), None).await;
    private_page_with(&s, &headers, StatusCode::OK, "checkout.html", &mut ctx)
}

/// `POST /checkout`: the form; its hidden `key` is the Idempotency-Key, so a double
/// submit places one order.
async fn checkout(
    State(s): State<AppState>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm,
) -> Response {
    let field = |k: &str| field(&form, k);
    let cart_id = cookie(&headers, CART_COOKIE).unwrap_or_default();
    let optional = |k: &str| Some(field(k)).filter(|v| !v.trim().is_empty());
    let request = crate::domain::order::CheckoutRequest {
        email: field("email"),
        payment_token: field("payment_token"),
        shipping_address: address_of(&form),
        shipping_method: optional("shipping_method"),
    };
    let who = viewer(&s, &headers).await;
    let placed = s
        .engine
        .checkout_as(&cart_id, &field("key"), &request, who.as_ref())
        .await;
    match placed {
        Ok(order) => see_other(&format!("/orders/{}?placed=1", order.id)),
        Err(e) => {
            let message = super::error::ApiError::from(e).detail;
            let Some(view) = cart_of(&s, &headers, who.as_ref()).await else {
                return error_page(&s, StatusCode::UNPROCESSABLE_ENTITY, &message);
            };
            let keep: Value = form
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "csrf" | "key"))
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
            let mut ctx = checkout_context(&s, &view, keep, Some(message)).await;
            private_page_with(
                &s,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                "checkout.html",
                &mut ctx,
            )
        }
    }
}

/// `GET /orders/{id}`.
async fn order_page(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let who = viewer(&s, &headers).await;
    if let Err(e) = s.engine.check_order_access(&id, who.as_ref()).await {
        return failed(&s, e);
    }
    let order = match s.engine.order(&id).await {
        Ok(o) => o,
        Err(e) => return failed(&s, e),
    };
    let mut r = private_page(
        &s,
        &headers,
        "order.html",
        json!({
            "number": crate::notify::order_number(&order.id), "status": order.status.as_str(),
            "email": order.email, "placed": q.contains_key("placed"),
            "lines": order.lines.iter().map(|l| json!({"name": l.name, "quantity": l.quantity,
                "line_total": l.line_total})).collect::<Vec<_>>(),
            "bill": crate::notify::bill_context(&order.pricing.breakdown),
        }),
    );
    // The order page of a placed order forgets the finished cart.
    if q.contains_key("placed") {
        clear_cookie(&mut r, CART_COOKIE);
    }
    r
}

/// `GET /account`: the signed-in customer's orders and addresses, or the way in.
async fn account(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(who) = viewer(&s, &headers).await else {
        return see_other("/account/sign-in");
    };
    let customer = match s.engine.customer(&who).await {
        Ok(c) => c,
        Err(e) => return failed(&s, e),
    };
    let orders = match s.engine.customer_orders(&who.customer_id, None, 20).await {
        Ok(p) => p.items,
        Err(e) => return failed(&s, e),
    };
    let orders: Vec<Value> = orders
        .iter()
        .map(|o| {
            json!({"id": o.id, "number": crate::notify::order_number(&o.id),
                   "status": o.status.as_str(), "total": o.total,
                   "date": super::wire::rfc3339(o.created_at).get(..10).unwrap_or("").to_owned()})
        })
        .collect();
    let addresses: Vec<Value> = customer
        .addresses
        .iter()
        .map(|a| {
            let a = &a.address;
            json!({"name": a.name, "line1": a.line1, "city": a.city,
                   "postal_code": a.postal_code, "country": a.country})
        })
        .collect();
    private_page(
        &s,
        &headers,
        "account.html",
        json!({"name": customer.name, "email": customer.email, "orders": orders,
               "addresses": addresses}),
    )
}

/// `GET /account/sign-in`.
async fn sign_in_page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if viewer(&s, &headers).await.is_some() {
        return see_other("/account");
    }
    private_page(&s, &headers, "sign_in.html", json!({}))
}

fn sign_in_again(
    s: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    message: String,
) -> Response {
    private_page_with(
        s,
        headers,
        status,
        "sign_in.html",
        &mut json!({"message": message}),
    )
}

/// Opens a session and sets its cookie; the guest cart in the cookie is attached.
async fn open_session(
    s: &AppState,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
    email: &str,
    password: &str,
) -> Response {
    let cart = cookie(headers, CART_COOKIE);
    let signed = match s.engine.sign_in(email, password, ip, cart.as_deref()).await {
        Ok(signed) => Ok(signed),
        // A cart that cannot be attached (gone, or another account's) is left behind.
        Err(EngineError::NotFound(_)) => s.engine.sign_in(email, password, ip, None).await,
        Err(e) => Err(e),
    };
    match signed {
        Ok(signed) => {
            let mut r = see_other("/account");
            let max_age = (signed.expires_at - s.engine.now()).max(0) / 1000;
            let secure = if secure_cookies(s, headers) {
                "; Secure"
            } else {
                ""
            };
            let c = format!(
                "{}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
                super::auth::SESSION_COOKIE,
                signed.token
            );
            r.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_str(&c).expect("ascii"),
            );
            r
        }
        Err(e) => {
            let api = super::error::ApiError::from(e);
            sign_in_again(s, headers, api.code.status(), api.detail)
        }
    }
}

/// `POST /account/sign-in`: `email`, `password`.
async fn sign_in(
    State(s): State<AppState>,
    super::customers::ClientIp(ip): super::customers::ClientIp,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm,
) -> Response {
    let field = |k: &str| field(&form, k);
    open_session(&s, &headers, ip, &field("email"), &field("password")).await
}

/// `POST /account/sign-up`: `email`, `password`, `name`; signed in at once.
async fn sign_up(
    State(s): State<AppState>,
    super::customers::ClientIp(ip): super::customers::ClientIp,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm,
) -> Response {
    let field = |k: &str| field(&form, k);
    let name = Some(field("name")).filter(|n| !n.trim().is_empty());
    if let Err(e) = s
        .engine
        .register(&field("email"), &field("password"), name.as_deref())
        .await
    {
        let api = super::error::ApiError::from(e);
        return sign_in_again(&s, &headers, api.code.status(), api.detail);
    }
    open_session(&s, &headers, ip, &field("email"), &field("password")).await
}

/// `POST /account/sign-out`.
async fn sign_out(
    State(s): State<AppState>,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm,
) -> Response {
    if let Some(who) = viewer(&s, &headers).await {
        let _ = s.engine.sign_out(&who).await;
    }
    let mut r = see_other("/");
    for name in [super::auth::SESSION_COOKIE, CART_COOKIE] {
        clear_cookie(&mut r, name);
    }
    r
}

/// `POST /account/addresses`: an address to save.
async fn add_address(
    State(s): State<AppState>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm,
) -> Response {
    let Some(who) = viewer(&s, &headers).await else {
        return see_other("/account/sign-in");
    };
    match s.engine.add_address(&who, address_of(&form)).await {
        Ok(_) => see_other("/account"),
        Err(e) => failed(&s, e),
    }
}

//! Customer accounts: registration, sessions (sign in and out), the profile, saved
//! addresses and the order history; the admin's lookup by email.
//!
//! A session is sent as `Authorization: Bearer <token>` or as the `emporium_session`
//! cookie set at sign-in (HttpOnly, SameSite=Lax, Secure unless `--insecure-cookies`).

use std::net::IpAddr;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Customer, SESSION_COOKIE};
use super::error::ApiError;
use super::extract::Json;
use super::openapi::{PROBLEM_JSON, Problem};
use super::orders::{AddressIn, OrderOut, OrderPageOut};
use super::wire::rfc3339;
use crate::domain::customer::{self, ProfileChange};

/// Shopper routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(me, update_me, erase_me))
        .routes(routes!(export_me))
        .routes(routes!(verify_email))
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
        .routes(routes!(addresses, add_address))
        .routes(routes!(replace_address, remove_address))
        .routes(routes!(my_orders))
}

/// Admin routes.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(find_customers))
        .routes(routes!(customer_orders))
}

/// The client's address, as the server saw the connection.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// `POST /customers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    /// Sign-in email (compared without regard to case).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// At least 8 characters, at most 256.
    #[schema(min_length = 8, max_length = 256, format = Password)]
    password: String,
    /// Display name.
    #[serde(default)]
    #[schema(max_length = 100)]
    name: Option<String>,
}

/// `POST /sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInIn {
    /// Sign-in email.
    #[schema(max_length = 254)]
    email: String,
    /// Password.
    #[schema(max_length = 256, format = Password)]
    password: String,
    /// A guest cart to attach to the account.
    #[serde(default)]
    #[schema(max_length = 32)]
    cart_id: Option<String>,
}

/// A session just opened.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// The session token: send it as `Authorization: Bearer <token>` (it is also set as
    /// the session cookie). Shown once.
    token: String,
    /// When the session lapses unless used (each use slides it).
    #[schema(format = DateTime)]
    expires_at: String,
    /// The account.
    customer: CustomerOut,
}

/// `PATCH /customers/me`: fields left out are left alone; `null` clears one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileIn {
    /// Display name (`null` or blank clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 100)]
    name: Option<Option<String>>,
    /// Id of a saved address to ship to by default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 64)]
    default_shipping_address_id: Option<Option<String>>,
    /// Id of a saved address to bill by default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 64)]
    default_billing_address_id: Option<Option<String>>,
}

/// A field that was sent (`Some`), with its value or `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// A saved address.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedAddressOut {
    /// Its id within the account.
    id: String,
    name: String,
    line1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line2: Option<String>,
    city: String,
    postal_code: String,
    country: String,
}

/// The saved addresses.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressesOut {
    /// Oldest first.
    items: Vec<SavedAddressOut>,
}

/// A customer account on the wire (never its password hash or sessions).
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerOut {
    id: String,
    #[schema(format = Email)]
    email: String,
    name: Option<String>,
    email_verified: bool,
    default_shipping_address_id: Option<String>,
    default_billing_address_id: Option<String>,
    addresses: Vec<SavedAddressOut>,
    /// The account's cart, if one is attached.
    cart_id: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

fn saved(a: &customer::SavedAddress) -> SavedAddressOut {
    let address = &a.address;
    SavedAddressOut {
        id: a.id.clone(),
        name: address.name.clone(),
        line1: address.line1.clone(),
        line2: address.line2.clone(),
        city: address.city.clone(),
        postal_code: address.postal_code.clone(),
        country: address.country.clone(),
    }
}

impl From<&customer::Customer> for CustomerOut {
    fn from(c: &customer::Customer) -> Self {
        CustomerOut {
            id: c.id.clone(),
            email: c.email.clone(),
            name: c.name.clone(),
            email_verified: c.email_verified,
            default_shipping_address_id: c.default_shipping.clone(),
            default_billing_address_id: c.default_billing.clone(),
            addresses: c.addresses.iter().map(saved).collect(),
            cart_id: c.cart_id.clone(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

type CustomerResult = Result<axum::Json<CustomerOut>, ApiError>;

/// Creates an account.
#[utoipa::path(
    post,
    path = "/api/v1/customers",
    tag = "customers",
    request_body = RegisterIn,
    responses(
        (status = 201, description = "The account", body = CustomerOut),
        (status = 409, description = "An account with this email exists (`email_taken`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "An invalid email, a password under 8 characters, a name too long", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn register(
    State(s): State<AppState>,
    Json(body): Json<RegisterIn>,
) -> Result<impl IntoResponse, ApiError> {
    let c = s
        .engine
        .register(&body.email, &body.password, body.name.as_deref())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(CustomerOut::from(&c))))
}

/// The `Set-Cookie` value of a session (`None`: one that clears it).
fn session_cookie(token: Option<&str>, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        token.unwrap_or(""),
        max_age_secs.max(0)
    );
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static(""))
}

/// Signs in: opens a session. A wrong password and an unknown email get the same answer.
#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    tag = "customers",
    request_body = SignInIn,
    responses(
        (status = 201, description = "The session; also set as the `emporium_session` cookie", body = SessionOut,
            headers(("Set-Cookie" = String, description = "The session cookie (HttpOnly, SameSite=Lax, Secure)"))),
        (status = 401, description = "The email or the password is wrong (`invalid_credentials`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "The cart to attach is unknown or another account's", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed sign-ins for this email or from this client (`too_many_login_attempts`); `Retry-After` says when to try again", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn sign_in(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<SignInIn>,
) -> Result<impl IntoResponse, ApiError> {
    let signed = s
        .engine
        .sign_in(&body.email, &body.password, ip, body.cart_id.as_deref())
        .await?;
    let now = s.engine.now();
    let cookie = session_cookie(
        Some(&signed.token),
        (signed.expires_at - now) / 1000,
        s.secure_cookies,
    );
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        axum::Json(SessionOut {
            token: signed.token,
            expires_at: rfc3339(signed.expires_at),
            customer: CustomerOut::from(&signed.customer),
        }),
    ))
}

/// Signs out: ends the session the request came with.
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/current",
    tag = "customers",
    responses(
        (status = 204, description = "The session ended; the cookie is cleared"),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn sign_out(
    State(s): State<AppState>,
    Customer(auth): Customer,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.sign_out(&auth).await?;
    let cookie = session_cookie(None, 0, s.secure_cookies);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]))
}

/// The signed-in customer's account.
#[utoipa::path(
    get,
    path = "/api/v1/customers/me",
    tag = "customers",
    responses(
        (status = 200, description = "The account", body = CustomerOut),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn me(State(s): State<AppState>, Customer(auth): Customer) -> CustomerResult {
    Ok(axum::Json(CustomerOut::from(
        &s.engine.customer(&auth).await?,
    )))
}

/// Changes the name or the default addresses.
#[utoipa::path(
    patch,
    path = "/api/v1/customers/me",
    tag = "customers",
    request_body = ProfileIn,
    responses(
        (status = 200, description = "The account", body = CustomerOut),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "A default names no saved address", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "The name is too long", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn update_me(
    State(s): State<AppState>,
    Customer(auth): Customer,
    Json(body): Json<serde_json::Map<String, serde_json::Value>>,
) -> CustomerResult {
    // Every field is optional, so a JSON array would map onto them by position: only an
    // object is a profile change.
    let body: ProfileIn = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::new(super::error::Code::InvalidRequest, e.to_string()))?;
    let change = ProfileChange {
        name: body.name,
        default_shipping: body.default_shipping_address_id,
        default_billing: body.default_billing_address_id,
    };
    Ok(axum::Json(CustomerOut::from(
        &s.engine.update_customer(&auth, change).await?,
    )))
}

/// The saved addresses.
#[utoipa::path(
    get,
    path = "/api/v1/customers/me/addresses",
    tag = "customers",
    responses(
        (status = 200, description = "The saved addresses", body = AddressesOut),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn addresses(
    State(s): State<AppState>,
    Customer(auth): Customer,
) -> Result<axum::Json<AddressesOut>, ApiError> {
    let c = s.engine.customer(&auth).await?;
    Ok(axum::Json(AddressesOut {
        items: c.addresses.iter().map(saved).collect(),
    }))
}

fn address_of(c: &customer::Customer, id: &str) -> Result<SavedAddressOut, ApiError> {
    c.addresses
        .iter()
        .find(|a| a.id == id)
        .map(saved)
        .ok_or_else(|| crate::engine::EngineError::NotFound("address").into())
}

/// Saves an address (at most 20).
#[utoipa::path(
    post,
    path = "/api/v1/customers/me/addresses",
    tag = "customers",
    request_body = AddressIn,
    responses(
        (status = 201, description = "The saved address", body = SavedAddressOut),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is invalid, or the account holds 20 addresses", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn add_address(
    State(s): State<AppState>,
    Customer(auth): Customer,
    Json(body): Json<AddressIn>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, id) = s.engine.add_address(&auth, body.into()).await?;
    let location = format!("/api/v1/customers/me/addresses/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(address_of(&c, &id)?),
    ))
}

/// A saved address's id in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AddressPath {
    /// The address's id.
    #[param(max_length = 64)]
    #[allow(dead_code)]
    id: String,
}

/// Replaces a saved address.
#[utoipa::path(
    put,
    path = "/api/v1/customers/me/addresses/{id}",
    tag = "customers",
    params(AddressPath),
    request_body = AddressIn,
    responses(
        (status = 200, description = "The saved address", body = SavedAddressOut),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such address in this account", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is invalid", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn replace_address(
    State(s): State<AppState>,
    Customer(auth): Customer,
    Path(id): Path<String>,
    Json(body): Json<AddressIn>,
) -> Result<axum::Json<SavedAddressOut>, ApiError> {
    let c = s.engine.replace_address(&auth, &id, body.into()).await?;
    Ok(axum::Json(address_of(&c, &id)?))
}

/// Removes a saved address (and clears it as a default).
#[utoipa::path(
    delete,
    path = "/api/v1/customers/me/addresses/{id}",
    tag = "customers",
    params(AddressPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such address in this account", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn remove_address(
    State(s): State<AppState>,
    Customer(auth): Customer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.engine.remove_address(&auth, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of orders.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9a-f]{48}$")]
    cursor: Option<String>,
}

/// The signed-in customer's orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/customers/me/orders",
    tag = "customers",
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of orders", body = OrderPageOut),
        (status = 400, description = "A malformed limit or cursor", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn my_orders(
    State(s): State<AppState>,
    Customer(auth): Customer,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<OrderPageOut>, ApiError> {
    let page = s
        .engine
        .customer_orders(
            &auth.customer_id,
            q.cursor.as_deref(),
            q.limit.unwrap_or(20),
        )
        .await?;
    Ok(axum::Json(OrderPageOut {
        items: page.items.iter().map(OrderOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Customers found by email.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindQuery {
    /// The sign-in email (compared without regard to case).
    #[param(max_length = 254)]
    email: String,
}

/// Customers found.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomersOut {
    /// Zero or one account.
    items: Vec<CustomerOut>,
}

/// Finds the account with an email.
#[utoipa::path(
    get,
    path = "/api/v1/admin/customers",
    tag = "admin",
    params(FindQuery),
    responses(
        (status = 200, description = "The account with this email, if any", body = CustomersOut),
        (status = 401, description = "No admin token", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "A wrong admin token", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn find_customers(
    State(s): State<AppState>,
    Query(q): Query<FindQuery>,
) -> Result<axum::Json<CustomersOut>, ApiError> {
    let found = s.engine.customer_by_email(&q.email).await?;
    Ok(axum::Json(CustomersOut {
        items: found.iter().map(CustomerOut::from).collect(),
    }))
}

/// A customer's id in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CustomerPath {
    /// The customer's id.
    #[param(max_length = 32)]
    #[allow(dead_code)]
    id: String,
}

/// A customer's orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/customers/{id}/orders",
    tag = "admin",
    params(CustomerPath, HistoryQuery),
    responses(
        (status = 200, description = "A page of orders", body = OrderPageOut),
        (status = 404, description = "No such customer", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn customer_orders(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<OrderPageOut>, ApiError> {
    s.engine.customer_by_id(&id).await?;
    let page = s
        .engine
        .customer_orders(&id, q.cursor.as_deref(), q.limit.unwrap_or(20))
        .await?;
    Ok(axum::Json(OrderPageOut {
        items: page.items.iter().map(OrderOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `POST /customers/password-reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestIn {
    /// The account's email.
    #[schema(max_length = 254)]
    email: String,
}

/// Asks for a password-reset mail. Always `202`, whether or not an account has this
/// email (the answer does not tell); at most one mail a minute per account.
#[utoipa::path(
    post,
    path = "/api/v1/customers/password-reset",
    tag = "customers",
    request_body = ResetRequestIn,
    responses(
        (status = 202, description = "If an account has this email, a reset token is on its way"),
        (status = 422, description = "The email is longer than 254 characters", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn request_password_reset(
    State(s): State<AppState>,
    Json(body): Json<ResetRequestIn>,
) -> Result<StatusCode, ApiError> {
    s.engine.request_password_reset(&body.email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /customers/password-reset/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmIn {
    /// The mailed token.
    #[schema(max_length = 200)]
    token: String,
    /// The new password: at least 8 characters, at most 256.
    #[schema(min_length = 8, max_length = 256, format = Password)]
    password: String,
}

/// Sets a new password with a mailed reset token. The token works once; every session of
/// the account ends.
#[utoipa::path(
    post,
    path = "/api/v1/customers/password-reset/confirm",
    tag = "customers",
    request_body = ResetConfirmIn,
    responses(
        (status = 204, description = "The password is changed; sign in again"),
        (status = 422, description = "The token is invalid, used or expired, or the password too short (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn confirm_password_reset(
    State(s): State<AppState>,
    Json(body): Json<ResetConfirmIn>,
) -> Result<StatusCode, ApiError> {
    s.engine.reset_password(&body.token, &body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /customers/me/verify`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    /// The mailed token; without it, a token is mailed.
    #[serde(default)]
    #[schema(max_length = 200)]
    token: Option<String>,
}

/// Verifies the account's email: without a token, mails one (`202`); with the mailed
/// token, marks the email verified (`200`). A verified account's history includes the
/// guest orders placed with its email.
#[utoipa::path(
    post,
    path = "/api/v1/customers/me/verify",
    tag = "customers",
    request_body = VerifyIn,
    responses(
        (status = 200, description = "The email is verified", body = CustomerOut),
        (status = 202, description = "A token is on its way (unless the email is verified already)", body = CustomerOut),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "The token is invalid, used or expired (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn verify_email(
    State(s): State<AppState>,
    Customer(auth): Customer,
    Json(body): Json<VerifyIn>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(match body.token {
        Some(token) => (
            StatusCode::OK,
            axum::Json(CustomerOut::from(
                &s.engine.verify_email(&auth, &token).await?,
            )),
        ),
        None => (
            StatusCode::ACCEPTED,
            axum::Json(CustomerOut::from(
                &s.engine.request_email_verification(&auth).await?,
            )),
        ),
    })
}

/// A session of the account, as an export shows it (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfoOut {
    /// When it lapses unless used.
    #[schema(format = DateTime)]
    expires_at: String,
}

/// Everything held about a customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportOut {
    /// The account, its addresses included.
    customer: CustomerOut,
    /// Its open sessions.
    sessions: Vec<SessionInfoOut>,
    /// Every order in its history.
    orders: Vec<OrderOut>,
    /// Its cart, if one is attached.
    cart: Option<super::carts::CartOut>,
    /// Mails sent to its address.
    notifications: Vec<super::notify::NotificationOut>,
}

/// Everything held about the signed-in customer, as JSON.
#[utoipa::path(
    get,
    path = "/api/v1/customers/me/export",
    tag = "customers",
    responses(
        (status = 200, description = "The account, its sessions, orders, cart and mails", body = ExportOut),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn export_me(
    State(s): State<AppState>,
    Customer(auth): Customer,
) -> Result<axum::Json<ExportOut>, ApiError> {
    let e = s.engine.export_customer(&auth).await?;
    Ok(axum::Json(ExportOut {
        customer: CustomerOut::from(&e.customer),
        sessions: e
            .customer
            .sessions
            .iter()
            .map(|s| SessionInfoOut {
                expires_at: rfc3339(s.expires_at),
            })
            .collect(),
        orders: e.orders.iter().map(OrderOut::from).collect(),
        cart: e.cart.map(Into::into),
        notifications: e.notifications.iter().map(Into::into).collect(),
    }))
}

/// Erases the account: it is deleted with its sessions; the orders in its history keep
/// their lines and totals but lose their email and address.
#[utoipa::path(
    delete,
    path = "/api/v1/customers/me",
    tag = "customers",
    responses(
        (status = 204, description = "Erased; the session cookie is cleared"),
        (status = 401, description = "No valid session", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn erase_me(
    State(s): State<AppState>,
    Customer(auth): Customer,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.erase_customer(&auth).await?;
    let cookie = session_cookie(None, 0, s.secure_cookies);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]))
}

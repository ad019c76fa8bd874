//! Problem details (RFC 9457) from one table: error code → HTTP status → title.
//!
//! Adding an error is one row in [`Code`]. Every error response — ours, axum's own
//! rejections, the fallback 404/405, a body over the limit, a timeout — leaves the server as
//! `application/problem+json` with a stable `code`; [`problemize`] rewrites whatever the
//! framework produced. A 500 carries no internals: its cause is logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::domain::Invalid;
use crate::engine::EngineError;

macro_rules! codes {
    ($($variant:ident => $code:literal, $status:ident, $title:literal;)*) => {
        /// Every error code the API returns.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $(
            #[doc = $title]
            $variant,
        )* }

        impl Code {
            /// The stable machine-readable code.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }
            /// The HTTP status.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }
            /// The human-readable title.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }
            /// Every code, for tests and documentation.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
        }
    };
}

codes! {
    InvalidRequest => "invalid_request", BAD_REQUEST, "The request is malformed";
    IdempotencyKeyRequired => "idempotency_key_required", BAD_REQUEST, "An Idempotency-Key header is required";
    Unauthorized => "unauthorized", UNAUTHORIZED, "Authentication is required";
    PaymentDeclined => "payment_declined", PAYMENT_REQUIRED, "The payment was declined";
    Forbidden => "forbidden", FORBIDDEN, "The credentials are not valid for this resource";
    NotFound => "not_found", NOT_FOUND, "The resource does not exist";
    UnknownSku => "unknown_sku", NOT_FOUND, "The SKU is not in the catalog";
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED, "The method is not allowed on this resource";
    NotAcceptable => "not_acceptable", NOT_ACCEPTABLE, "No acceptable representation";
    RequestTimeout => "request_timeout", REQUEST_TIMEOUT, "The request took too long to arrive";
    AlreadyExists => "already_exists", CONFLICT, "The resource already exists";
    CartCheckedOut => "cart_checked_out", CONFLICT, "The cart is checked out";
    CheckoutInProgress => "checkout_in_progress", CONFLICT, "A checkout of the cart is in progress";
    OutOfStock => "out_of_stock", CONFLICT, "Not enough stock";
    StockConflict => "stock_conflict", CONFLICT, "The stock change conflicts with current reservations";
    InvalidTransition => "invalid_transition", CONFLICT, "The order cannot make this transition";
    Conflict => "conflict", CONFLICT, "The request conflicts with the current state";
    PayloadTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE, "The request body is too large";
    UnsupportedMediaType => "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "The request body must be application/json";
    ValidationFailed => "validation_failed", UNPROCESSABLE_ENTITY, "The request breaks a rule";
    EmptyCart => "empty_cart", UNPROCESSABLE_ENTITY, "The cart is empty";
    IdempotencyKeyReused => "idempotency_key_reused", UNPROCESSABLE_ENTITY, "The Idempotency-Key was used with a different request";
    TooManyReservations => "too_many_reservations", CONFLICT, "The item holds as many reservations as it can";
    TooManyRequests => "too_many_requests", TOO_MANY_REQUESTS, "Too many requests";
    TooManyCheckoutAttempts => "too_many_checkout_attempts", TOO_MANY_REQUESTS, "Too many failed checkouts of this cart";
    EmailTaken => "email_taken", CONFLICT, "An account with this email exists";
    InvalidCredentials => "invalid_credentials", UNAUTHORIZED, "The email or the password is wrong";
    TooManyLoginAttempts => "too_many_login_attempts", TOO_MANY_REQUESTS, "Too many failed sign-ins";
    PromotionExhausted => "promotion_exhausted", UNPROCESSABLE_ENTITY, "The promotion code has been used up";
    PromotionLimitReached => "promotion_limit_reached", UNPROCESSABLE_ENTITY, "The promotion code's per-customer limit is reached";
    PromotionUnknown => "promotion_unknown", UNPROCESSABLE_ENTITY, "No such promotion code";
    PromotionExpired => "promotion_expired", UNPROCESSABLE_ENTITY, "The promotion code is not valid now";
    PromotionNotApplicable => "promotion_not_applicable", UNPROCESSABLE_ENTITY, "The promotion code does not apply to this cart";
    UnsupportedImage => "unsupported_image", UNSUPPORTED_MEDIA_TYPE, "Only JPEG, PNG and WebP images are accepted";
    ShippingMethodRequired => "shipping_method_required", UNPROCESSABLE_ENTITY, "Choose a shipping method";
    ShippingMethodNotApplicable => "shipping_method_not_applicable", UNPROCESSABLE_ENTITY, "The shipping method does not apply to this cart and address";
    Internal => "internal", INTERNAL_SERVER_ERROR, "Internal server error";
    PaymentGatewayError => "payment_gateway_error", BAD_GATEWAY, "The payment gateway failed";
    Unavailable => "unavailable", SERVICE_UNAVAILABLE, "The service is temporarily unavailable";
    GatewayTimeout => "timeout", GATEWAY_TIMEOUT, "The request timed out";
    InsufficientStorage => "insufficient_storage", INSUFFICIENT_STORAGE, "The server is out of storage";
}

impl Code {
    /// The code for an HTTP status the framework produced on its own.
    pub fn for_status(status: StatusCode) -> Code {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.status() == status)
            .unwrap_or(if status.is_server_error() {
                Code::Internal
            } else {
                Code::InvalidRequest
            })
    }
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// Which row of the table.
    pub code: Code,
    /// What went wrong in this case (safe to show a client).
    pub detail: String,
    /// Extra members (e.g. `"field"`, `"skus"`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    /// An error with a detail message.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    /// Adds an extra member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// 404 for a path that matches no route.
    pub fn no_route() -> Self {
        Self::new(Code::NotFound, "no such route")
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::new(Code::ValidationFailed, e.to_string()).with("field", e.field)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let detail = e.to_string();
        match e {
            EngineError::NotFound(_) | EngineError::UnknownReservation(_) => {
                ApiError::new(Code::NotFound, detail)
            }
            EngineError::UnknownSku(sku) => {
                ApiError::new(Code::UnknownSku, detail).with("sku", sku)
            }
            EngineError::Invalid(i) => i.into(),
            EngineError::TooManyLines => {
                ApiError::new(Code::ValidationFailed, detail).with("field", "items")
            }
            EngineError::CartCheckedOut => ApiError::new(Code::CartCheckedOut, detail),
            EngineError::AlreadyExists(_) => ApiError::new(Code::AlreadyExists, detail),
            EngineError::OutOfStock { available } => {
                ApiError::new(Code::OutOfStock, detail).with("available", available)
            }
            EngineError::StockConflict(_) => ApiError::new(Code::StockConflict, detail),
            EngineError::TooManyReservations { max } => {
                ApiError::new(Code::TooManyReservations, detail).with("max", max)
            }
            EngineError::TooManyCheckoutAttempts { retry_after_secs } => {
                ApiError::new(Code::TooManyCheckoutAttempts, detail)
                    .with("retry_after", retry_after_secs)
            }
            EngineError::EmailTaken => ApiError::new(Code::EmailTaken, detail),
            EngineError::PromotionExhausted => ApiError::new(Code::PromotionExhausted, detail),
            EngineError::PromotionCustomerLimit => {
                ApiError::new(Code::PromotionLimitReached, detail)
            }
            EngineError::PromotionUnknown => ApiError::new(Code::PromotionUnknown, detail),
            EngineError::Image(crate::media::ImageError::Unsupported) => {
                ApiError::new(Code::UnsupportedImage, detail)
            }
            EngineError::Image(crate::media::ImageError::TooLarge) => {
                ApiError::new(Code::PayloadTooLarge, detail)
            }
            EngineError::Image(
                crate::media::ImageError::TooManyPixels { .. }
                | crate::media::ImageError::Undecodable(_),
            ) => ApiError::new(Code::ValidationFailed, detail).with("field", "image"),
            EngineError::Image(crate::media::ImageError::Io(_)) => {
                tracing::error!(error = %e, "image storage failed");
                ApiError::new(
                    Code::Internal,
                    "an internal error occurred; it has been logged",
                )
            }
            EngineError::PromotionExpired(_) => ApiError::new(Code::PromotionExpired, detail),
            EngineError::PromotionNotApplicable(_) => {
                ApiError::new(Code::PromotionNotApplicable, detail)
            }
            EngineError::ShippingMethodRequired => {
                ApiError::new(Code::ShippingMethodRequired, detail).with("field", "shipping_method")
            }
            EngineError::ShippingMethodNotApplicable(m) => {
                ApiError::new(Code::ShippingMethodNotApplicable, detail)
                    .with("field", "shipping_method")
                    .with("shipping_method", m)
            }
            EngineError::InvalidCredentials => ApiError::new(Code::InvalidCredentials, detail),
            EngineError::Unauthenticated => ApiError::new(Code::Unauthorized, detail),
            EngineError::TooManyLoginAttempts { retry_after_secs } => {
                ApiError::new(Code::TooManyLoginAttempts, detail)
                    .with("retry_after", retry_after_secs)
            }
            EngineError::TooLarge { bytes } => ApiError::new(
                Code::ValidationFailed,
                format!("the record would be {bytes} bytes, over the limit"),
            ),
            EngineError::DiskFull(_) => {
                tracing::error!(error = %e, "write not acknowledged: the disk is full");
                ApiError::new(
                    Code::InsufficientStorage,
                    "the store is out of disk space and accepts no writes; reads still work",
                )
            }
            EngineError::NotAcknowledged(_) => {
                tracing::error!(error = %e, "write not acknowledged");
                ApiError::new(
                    Code::Unavailable,
                    "the store cannot acknowledge writes right now",
                )
            }
            EngineError::Unavailable { .. } => {
                tracing::warn!(error = %e, "request not served");
                ApiError::new(Code::Unavailable, "try again shortly")
            }
            EngineError::BadQuery(_) => ApiError::new(Code::InvalidRequest, detail),
            EngineError::EmptyCart => ApiError::new(Code::EmptyCart, detail),
            EngineError::CheckoutInProgress => ApiError::new(Code::CheckoutInProgress, detail),
            EngineError::IdempotencyKeyMissing => {
                ApiError::new(Code::IdempotencyKeyRequired, detail)
            }
            EngineError::IdempotencyKeyMalformed => ApiError::new(Code::InvalidRequest, detail),
            EngineError::IdempotencyKeyReused => ApiError::new(Code::IdempotencyKeyReused, detail),
            EngineError::ItemsOutOfStock(skus) => {
                ApiError::new(Code::OutOfStock, detail).with("skus", skus)
            }
            EngineError::PaymentDeclined(_) => ApiError::new(Code::PaymentDeclined, detail),
            EngineError::PaymentGateway(_) => {
                tracing::warn!(error = %e, "payment gateway failed");
                ApiError::new(
                    Code::PaymentGatewayError,
                    "the payment gateway failed; nothing was charged",
                )
            }
            EngineError::InvalidTransition(_) => ApiError::new(Code::InvalidTransition, detail),
            EngineError::Storage(_) | EngineError::Search(_) => {
                tracing::error!(error = %e, "storage error");
                ApiError::new(
                    Code::Internal,
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("urn:emporium:problem:{}", self.code.as_str())),
        );
        body.insert("title".into(), json!(self.code.title()));
        body.insert("status".into(), json!(self.code.status().as_u16()));
        body.insert("detail".into(), json!(self.detail));
        body.insert("code".into(), json!(self.code.as_str()));
        let retry_after = self.extra.get("retry_after").and_then(Value::as_u64);
        for (k, v) in self.extra {
            body.entry(k).or_insert(v);
        }
        let mut res = (self.code.status(), axum::Json(Value::Object(body))).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if self.code == Code::Unauthorized {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// Middleware: turns any error response that is not already problem+json (axum's 405,
/// a path rejection, tower-http's 408/413/503 …) into one, keeping its headers (e.g. `Allow`).
pub async fn problemize(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    // A storefront page is already what a person should see.
    let is_page = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_problem || is_page {
        return res;
    }
    let (parts, _) = res.into_parts();
    let code = Code::for_status(status);
    let detail = if status.is_server_error() {
        "the request could not be served"
    } else {
        code.title()
    };
    let mut out = ApiError::new(code, detail).into_response();
    *out.status_mut() = status;
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
    }

    #[test]
    fn framework_statuses_map_to_codes() {
        assert_eq!(
            Code::for_status(StatusCode::METHOD_NOT_ALLOWED),
            Code::MethodNotAllowed
        );
        assert_eq!(
            Code::for_status(StatusCode::PAYLOAD_TOO_LARGE),
            Code::PayloadTooLarge
        );
        assert_eq!(
            Code::for_status(StatusCode::IM_A_TEAPOT),
            Code::InvalidRequest
        );
        assert_eq!(
            Code::for_status(StatusCode::HTTP_VERSION_NOT_SUPPORTED),
            Code::Internal
        );
    }
}

//! Extractors whose rejections are problem+json.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::{ApiError, Code};

/// `axum::Json`, but a malformed body, a wrong type or an unknown field is a `400
/// invalid_request`, a body over the limit `413`, a missing content type `415`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(Code::PayloadTooLarge, "the request body is over the limit")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            Code::UnsupportedMediaType,
            "send the body with Content-Type: application/json",
        ),
        _ => ApiError::new(Code::InvalidRequest, r.body_text()),
    }
}

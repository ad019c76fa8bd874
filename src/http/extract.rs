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

/// The body of a bulk import: a JSON array of objects (`Content-Type: application/json`)
/// or NDJSON (anything else). An empty body, or a JSON body that is not an array of
/// objects, is `400` before anything is imported — as the API document declares.
pub struct ImportBody(pub String);

impl<S: Send + Sync> FromRequest<S> for ImportBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| {
                let t = t.trim();
                t.eq_ignore_ascii_case("application/json") || t.ends_with("+json")
            });
        let body = String::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(Code::PayloadTooLarge, "the request body is over the limit")
            } else {
                ApiError::new(Code::InvalidRequest, r.body_text())
            }
        })?;
        if body.trim().is_empty() {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "the body is empty: send a JSON array or NDJSON records",
            ));
        }
        if json {
            type Objects = Vec<std::collections::HashMap<String, serde::de::IgnoredAny>>;
            serde_json::from_str::<Objects>(&body).map_err(|e| {
                ApiError::new(
                    Code::InvalidRequest,
                    format!("an application/json body must be an array of objects: {e}"),
                )
            })?;
        }
        Ok(ImportBody(body))
    }
}

//! Webhook endpoints, for the admin: `/api/v1/admin/webhooks` — create (the signing
//! secret is in that answer only), list, read, update, delete, rotate the secret, the
//! attempts made, replay from a sequence number, resume a failing endpoint.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, Code};
use super::extract::Json;
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::{int, rfc3339};
use crate::domain::webhook::{
    Attempt, Endpoint, EndpointStatus, MAX_DESCRIPTION, MAX_EVENT_TYPES, MAX_URL, event_id,
};
use crate::engine::{MAX_ATTEMPTS_PAGE, WebhookDraft};

/// Admin routes.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
        .routes(routes!(replay))
        .routes(routes!(resume))
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// Where deliveries are posted: `http` or `https`, without credentials. Private,
    /// loopback and link-local destinations are refused (also when a name resolves to
    /// one at send time).
    #[schema(max_length = 2048)]
    url: String,
    /// Event types to deliver (`OrderPlaced`, `OrderPaid`, …), or `["*"]` for all.
    #[schema(min_items = 1, max_items = 64)]
    event_types: Vec<String>,
    /// For people.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: Option<String>,
}

/// Changes to an endpoint (each optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// A new URL.
    #[serde(default)]
    #[schema(max_length = 2048)]
    url: Option<String>,
    /// New event types (from the endpoint's offset on).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 64)]
    event_types: Option<Vec<String>>,
    /// A new description.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: Option<String>,
}

/// Where a replay starts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// Deliver again every wanted event after this sequence number (0: the whole log).
    #[serde(deserialize_with = "int::de")]
    #[schema(value_type = u64, minimum = 0)]
    after_seq: i64,
}

/// The event being retried.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryOut {
    /// Its sequence number.
    seq: u64,
    /// Failed attempts so far.
    attempts: u32,
    /// When it is tried next.
    #[schema(format = DateTime)]
    next_attempt_at: String,
    /// Why the last attempt failed.
    last_error: String,
}

/// An endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    id: String,
    url: String,
    event_types: Vec<String>,
    description: String,
    /// `active` (delivering, or retrying an event) or `failing` (an event failed for the
    /// whole retry period; nothing is delivered until it is resumed).
    #[schema(pattern = "^(active|failing)$")]
    status: &'static str,
    /// Since when it is failing.
    #[schema(format = DateTime)]
    failing_since: Option<String>,
    /// The sequence number of the last event delivered or passed over.
    delivered_through: u64,
    /// The event being retried, if one failed.
    retrying: Option<RetryOut>,
    /// Signing secrets in use (more than one for a while after a rotation).
    signing_secrets: usize,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<&Endpoint> for WebhookOut {
    fn from(e: &Endpoint) -> Self {
        let (status, failing_since) = match e.status {
            EndpointStatus::Active => ("active", None),
            EndpointStatus::Failing { since } => ("failing", Some(rfc3339(since))),
        };
        WebhookOut {
            id: e.id.clone(),
            url: e.url.clone(),
            event_types: e.event_types.clone(),
            description: e.description.clone(),
            status,
            failing_since,
            delivered_through: e.offset,
            retrying: e.retry.as_ref().map(|r| RetryOut {
                seq: r.seq,
                attempts: r.attempts,
                next_attempt_at: rfc3339(r.next_at),
                last_error: r.last_error.clone(),
            }),
            signing_secrets: e.keys.len(),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// An endpoint with its signing secret: the only answers that show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretOut {
    #[serde(flatten)]
    endpoint: WebhookOut,
    /// The signing secret (`whsec_` + base64), for the receiver to verify
    /// `webhook-signature` with (Standard Webhooks). Shown only here.
    secret: String,
}

/// Every endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhooksOut {
    /// Oldest first.
    items: Vec<WebhookOut>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    /// Its number among the endpoint's attempts.
    attempt: u64,
    /// The event's stable id (`webhook-id`).
    event_id: String,
    /// The event's sequence number.
    seq: u64,
    event_type: String,
    #[schema(format = DateTime)]
    attempted_at: String,
    /// `delivered` (a 2xx) or `failed`.
    #[schema(pattern = "^(delivered|failed)$")]
    outcome: &'static str,
    /// The receiver's HTTP status, if it answered.
    status_code: Option<u16>,
    /// To the response's head, or the failure.
    latency_ms: u32,
    /// Why it failed.
    error: Option<String>,
    /// The start of the receiver's response body.
    response: String,
}

impl From<&Attempt> for AttemptOut {
    fn from(a: &Attempt) -> Self {
        AttemptOut {
            attempt: a.number,
            event_id: event_id(a.seq),
            seq: a.seq,
            event_type: a.event_type.clone(),
            attempted_at: rfc3339(a.at),
            outcome: if a.delivered { "delivered" } else { "failed" },
            status_code: a.status,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            response: a.response.clone(),
        }
    }
}

/// A page of attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptsOut {
    /// Newest first.
    items: Vec<AttemptOut>,
    /// Pass as `cursor` for older attempts; absent on the last page.
    next_cursor: Option<String>,
}

/// An endpoint's id in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    /// The endpoint's id.
    #[allow(dead_code)]
    id: String,
}

/// Query string of the attempts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptParams {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Attempts per page, 1–500 (default 50).
    limit: Option<i64>,
}

fn with_secret(e: &Endpoint, secret: String) -> WebhookSecretOut {
    WebhookSecretOut {
        endpoint: WebhookOut::from(e),
        secret,
    }
}

/// Creates an endpoint. It receives the events appended from now on (replay for older
/// ones).
#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks",
    operation_id = "create_webhook",
    tag = "admin",
    request_body = WebhookIn,
    responses(
        (status = 201, description = "The endpoint, with its signing secret (shown only now)", body = WebhookSecretOut),
        (status = 422, description = "A setting breaks a rule (`validation_failed`): not http(s), a forbidden destination, an unknown event type", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn create(
    State(s): State<AppState>,
    Json(body): Json<WebhookIn>,
) -> Result<impl IntoResponse, ApiError> {
    let (e, secret) = s
        .engine
        .create_webhook(WebhookDraft {
            url: body.url,
            event_types: body.event_types,
            description: body.description,
        })
        .await?;
    let location = format!("/api/v1/admin/webhooks/{}", e.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(with_secret(&e, secret)),
    ))
}

/// Every endpoint, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks",
    operation_id = "list_webhooks",
    tag = "admin",
    responses((status = 200, description = "The endpoints", body = WebhooksOut)),
)]
async fn list(State(s): State<AppState>) -> Result<axum::Json<WebhooksOut>, ApiError> {
    let items = s.engine.webhooks().await?;
    Ok(axum::Json(WebhooksOut {
        items: items.iter().map(WebhookOut::from).collect(),
    }))
}

/// An endpoint, with how far it has delivered and what it is retrying.
#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks/{id}",
    operation_id = "get_webhook",
    tag = "admin",
    params(WebhookPath),
    responses((status = 200, description = "The endpoint", body = WebhookOut)),
)]
async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookOut>, ApiError> {
    Ok(axum::Json(WebhookOut::from(&s.engine.webhook(&id).await?)))
}

/// Changes an endpoint's URL, event types or description.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/webhooks/{id}",
    operation_id = "update_webhook",
    tag = "admin",
    params(WebhookPath),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "The endpoint", body = WebhookOut),
        (status = 422, description = "A setting breaks a rule (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<WebhookPatch>,
) -> Result<axum::Json<WebhookOut>, ApiError> {
    let e = s
        .engine
        .update_webhook(&id, body.url, body.event_types, body.description)
        .await?;
    Ok(axum::Json(WebhookOut::from(&e)))
}

/// Deletes an endpoint and its attempts; nothing more is delivered to it.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/webhooks/{id}",
    operation_id = "delete_webhook",
    tag = "admin",
    params(WebhookPath),
    responses((status = 204, description = "Deleted")),
)]
async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.engine.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown only in this answer. The old one keeps signing beside it
/// for 24 hours (`webhook-signature` carries both), so receivers switch without a
/// failed delivery.
#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks/{id}/rotate-secret",
    operation_id = "rotate_webhook_secret",
    tag = "admin",
    params(WebhookPath),
    responses((status = 200, description = "The endpoint with its new secret", body = WebhookSecretOut)),
)]
async fn rotate_secret(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookSecretOut>, ApiError> {
    let (e, secret) = s.engine.rotate_webhook_secret(&id).await?;
    Ok(axum::Json(with_secret(&e, secret)))
}

/// The attempts to deliver to an endpoint, newest first: outcome, status code, latency,
/// error.
#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks/{id}/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "admin",
    params(WebhookPath, AttemptParams),
    responses((status = 200, description = "A page of attempts", body = AttemptsOut)),
)]
async fn deliveries(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<AttemptParams>,
) -> Result<axum::Json<AttemptsOut>, ApiError> {
    let before = p
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<u64>().map_err(|_| {
                ApiError::new(Code::InvalidRequest, "cursor: not a cursor from this API")
            })
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(50);
    let limit = usize::try_from(limit)
        .ok()
        .filter(|l| (1..=MAX_ATTEMPTS_PAGE).contains(l))
        .ok_or_else(|| ApiError::new(Code::InvalidRequest, "limit: must be between 1 and 500"))?;
    let (items, next) = s.engine.webhook_attempts(&id, before, limit)?;
    Ok(axum::Json(AttemptsOut {
        items: items.iter().map(AttemptOut::from).collect(),
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// Delivers again, in order, every event the endpoint takes after `after_seq` (also
/// ones it has had: receivers dedupe by `webhook-id`). The endpoint is active after it.
#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks/{id}/replay",
    operation_id = "replay_webhook",
    tag = "admin",
    params(WebhookPath),
    request_body = ReplayIn,
    responses(
        (status = 202, description = "Replaying: the endpoint", body = WebhookOut),
        (status = 422, description = "`after_seq` is past the log's end (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn replay(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ReplayIn>,
) -> Result<impl IntoResponse, ApiError> {
    let after = u64::try_from(body.after_seq)
        .map_err(|_| crate::domain::Invalid::new("after_seq", "must not be negative"))?;
    let e = s.engine.replay_webhook(&id, after).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(WebhookOut::from(&e))))
}

/// Resumes a failing endpoint: the event it failed on is tried at once, with a new retry
/// period (on an active endpoint: a waiting retry is made now).
#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks/{id}/resume",
    operation_id = "resume_webhook",
    tag = "admin",
    params(WebhookPath),
    responses((status = 200, description = "The endpoint", body = WebhookOut)),
)]
async fn resume(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookOut>, ApiError> {
    Ok(axum::Json(WebhookOut::from(
        &s.engine.resume_webhook(&id).await?,
    )))
}

// The limits the schema states are the ones the engine checks.
const _: () = assert!(MAX_URL == 2048 && MAX_EVENT_TYPES == 64 && MAX_DESCRIPTION == 500);

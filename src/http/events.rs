//! The durable event log, for administrators: `GET /api/v1/admin/events?after=&limit=`.

use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::dto::{EventOut, EventPageOut, rfc3339};
use super::error::{ApiError, Code};

/// Admin routes.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Query string: `after` (a sequence number) or `cursor` (from a previous page), `limit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Events after this sequence number (default 0: from the start).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// `next_cursor` of the previous page (wins over `after`).
    cursor: Option<String>,
    /// Events per page, 1–1000 (default 100).
    limit: Option<i64>,
}

/// The durable domain event log, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/events",
    operation_id = "list_events",
    tag = "admin",
    params(EventParams),
    responses((status = 200, description = "One page of events", body = EventPageOut)),
)]
async fn list(
    State(s): State<AppState>,
    Query(p): Query<EventParams>,
) -> Result<axum::Json<EventPageOut>, ApiError> {
    let after = match (p.after, p.cursor.as_deref()) {
        (_, Some(c)) => c.parse().map_err(|_| {
            ApiError::new(Code::InvalidRequest, "cursor: not a cursor from this API")
        })?,
        (Some(a), None) => u64::try_from(a)
            .map_err(|_| ApiError::new(Code::InvalidRequest, "after: must not be negative"))?,
        (None, None) => 0,
    };
    let (events, next) = s.engine.events(after, p.limit.unwrap_or(100)).await?;
    let items = events
        .iter()
        .map(|e| {
            let v = serde_json::to_value(&e.event).unwrap_or(Value::Null);
            EventOut {
                seq: e.seq,
                kind: e.event.kind().to_owned(),
                at: rfc3339(e.at),
                data: v["data"].clone(),
            }
        })
        .collect();
    Ok(axum::Json(EventPageOut {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

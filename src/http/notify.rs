//! Email templates and the notification log, for administrators.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::dto::rfc3339;
use super::error::{ApiError, Code};
use super::extract::Json;
use crate::engine::TemplateView;

/// Admin routes.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/templates", get(list_templates))
        .route(
            "/api/v1/admin/templates/{name}",
            get(get_template).put(put_template),
        )
        .route("/api/v1/admin/notifications", get(list_notifications))
}

fn template_json(v: &TemplateView) -> Value {
    json!({
        "name": v.name,
        "subject": v.template.subject,
        "text": v.template.text,
        "html": v.template.html,
        "customized": v.customized,
        "updated_at": v.template.updated_at.map(rfc3339),
    })
}

async fn list_templates(State(s): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let items: Vec<Value> = s.engine.templates()?.iter().map(template_json).collect();
    Ok(axum::Json(json!({ "items": items })))
}

async fn get_template(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(template_json(&s.engine.template(&name)?)))
}

/// `PUT /admin/templates/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateIn {
    subject: String,
    text: String,
    html: String,
    #[serde(default, rename = "name")]
    _name: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "customized")]
    _customized: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<serde::de::IgnoredAny>,
}

async fn put_template(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<TemplateIn>,
) -> Result<axum::Json<Value>, ApiError> {
    let view = s
        .engine
        .put_template(&name, body.subject, body.text, body.html)
        .await?;
    Ok(axum::Json(template_json(&view)))
}

/// Query string of the notification list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn list_notifications(
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let after = match p.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse().map_err(|_| {
            ApiError::new(Code::InvalidRequest, "cursor: not a cursor from this API")
        })?,
    };
    let (items, next) = s.engine.notifications(after, p.limit.unwrap_or(50)).await?;
    let items: Vec<Value> = items
        .iter()
        .map(|n| {
            json!({
                "id": n.message_id(), "template": n.template, "to": n.to, "subject": n.subject,
                "about": n.subject_id, "status": n.status.as_str(), "attempts": n.attempts,
                "last_error": n.last_error, "created_at": rfc3339(n.created_at),
                "sent_at": n.sent_at.map(rfc3339),
            })
        })
        .collect();
    Ok(axum::Json(
        json!({"items": items, "next_cursor": next.map(|n| n.to_string())}),
    ))
}

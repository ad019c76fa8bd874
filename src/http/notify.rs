//! Email templates and the notification log, for administrators.

use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, Code};
use super::extract::Json;
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::rfc3339;

/// Admin routes.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates))
        .routes(routes!(get_template, put_template))
        .routes(routes!(list_notifications))
}

/// Every email template (stored overrides and built-in defaults).
#[utoipa::path(
    get,
    path = "/api/v1/admin/templates",
    tag = "admin",
    responses((status = 200, description = "The templates", body = TemplatesOut)),
)]
async fn list_templates(State(s): State<AppState>) -> Result<axum::Json<TemplatesOut>, ApiError> {
    Ok(axum::Json(TemplatesOut {
        items: s
            .engine
            .templates()?
            .iter()
            .map(TemplateOut::from)
            .collect(),
    }))
}

/// One email template.
#[utoipa::path(
    get,
    path = "/api/v1/admin/templates/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The template's name")),
    responses((status = 200, description = "The template", body = TemplateOut)),
)]
async fn get_template(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<TemplateOut>, ApiError> {
    Ok(axum::Json((&s.engine.template(&name)?).into()))
}

/// `PUT /admin/templates/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateIn {
    /// Subject line (a minijinja template).
    subject: String,
    /// Plain-text body (a minijinja template).
    text: String,
    /// HTML body (a minijinja template).
    html: String,
    #[serde(default, rename = "name")]
    #[schema(ignore)]
    _name: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "customized")]
    #[schema(ignore)]
    _customized: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    #[schema(ignore)]
    _updated_at: Option<serde::de::IgnoredAny>,
}

/// Stores a template over the default; it is rendered against sample data first.
#[utoipa::path(
    put,
    path = "/api/v1/admin/templates/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The template's name")),
    request_body = TemplateIn,
    responses(
        (status = 200, description = "The template as stored", body = TemplateOut),
        (status = 422, description = "The template does not render (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn put_template(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<TemplateIn>,
) -> Result<axum::Json<TemplateOut>, ApiError> {
    let view = s
        .engine
        .put_template(&name, body.subject, body.text, body.html)
        .await?;
    Ok(axum::Json((&view).into()))
}

/// Query string of the notification list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Notifications per page, 1–500 (default 50).
    limit: Option<usize>,
}

/// Emails sent, failed or still to send.
#[utoipa::path(
    get,
    path = "/api/v1/admin/notifications",
    tag = "admin",
    params(ListParams),
    responses((status = 200, description = "One page of notifications", body = NotificationPageOut)),
)]
async fn list_notifications(
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<axum::Json<NotificationPageOut>, ApiError> {
    let after = match p.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse().map_err(|_| {
            ApiError::new(Code::InvalidRequest, "cursor: not a cursor from this API")
        })?,
    };
    let (items, next) = s.engine.notifications(after, p.limit.unwrap_or(50)).await?;
    let items = items.iter().map(NotificationOut::from).collect();
    Ok(axum::Json(NotificationPageOut {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// An email template.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateOut {
    /// Which email: `order_confirmation`, `order_shipped`, `order_cancelled`,
    /// `order_refunded`, `payment_failed`, `abandoned_cart`.
    pub name: String,
    /// Subject line (a template).
    pub subject: String,
    /// Plain-text body (a template).
    pub text: String,
    /// HTML body (a template).
    pub html: String,
    /// Whether it was changed from the built-in default.
    pub customized: bool,
    /// When it was last changed; `null` for the default.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

impl From<&crate::engine::TemplateView> for TemplateOut {
    fn from(v: &crate::engine::TemplateView) -> Self {
        TemplateOut {
            name: v.name.to_owned(),
            subject: v.template.subject.clone(),
            text: v.template.text.clone(),
            html: v.template.html.clone(),
            customized: v.customized,
            updated_at: v.template.updated_at.map(rfc3339),
        }
    }
}

/// `GET /admin/templates`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplatesOut {
    /// Every template.
    pub items: Vec<TemplateOut>,
}

/// An email the store sent or is sending.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationOut {
    /// Its Message-ID.
    pub id: String,
    /// The template it was rendered from.
    pub template: String,
    /// The recipient.
    pub to: String,
    /// The rendered subject.
    pub subject: String,
    /// The order or cart it is about.
    pub about: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// When it was queued.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it was delivered.
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
}

impl From<&crate::notify::Notification> for NotificationOut {
    fn from(n: &crate::notify::Notification) -> Self {
        NotificationOut {
            id: n.message_id(),
            template: n.template.clone(),
            to: n.to.clone(),
            subject: n.subject.clone(),
            about: n.subject_id.clone(),
            status: n.status.as_str().to_owned(),
            attempts: n.attempts,
            last_error: n.last_error.clone(),
            created_at: rfc3339(n.created_at),
            sent_at: n.sent_at.map(rfc3339),
        }
    }
}

/// `GET /admin/notifications`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPageOut {
    /// This page, oldest first.
    pub items: Vec<NotificationOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

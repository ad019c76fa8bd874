//! `GET /metrics`: Prometheus text from the `metrics` facade (metrics-exporter-prometheus).
//!
//! Counters and histograms are recorded where things happen (`metrics::counter!` in the
//! engine: checkout outcomes, reservations, searches, mails, events delivered, barrier
//! rounds); gauges of the actor system and subscriber lag are read from the engine at
//! scrape time. The recorder is process-wide, as metrics are: two engines in one process
//! (the tests) share one set of series.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// Histogram buckets, in seconds (and plain counts for batch sizes): 100 µs … 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use (`None` if another recorder
/// was installed first by an embedding program).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            "emporium_barrier_batch_size".into(),
                        ),
                        BATCH_BUCKETS,
                    )
                });
            match builder.and_then(|b| b.install_recorder()) {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

/// The `# HELP` of every series (Prometheus' own `promtool check metrics` requires one).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "emporium_http_requests_total",
        "HTTP requests by method, matched route and status"
    );
    describe_histogram!(
        "emporium_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by method and matched route"
    );
    describe_counter!(
        "emporium_http_shed_total",
        "Requests shed with 503 by the in-flight bound"
    );
    describe_counter!(
        "emporium_checkouts_total",
        "Checkouts by outcome (paid, out_of_stock, declined, gateway_error, compensated …)"
    );
    describe_counter!(
        "emporium_reservations_total",
        "Stock reservations by outcome"
    );
    describe_counter!(
        "emporium_emails_total",
        "Emails by outcome (sent, failed, retried)"
    );
    describe_counter!(
        "emporium_events_delivered_total",
        "Event-log entries delivered to in-process subscribers, by subscriber"
    );
    describe_histogram!(
        "emporium_search_duration_seconds",
        metrics::Unit::Seconds,
        "Catalog search latency (index part)"
    );
    describe_histogram!(
        "emporium_barrier_batch_size",
        "Writes made durable by one flush and fsync"
    );
    describe_histogram!(
        "emporium_barrier_flush_seconds",
        metrics::Unit::Seconds,
        "Duration of one flush and fsync of the store"
    );
    describe_gauge!(
        "emporium_barrier_flushes",
        "Flush and fsync rounds of the store since start"
    );
    describe_gauge!(
        "emporium_barrier_released",
        "Writes released as durable since start"
    );
    describe_gauge!(
        "emporium_actors_resident",
        "Entity actors in memory, by kind"
    );
    describe_gauge!(
        "emporium_actors_activated",
        "Entity activations since start, by kind"
    );
    describe_gauge!(
        "emporium_actors_passivated",
        "Entity passivations since start, by kind"
    );
    describe_gauge!(
        "emporium_actors_unreaped",
        "Entity actors stopped but not yet reaped by their supervisor, by kind"
    );
    describe_gauge!(
        "emporium_actors_panicked",
        "Entity actors that panicked (and were re-activated), by kind"
    );
    describe_gauge!(
        "emporium_actor_call_timeouts",
        "Actor calls that timed out, by kind"
    );
    describe_gauge!(
        "emporium_event_log_end",
        "Sequence number of the last event in the durable log"
    );
    describe_gauge!(
        "emporium_subscriber_lag_events",
        "Events not yet processed, by subscriber"
    );
    describe_gauge!(
        "emporium_webhook_lag_events",
        "Events a webhook endpoint has still to deliver or pass over, by endpoint"
    );
    describe_counter!(
        "emporium_webhook_deliveries_total",
        "Webhook delivery attempts, by endpoint and outcome (delivered, failed)"
    );
    describe_histogram!(
        "emporium_webhook_delivery_seconds",
        "Webhook delivery latency to the response's head, by endpoint"
    );
    describe_counter!(
        "emporium_webhook_endpoints_failed_total",
        "Webhook endpoints marked failing after an event failed for the whole retry period"
    );
}

/// The route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// Middleware: counts every request by method, matched route and status, with latency.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("emporium_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("emporium_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)),
)]
async fn scrape(State(s): State<AppState>) -> Response {
    let Some(h) = handle() else {
        return (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            String::new(),
        )
            .into_response();
    };
    let stats = s.engine.stats();
    for (kind, c) in [
        ("cart", stats.carts),
        ("sku", stats.skus),
        ("order", stats.orders),
    ] {
        metrics::gauge!("emporium_actors_resident", "kind" => kind).set(c.resident as f64);
        metrics::gauge!("emporium_actors_activated", "kind" => kind).set(c.activated as f64);
        metrics::gauge!("emporium_actors_passivated", "kind" => kind).set(c.passivated as f64);
        metrics::gauge!("emporium_actors_panicked", "kind" => kind).set(c.panicked as f64);
        metrics::gauge!("emporium_actors_unreaped", "kind" => kind).set(c.unreaped as f64);
        metrics::gauge!("emporium_actor_call_timeouts", "kind" => kind).set(c.timeouts as f64);
    }
    metrics::gauge!("emporium_barrier_flushes").set(stats.barrier.flushes as f64);
    metrics::gauge!("emporium_barrier_released").set(stats.barrier.released as f64);
    let end = s.engine.event_log_end().unwrap_or(0);
    metrics::gauge!("emporium_event_log_end").set(end as f64);
    for name in [crate::notify::SUBSCRIBER, crate::recommend::SUBSCRIBER] {
        let lag = end.saturating_sub(s.engine.subscriber_offset(name));
        metrics::gauge!("emporium_subscriber_lag_events", "subscriber" => name).set(lag as f64);
    }
    for (endpoint, lag) in s.engine.webhook_lags() {
        metrics::gauge!("emporium_webhook_lag_events", "endpoint" => endpoint).set(lag as f64);
    }
    h.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.render(),
    )
        .into_response()
}

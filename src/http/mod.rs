//! The JSON HTTP API (axum), thin over the [`Engine`]: extract, call, map the result.
//!
//! One module per resource, each exposing `router()` (and `admin_router()` for its admin
//! routes); [`app`] merges them and adds the layers: admin auth, body limit, request id,
//! tracing, timeout, and [`error::problemize`], which turns every error response the
//! framework makes on its own into problem+json. [`serve`] runs it until a shutdown
//! future resolves, finishing in-flight requests.
//!
//! Architecture invariant: no business rule lives here; handlers call one engine method.

pub mod auth;
pub mod caching;
pub mod carts;
pub mod customers;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod images;
pub mod inventory;
pub mod limits;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod orders;
pub mod pricing;
pub mod products;
pub mod promotions;
pub mod search;
pub mod shop;
pub mod webhooks;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::engine::Engine;
use error::ApiError;

/// Largest request body accepted on ordinary routes.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// Largest body of a bulk product import.
pub const IMPORT_BODY_LIMIT_BYTES: usize = 256 * 1024 * 1024;
/// Most products in one import call.
pub const IMPORT_MAX_PRODUCTS: usize = 100_000;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The engine the handlers call.
    pub engine: Engine,
    /// The admin bearer token.
    pub admin_token: Arc<str>,
    /// Whether storage is open and recovery done (`/ready`).
    pub ready: Arc<AtomicBool>,
    /// Whether session cookies are marked `Secure` (off only for local use over plain
    /// HTTP: `--insecure-cookies`).
    pub secure_cookies: bool,
    /// The storefront's compiled templates.
    pub pages: shop::Pages,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Longest time a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Count requests for `/metrics` (the route stays; turning this off measures its cost).
    pub metrics: bool,
    /// Per-client-IP token bucket on shopper routes: (requests per second, burst).
    pub rate_limit: Option<(f64, f64)>,
    /// Most API requests in flight; more are shed with 503.
    pub max_in_flight: usize,
    /// When set, `/metrics` answers only requests bearing this token.
    pub metrics_token: Option<Arc<str>>,
    /// Mark session cookies `Secure` (browsers then send them over HTTPS only); off only
    /// for local use over plain HTTP.
    pub secure_cookies: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            request_timeout: Duration::from_secs(30),
            metrics: true,
            rate_limit: None,
            max_in_flight: 1024,
            metrics_token: None,
            secure_cookies: true,
        }
    }
}

/// Every route, each registered with its OpenAPI operation (see [`openapi`]), with the
/// layers that belong to groups of routes: the admin token, the per-client rate limit on
/// shopper routes, the in-flight bound on the API.
fn api_router(options: &HttpOptions, admin_token: Arc<str>) -> OpenApiRouter<AppState> {
    let admin = OpenApiRouter::new()
        .merge(products::admin_router())
        .merge(inventory::admin_router())
        .merge(events::admin_router())
        .merge(orders::admin_router())
        .merge(notify::admin_router())
        .merge(customers::admin_router())
        .merge(promotions::admin_router())
        .merge(pricing::admin_router())
        .merge(images::admin_router())
        .merge(webhooks::admin_router())
        .route_layer(axum::middleware::from_fn_with_state(
            admin_token,
            auth::require_admin,
        ));
    // Catalog reads are the same for everyone: tagged and cacheable.
    let catalog = OpenApiRouter::new()
        .merge(products::router())
        .merge(search::router())
        .route_layer(axum::middleware::from_fn(caching::public_json));
    let shopper = OpenApiRouter::new()
        .merge(catalog)
        .merge(carts::router())
        .merge(customers::router())
        .merge(orders::router())
        .merge(inventory::router());
    let shopper = match options.rate_limit {
        Some((per_sec, burst)) => shopper.route_layer(axum::middleware::from_fn_with_state(
            Arc::new(limits::RateLimiter::new(per_sec, burst)),
            limits::rate_limit,
        )),
        None => shopper,
    };
    let api = OpenApiRouter::new()
        .merge(shopper)
        .merge(admin)
        .routes(routes!(openapi::openapi_json))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(tokio::sync::Semaphore::new(options.max_in_flight.max(1))),
            limits::shed,
        ));
    let metrics = match &options.metrics_token {
        Some(token) => metrics::router().route_layer(axum::middleware::from_fn_with_state(
            token.clone(),
            auth::require_metrics,
        )),
        None => metrics::router(),
    };
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(health::router())
        .merge(images::files_router())
        .merge(shop::router())
        .merge(metrics)
        .merge(api)
}

/// An unknown path: a problem+json 404 under the API (and for machines), an HTML page for
/// people.
async fn fallback(
    axum::extract::State(s): axum::extract::State<AppState>,
    uri: axum::http::Uri,
) -> axum::response::Response {
    let path = uri.path();
    if path.starts_with("/api/") || path == "/metrics" || path.starts_with("/images/") {
        ApiError::no_route().into_response()
    } else {
        shop::not_found(axum::extract::State(s)).await
    }
}

/// Builds the application router.
pub fn app(state: AppState, options: &HttpOptions) -> Router {
    metrics::handle();
    let (routes, doc) = api_router(options, state.admin_token.clone()).split_for_parts();
    openapi::publish(doc, &state.engine.config().currency);
    let router = routes.fallback(fallback);
    let router = if options.metrics {
        router.route_layer(axum::middleware::from_fn(metrics::track))
    } else {
        router
    };
    let router = router.route_layer(axum::middleware::from_fn(record_route));
    outer_layers(router.with_state(state), options)
}

/// The layers around every route: body limit, panic catching, timeout, problem+json,
/// request ids, the request span and log line.
fn outer_layers(router: Router, options: &HttpOptions) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        // A panicking handler answers a plain 500 (made problem+json below); the panic's
        // message goes to the log, never to the client.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(not a string)");
                tracing::error!(panic = what, "a request handler panicked");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            },
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            options.request_timeout,
        ))
        // Outside the timeout, so that its 503 is problem+json too.
        .layer(axum::middleware::map_response(error::problemize))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(
                    |res: &axum::http::Response<_>, latency: Duration, span: &tracing::Span| {
                        span.record("status", res.status().as_u16());
                        access_log(res.status(), latency);
                    },
                ),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// A request slower than this is logged at `info` even when it succeeded.
const SLOW_REQUEST: Duration = Duration::from_secs(1);

/// The access-log line of a finished request: `warn` for a server error (5xx), `info` for
/// a request slower than [`SLOW_REQUEST`], `debug` for the rest. Every request is counted
/// by route and status in `/metrics` anyway; a formatted line per request cost about
/// 6.5 µs of server CPU each (BENCHMARKS.md, "Cost of request logging"), so the full log
/// is opt-in: `RUST_LOG=info,emporium::http=debug`.
fn access_log(status: StatusCode, latency: Duration) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(latency_ms, "request failed");
    } else if latency >= SLOW_REQUEST {
        tracing::info!(latency_ms, "slow request finished");
    } else {
        tracing::debug!(latency_ms, "request finished");
    }
}

/// The span of one request: method, matched route (recorded by the metrics middleware
/// once routing matched), status, request id. Never the raw URI's query, headers or body:
/// they can carry tokens, emails and addresses.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %req.method(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        request_id = %request_id,
    )
}

/// Middleware: puts the matched route (a template such as `/api/v1/carts/{id}`, never the
/// ids in the path) into the request's span.
async fn record_route(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(p) = req.extensions().get::<axum::extract::MatchedPath>() {
        tracing::Span::current().record("route", p.as_str());
    }
    next.run(req).await
}

/// Bounds on connections, so that clients that open connections and stall cannot exhaust
/// file descriptors or hold up a shutdown (slowloris).
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// A client must send a request's headers within this time, or the connection is
    /// closed (also an idle keep-alive connection waiting for its next request).
    pub header_read_timeout: Duration,
    /// Most connections open at once; the listener stops accepting while at the cap (the
    /// kernel's backlog holds the rest).
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take to finish before their
    /// connections are dropped.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// [`serve_with`] with the default [`ServeOptions`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, ServeOptions::default()).await
}

/// Serves `app` (HTTP/1.1 and HTTP/2) on `listener` until `shutdown` resolves, then stops
/// accepting and finishes the requests in flight, for at most `options.drain_timeout`.
/// Each request carries its peer address as [`axum::extract::ConnectInfo`].
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // At the cap, wait for a connection to close before accepting another.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was accepted:
                    // not fatal; pause so that a full descriptor table can drain.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!(drain_timeout = ?options.drain_timeout,
                "connections still open after the drain timeout; closing them");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[test]
    fn the_access_log_line_is_debug_unless_a_request_failed_or_was_slow() {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Buf::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            access_log(StatusCode::OK, Duration::from_millis(3));
            access_log(StatusCode::NOT_FOUND, Duration::from_millis(3));
            access_log(StatusCode::SERVICE_UNAVAILABLE, Duration::from_millis(3));
            access_log(StatusCode::OK, SLOW_REQUEST);
        });
        let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(lines[0].contains("WARN") && lines[0].contains("request failed"));
        assert!(lines[1].contains("INFO") && lines[1].contains("slow request finished"));
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_problem_without_the_panic_text() {
        let router: Router = Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("secret internals: card 4242");
                }
                "unreachable"
            }),
        );
        let app = outer_layers(router, &HttpOptions::default());
        let res = app
            .oneshot(
                axum::http::Request::get("/boom")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            res.headers()[axum::http::header::CONTENT_TYPE],
            error::PROBLEM_JSON
        );
        assert!(res.headers().contains_key("x-request-id"));
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("secret") && !text.contains("4242") && !text.contains("panic"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "internal");
        assert_eq!(v["status"], 500);
    }
}

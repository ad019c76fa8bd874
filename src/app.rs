//! The application: what `emporium serve` runs, and what the integration tests and the
//! examples start — one startup path, so they boot what the binary boots.
//!
//! [`Application::build`] binds the listener, opens the engine (recovering interrupted
//! checkouts), loads the demo catalog into an empty store if asked, brings the search
//! index up to date, builds the router and starts the durability watcher; only then is
//! the server ready (`/ready` answers 200). [`Application::run_until`] serves until the
//! shutdown future resolves, then drains the connections and closes the engine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Config;
use crate::engine::{Engine, EngineError};
use crate::http::{AppState, HttpOptions, ServeOptions};

/// Everything [`Application::build`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The engine's configuration (data directory, durability, …).
    pub engine: Config,
    /// Where to listen (`127.0.0.1:0` picks a free port: see [`Application::addr`]).
    pub listen: SocketAddr,
    /// The admin bearer token.
    pub admin_token: String,
    /// Layers of the HTTP API (timeouts, limits, the metrics token).
    pub http: HttpOptions,
    /// The accept loop's bounds (header-read timeout, connection cap, drain).
    pub serve: ServeOptions,
    /// Load the built-in demo catalog into an empty store.
    pub demo: bool,
}

/// Why the application could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The engine failed (opening, the demo load, the index, closing).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The server's accept loop failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
    /// A flush or fsync failed while serving: what was acknowledged before it is safe,
    /// nothing after it was acknowledged.
    #[error(
        "a flush or fsync failed; acknowledged writes up to the failure are safe, nothing after it was acknowledged"
    )]
    DurabilityFailed,
}

/// A built application, ready to serve.
pub struct Application {
    engine: Engine,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    router: axum::Router,
    serve: ServeOptions,
    failed: Arc<AtomicBool>,
}

impl Application {
    /// Binds, opens and prepares everything; the application is ready when this returns.
    pub async fn build(settings: Settings) -> Result<Application, AppError> {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| AppError::Bind {
                addr: settings.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(AppError::Serve)?;
        let engine = Engine::open(settings.engine).await?;
        if settings.demo && engine.product_count() == 0 {
            let report = engine.import_products(crate::demo::items(), |_| {}).await?;
            tracing::info!(
                products = report.imported,
                "loaded the built-in demo catalog (start with --no-demo to skip it)"
            );
            // Its pictures are drawn in the background: the shop is ready without them.
            let painter = engine.clone();
            tokio::spawn(async move {
                match crate::demo::paint(&painter, crate::demo::items()).await {
                    Ok(n) => tracing::info!(pictures = n, "drew the demo catalog's pictures"),
                    Err(e) => tracing::warn!(error = %e, "the demo pictures were not all drawn"),
                }
            });
        }
        // Ready means searchable too: the first search must see the catalog.
        engine.search_flush().await?;
        let ready = Arc::new(AtomicBool::new(false));
        let state = AppState {
            engine: engine.clone(),
            admin_token: settings.admin_token.into(),
            ready: ready.clone(),
            secure_cookies: settings.http.secure_cookies,
            pages: crate::http::shop::pages(&engine.config().data_dir),
        };
        let router = crate::http::app(state, &settings.http);
        // A failed flush or fsync (a full disk, an I/O error) leaves the store read-only:
        // writes answer 507/503 and are not applied, reads keep working, `/ready` turns
        // 503 so that a balancer sends traffic elsewhere, and the run ends in an error
        // (the binary exits 1). A restart, after freeing space, brings writes back with
        // everything acknowledged.
        let failed = Arc::new(AtomicBool::new(false));
        tokio::spawn({
            let (engine, failed, ready) = (engine.clone(), failed.clone(), ready.clone());
            async move {
                engine.durability_failed().await;
                failed.store(true, Ordering::Release);
                ready.store(false, Ordering::Release);
                tracing::error!(
                    "durability barrier failed: serving reads only; free space and restart to accept writes again"
                );
            }
        });
        ready.store(true, Ordering::Release);
        Ok(Application {
            engine,
            listener,
            addr,
            router,
            serve: settings.serve,
            failed,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The engine it serves.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets the requests in flight
    /// finish (bounded by the drain timeout) and closes the engine.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        crate::http::serve_with(self.listener, self.router, shutdown, self.serve)
            .await
            .map_err(AppError::Serve)?;
        if self.failed.load(Ordering::Acquire) {
            return Err(AppError::DurabilityFailed);
        }
        self.engine.shutdown().await?;
        Ok(())
    }
}

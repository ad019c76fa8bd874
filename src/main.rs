//! The `emporium` binary: `serve` the HTTP API over a data directory.
//!
//! Flags map onto [`emporium::Config`]; each also reads an `EMPORIUM_*` environment
//! variable. Shutdown, step by step: a SIGTERM or Ctrl-C stops the listener from
//! accepting, in-flight requests finish, then the engine stops its actors, flushes and
//! fsyncs, and the process exits 0. If the durability barrier ever fails (a flush or fsync
//! error, e.g. a full disk) the process serves reads only, refuses writes (507/503) and
//! exits 1 when stopped: nothing more could be acknowledged.

/// mimalloc: sled copies a leaf node on every write, and glibc's allocator made that the
/// largest cost of a checkout (measured in-process: 1.0k → 1.9k checkouts/s).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use emporium::app::{Application, Settings};
use emporium::http::{HttpOptions, ServeOptions};
use emporium::{Config, Durability, Engine};

#[derive(Parser)]
#[command(
    name = "emporium",
    version,
    about = "An actor-based, single-process commerce engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, global = true, env = "EMPORIUM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// Every acknowledged write is flushed and fsynced (group-committed). The default.
    Strict,
    /// DEMOS AND BENCHMARKS ONLY: replies do not wait for the disk; sled flushes every
    /// 500 ms, so a crash can lose acknowledged writes.
    Relaxed,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve(Box<ServeArgs>),
    /// Import products from a file (JSON array or NDJSON; native, Icecat or Algolia
    /// records) into a data directory. The server must not be running on it.
    Import(ImportArgs),
    /// Rebuild the search index of a data directory from the store.
    Reindex(DataDirArg),
    /// Import past orders (the UCI Online Retail CSV, or a JSON array / NDJSON of
    /// `{"id", "created_at", "email"?, "items"}`) as history that teaches recommendations.
    /// The server must not be running on the data directory.
    ImportOrders(ImportArgs),
}

#[derive(clap::Args)]
struct DataDirArg {
    /// Data directory.
    #[arg(long, env = "EMPORIUM_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Files to import, in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    data: DataDirArg,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EMPORIUM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data directory (created if missing).
    #[arg(long, env = "EMPORIUM_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Admin bearer token. Without one, a token is generated on first start and stored
    /// in DATA_DIR/admin-token (its path is logged, never the token).
    #[arg(long, env = "EMPORIUM_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Do not load the built-in demo catalog into an empty data directory.
    #[arg(long, env = "EMPORIUM_NO_DEMO")]
    no_demo: bool,
    /// strict: acknowledged writes survive a crash. relaxed: for demos and benchmarks
    /// only — acknowledged writes may be lost in a crash.
    #[arg(long, env = "EMPORIUM_DURABILITY", value_enum, default_value_t = DurabilityArg::Strict)]
    durability: DurabilityArg,
    /// Seconds an idle cart or SKU actor stays in memory.
    #[arg(long, env = "EMPORIUM_PASSIVATE_AFTER_SECS", default_value_t = 300)]
    passivate_after_secs: u64,
    /// Resident actors of one kind (carts, SKUs, orders) above which idle ones are
    /// passivated after half a second: bounds memory (≈ 8 KB an actor) under a surge.
    #[arg(long, env = "EMPORIUM_MAX_RESIDENT_ACTORS", default_value_t = 100_000)]
    max_resident_actors: usize,
    /// Seconds a reservation holds stock before it lapses.
    #[arg(long, env = "EMPORIUM_RESERVATION_TTL_SECS", default_value_t = 600)]
    reservation_ttl_secs: u64,
    /// Seconds a cart lives without changes.
    #[arg(long, env = "EMPORIUM_CART_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    cart_ttl_secs: u64,
    /// Store currency (ISO 4217).
    #[arg(long, env = "EMPORIUM_CURRENCY", default_value = "USD")]
    currency: String,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "EMPORIUM_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
    /// Milliseconds the simulated payment gateway takes for `tok_slow`.
    #[arg(long, env = "EMPORIUM_GATEWAY_SLOW_MS", default_value_t = 1500)]
    gateway_slow_ms: u64,
    /// Seconds between background passes over orders with outstanding work.
    #[arg(long, env = "EMPORIUM_RECOVERY_INTERVAL_SECS", default_value_t = 10)]
    recovery_interval_secs: u64,
    /// Requests per second each client IP (each /64 for IPv6) may make on shopper routes
    /// (0: no limit, and `serve` warns at start; behind a proxy every client shares the
    /// proxy's address, so leave it off there and limit at the proxy).
    #[arg(long, env = "EMPORIUM_RATE_LIMIT_PER_SEC", default_value_t = 0.0)]
    rate_limit_per_sec: f64,
    /// Burst allowed above that rate (default: two seconds' worth).
    #[arg(long, env = "EMPORIUM_RATE_LIMIT_BURST")]
    rate_limit_burst: Option<f64>,
    /// Most API requests in flight; more are answered 503 at once instead of queueing.
    #[arg(long, env = "EMPORIUM_MAX_IN_FLIGHT", default_value_t = 1024)]
    max_in_flight: usize,
    /// Require `Authorization: Bearer <token>` on /metrics (without it /metrics is open to
    /// anyone who can reach the listen address).
    #[arg(long, env = "EMPORIUM_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Send the session cookie without `Secure`, so that browsers keep it over plain HTTP
    /// (local use only; behind TLS leave it off).
    #[arg(long, env = "EMPORIUM_INSECURE_COOKIES")]
    insecure_cookies: bool,
    /// Most connections open at once; at the cap the server stops accepting until one
    /// closes.
    #[arg(long, env = "EMPORIUM_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers before its connection is closed
    /// (stalled and idle connections cannot pile up).
    #[arg(long, env = "EMPORIUM_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    header_read_timeout_secs: u64,
    /// Do not count HTTP requests for /metrics (to measure what counting costs).
    #[arg(long, env = "EMPORIUM_NO_REQUEST_METRICS")]
    no_request_metrics: bool,
    /// Send mail over SMTP (`smtp://host:port`, no TLS: a local relay) instead of writing
    /// `.eml` files to DATA_DIR/outbox.
    #[arg(long, env = "EMPORIUM_SMTP_URL")]
    smtp_url: Option<String>,
    /// The `From:` of every mail.
    #[arg(
        long,
        env = "EMPORIUM_MAIL_FROM",
        default_value = "Emporium <shop@emporium.local>"
    )]
    mail_from: String,
    /// Let webhooks deliver to loopback addresses (a receiver on this machine). Private,
    /// link-local and other internal destinations stay refused.
    #[arg(long, env = "EMPORIUM_WEBHOOKS_ALLOW_LOOPBACK")]
    webhooks_allow_loopback: bool,
    /// Hours a webhook event is retried before its endpoint is marked failing.
    #[arg(long, env = "EMPORIUM_WEBHOOK_RETRY_HOURS", default_value_t = 72)]
    webhook_retry_hours: u64,
    /// Seconds a cart with items and an email stays unchanged before a reminder is sent.
    #[arg(long, env = "EMPORIUM_ABANDONED_CART_SECS", default_value_t = 24 * 3600)]
    abandoned_cart_secs: u64,
    /// Seconds between sweeps of stored carts (expiry, abandoned-cart reminders).
    #[arg(long, env = "EMPORIUM_CART_SWEEP_SECS", default_value_t = 3600)]
    cart_sweep_secs: u64,
}

fn main() -> anyhow::Result<()> {
    // No transparent huge pages for this process: mimalloc asks for them, and sled
    // allocates a fresh 512 KiB I/O buffer for every flush, so under a strict checkout load
    // the kernel zeroed a fresh 2 MiB page per flush — 12–16 % of the server's CPU in
    // `perf` (clear_page_erms), 0.5 % without (see BENCHMARKS.md, issue 21).
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("warning: could not turn transparent huge pages off: {e}");
    }
    let cli = Cli::parse();
    // Held to the end of main: dropping it writes out what the log thread still holds.
    let _log_guard = init_tracing(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Import(args) => runtime.block_on(import(args)),
        Command::Reindex(args) => runtime.block_on(reindex(args)),
        Command::ImportOrders(args) => runtime.block_on(import_orders(args)),
    }
}

/// Logs to stderr through a log thread (tracing-appender's non-blocking writer): a
/// request never waits for the terminal or the log file. Measured with the overload
/// example at 64 clients, writing each request's line on the request's own thread cost
/// 10–25 % of throughput.
fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sled=warn"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal, never in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    // Panics (e.g. in an entity actor, which its supervisor recovers from) go to the log.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
    }));
    guard
}

/// Reads the admin token from DATA_DIR/admin-token, creating it (mode 0600) if missing.
fn stored_admin_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            tracing::info!(path = %path.display(), "admin token read from file");
            return Ok(t);
        }
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write;
    let mut f = opts
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    tracing::info!(path = %path.display(), "generated an admin token; read it from this file");
    Ok(token)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let admin_token = match args.admin_token.clone().filter(|t| !t.trim().is_empty()) {
        Some(t) => t,
        None => stored_admin_token(&args.data_dir)?,
    };
    let mut config = Config::new(&args.data_dir);
    config.durability = match args.durability {
        DurabilityArg::Strict => Durability::Strict,
        DurabilityArg::Relaxed => {
            tracing::warn!(
                "durability=relaxed: acknowledged writes may be lost in a crash (demos and benchmarks only)"
            );
            Durability::Relaxed
        }
    };
    config.passivate_after = Duration::from_secs(args.passivate_after_secs.max(1));
    config.max_resident_actors = args.max_resident_actors.max(1);
    config.reservation_ttl = Duration::from_secs(args.reservation_ttl_secs.max(1));
    config.cart_ttl = Duration::from_secs(args.cart_ttl_secs.max(1));
    config.currency = args.currency.clone();
    config.simulated_gateway_delay = Duration::from_millis(args.gateway_slow_ms);
    config.recovery_interval = Duration::from_secs(args.recovery_interval_secs.max(1));
    config.smtp_url = args.smtp_url.clone();
    config.mail_from = args.mail_from.clone();
    config.webhooks.allow_loopback = args.webhooks_allow_loopback;
    config.webhooks.retry_period = Duration::from_secs(args.webhook_retry_hours.max(1) * 3600);
    config.abandoned_cart_after = Duration::from_secs(args.abandoned_cart_secs);
    config.cart_sweep_interval = Duration::from_secs(args.cart_sweep_secs.max(1));
    // A checkout answers before the request times out (its saga goes on regardless).
    config.checkout_timeout = Duration::from_secs(args.request_timeout_secs.max(2) - 1);

    let rate_limit = (args.rate_limit_per_sec > 0.0).then(|| {
        let burst = args
            .rate_limit_burst
            .unwrap_or(2.0 * args.rate_limit_per_sec);
        (args.rate_limit_per_sec, burst)
    });
    if rate_limit.is_none() {
        tracing::warn!(
            "no per-client rate limit (--rate-limit-per-sec): limit clients here or at a proxy in front"
        );
    }
    let metrics_token = args
        .metrics_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if metrics_token.is_none() {
        tracing::info!(
            "/metrics is open to every client that reaches the listen address (--metrics-token restricts it)"
        );
    }
    let settings = Settings {
        engine: config,
        listen: args.listen,
        admin_token,
        http: HttpOptions {
            request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
            metrics: !args.no_request_metrics,
            rate_limit,
            max_in_flight: args.max_in_flight,
            metrics_token: metrics_token.map(Into::into),
            secure_cookies: !args.insecure_cookies,
        },
        serve: ServeOptions {
            header_read_timeout: Duration::from_secs(args.header_read_timeout_secs.max(1)),
            max_connections: args.max_connections.max(1),
            ..Default::default()
        },
        demo: !args.no_demo,
    };
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.addr(), data_dir = %args.data_dir.display(), "emporium serving");
    let shutdown = async {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
    };
    app.run_until(shutdown).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    use emporium::domain::import::parse_items;
    let engine = Engine::open(Config::new(&args.data.data_dir))
        .await
        .context("opening the data directory (is a server running on it?)")?;
    let mut failed_total = 0;
    // Records without an id are numbered across all files, so they never collide.
    let mut position = 0;
    for file in &args.files {
        let body =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let items =
            parse_items(&body, position).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        position += items.len();
        let bar = progress_bar(items.len(), "products", file);
        let started = std::time::Instant::now();
        let report = engine
            .import_products(items, |done| bar.set_position(done as u64))
            .await?;
        engine.search_flush().await?;
        bar.finish();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{}: imported {} products in {secs:.1} s ({:.0}/s), {} refused",
            file.display(),
            report.imported,
            report.imported as f64 / secs.max(1e-9),
            report.failed.len()
        );
        for (line, e) in report.failed.iter().take(20) {
            println!("  line {line}: {e}");
        }
        failed_total += report.failed.len();
    }
    engine.shutdown().await?;
    if failed_total > 0 {
        println!("{failed_total} records were refused; the rest were imported");
    }
    Ok(())
}

/// The progress bar of an import of `len` `unit`s from `file`.
fn progress_bar(len: usize, unit: &str, file: &Path) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"
        ))
        .expect("template")
        .progress_chars("=> "),
    );
    bar.set_message(file.display().to_string());
    bar
}

async fn import_orders(args: ImportArgs) -> anyhow::Result<()> {
    use emporium::domain::history::{parse_past_orders, read_uci};
    let engine = Engine::open(Config::new(&args.data.data_dir))
        .await
        .context("opening the data directory (is a server running on it?)")?;
    for file in &args.files {
        let started = std::time::Instant::now();
        let records = if file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            let h = read_uci(
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "{}: {} orders after cleaning ({} rows dropped: cancellations, adjustments, fees)",
                file.display(),
                h.orders.len(),
                h.dropped_rows
            );
            h.orders
                .into_iter()
                .enumerate()
                .map(|(i, o)| (i + 1, Ok(o)))
                .collect()
        } else {
            let body = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            parse_past_orders(&body).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        };
        let bar = progress_bar(records.len(), "orders", file);
        let report = engine
            .import_orders(records, |done| bar.set_position(done as u64))
            .await?;
        bar.finish();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{}: imported {} orders in {secs:.1} s ({:.0}/s, learned included), {} refused",
            file.display(),
            report.imported,
            report.imported as f64 / secs.max(1e-9),
            report.failed.len()
        );
        for (line, e) in report.failed.iter().take(20) {
            println!("  line {line}: {e}");
        }
    }
    engine.shutdown().await?;
    Ok(())
}

async fn reindex(args: DataDirArg) -> anyhow::Result<()> {
    let mut config = Config::new(&args.data_dir);
    config.rebuild_index = true;
    let started = std::time::Instant::now();
    let engine = Engine::open(config)
        .await
        .context("opening the data directory (is a server running on it?)")?;
    println!(
        "search index rebuilt: {} products in {:.1?}",
        engine.search_len(),
        started.elapsed()
    );
    engine.shutdown().await?;
    Ok(())
}

//! `spawn_app()` and friends.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use emporium::app::{Application, Settings};
use emporium::domain::product::ProductDraft;
use emporium::http::{HttpOptions, ServeOptions};
use emporium::{Config, Durability, Engine};
use serde_json::{Value, json};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Registry, filter};

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Span chains recorded while [`record_spans`] is on: each new span's name followed by its
/// ancestors' names.
pub type Chains = Arc<Mutex<Vec<Vec<String>>>>;

static RECORDING: AtomicBool = AtomicBool::new(false);
static CHAINS: OnceLock<Chains> = OnceLock::new();

struct Recorder;

impl<S> Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let chain = span.scope().map(|s| s.name().to_owned()).collect();
            CHAINS
                .get_or_init(Chains::default)
                .lock()
                .unwrap()
                .push(chain);
        }
    }
}

/// The test binary's one tracing subscriber, installed by the first engine a test opens.
/// The engine's warnings and errors (`RUST_LOG` to change) go to the running test's
/// captured output, so a failing test shows what the engine said (a failed durability
/// barrier, say), and [`record_spans`] can turn on recording the engine's spans.
fn install_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let log = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_ansi(false)
            .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()));
        // Dynamic: asked at each span, since recording starts mid-run.
        let spans = Recorder.with_filter(filter::dynamic_filter_fn(|meta, _| {
            RECORDING.load(Ordering::Relaxed)
                && meta.target().starts_with("emporium")
                && *meta.level() <= tracing::Level::DEBUG
        }));
        let subscriber = Registry::default().with(log).with(spans);
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    });
}

/// Starts recording the engine's spans (for the rest of the run, across every test) and
/// returns the record.
pub fn record_spans() -> Chains {
    install_tracing();
    RECORDING.store(true, Ordering::Relaxed);
    CHAINS.get_or_init(Chains::default).clone()
}

/// A config for tests: strict durability, short timeouts.
pub fn test_config(dir: &std::path::Path) -> Config {
    install_tracing();
    let mut c = Config::new(dir);
    c.durability = Durability::Strict;
    c.cache_capacity_bytes = 16 * 1024 * 1024;
    c
}

pub async fn open_engine(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Engine {
    let mut c = test_config(dir);
    tweak(&mut c);
    Engine::open(c).await.expect("engine opens")
}

/// A valid checkout request paying with `token`, for tests through the engine.
pub fn checkout_request(token: &str) -> emporium::domain::order::CheckoutRequest {
    emporium::domain::order::CheckoutRequest {
        email: "ada@example.com".into(),
        payment_token: token.into(),
        shipping_address: emporium::domain::order::Address {
            name: "Ada".into(),
            line1: "1 Orbit Way".into(),
            line2: None,
            city: "Base".into(),
            postal_code: "1".into(),
            country: "US".into(),
            region: None,
        },
        shipping_method: None,
    }
}

/// A new cart (through the engine) holding `quantity` of `sku`; its id.
pub async fn cart_of(engine: &emporium::Engine, sku: &str, quantity: i64) -> String {
    let id = engine.create_cart().await.unwrap().cart.id;
    engine.cart_add_item(&id, sku, quantity).await.unwrap();
    id
}

pub fn draft(name: &str, price: i64) -> ProductDraft {
    ProductDraft {
        name: name.into(),
        price,
        category: "Test/Things".into(),
        ..Default::default()
    }
}

/// Polls `cond` until it holds or `deadline` passes (instead of sleeping a fixed time).
pub async fn eventually<F, Fut>(deadline: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub engine: Engine,
    pub _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with HTTP options of the test's choosing.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut HttpOptions)) -> TestApp {
    spawn_app_configured(|_| {}, tweak).await
}

/// [`spawn_app`] with engine configuration and HTTP options of the test's choosing.
pub async fn spawn_app_configured(
    configure: impl FnOnce(&mut Config),
    tweak: impl FnOnce(&mut HttpOptions),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    configure(&mut config);
    let mut http = HttpOptions {
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    tweak(&mut http);
    // What the binary boots, on a free loopback port.
    let app = Application::build(Settings {
        engine: config,
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: ADMIN_TOKEN.into(),
        http,
        serve: ServeOptions::default(),
        demo: false,
    })
    .await
    .expect("the application starts");
    let (addr, engine) = (app.addr(), app.engine().clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("the application stops cleanly");
    });
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        engine,
        _dir: dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// A response's status and JSON body (Null if the body is empty or not JSON), plus its
/// content type.
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.unwrap_or_default();
        Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            content_type,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Resp {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    pub fn admin(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.bearer_auth(ADMIN_TOKEN)
    }

    /// `GET path` with the admin token.
    pub async fn admin_get(&self, path: &str) -> Resp {
        self.send(self.admin(self.client.get(self.url(path)))).await
    }

    /// Imports past orders (NDJSON, one order a line) as the admin.
    pub async fn import_orders(&self, ndjson: &str) -> Resp {
        self.send(
            self.admin(self.client.post(self.url("/api/v1/admin/orders/import")))
                .header("content-type", "application/x-ndjson")
                .body(ndjson.to_owned()),
        )
        .await
    }

    pub async fn create_product(&self, sku: &str, price: i64, stock: i64) {
        self.create_product_in(sku, "", price, stock).await
    }

    /// [`TestApp::create_product`] in a category.
    pub async fn create_product_in(&self, sku: &str, category: &str, price: i64, stock: i64) {
        let r = self
            .send(
                self.admin(self.client.post(self.url("/api/v1/admin/products")))
                    .json(&json!({"sku": sku, "name": format!("Product {sku}"), "price": price, "category": category})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        self.set_on_hand(sku, stock).await;
    }

    /// Sets `sku`'s stock on hand through the admin API.
    pub async fn set_on_hand(&self, sku: &str, on_hand: i64) {
        let r = self
            .send(
                self.admin(
                    self.client
                        .put(self.url(&format!("/api/v1/admin/inventory/{sku}"))),
                )
                .json(&json!({"on_hand": on_hand})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    pub async fn create_cart(&self) -> String {
        let r = self.post_json("/api/v1/carts", json!({})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// A new cart holding `quantity` of `sku`; its id.
    pub async fn cart_with(&self, sku: &str, quantity: i64) -> String {
        let cart = self.create_cart().await;
        let r = self
            .post_json(
                &format!("/api/v1/carts/{cart}/items"),
                json!({"sku": sku, "quantity": quantity}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        cart
    }

    /// Stops the server and closes the engine (as the binary does on SIGTERM).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.expect("the server task");
        }
    }
}

// ----- the real binary -----

/// The admin token `start_binary` passes unless the caller passes its own flags.
pub const BINARY_TOKEN: &str = "binary-test-token";

/// A running `emporium serve` child process on a free loopback port.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
    pub log: std::path::PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary on `dir` with `extra` flags (plus `--admin-token` unless `extra` sets
/// `--no-token`, which is consumed here) and waits for `/ready`. Its log goes to
/// `dir/../<port>.log`.
pub async fn start_binary(dir: &std::path::Path, extra: &[&str]) -> Server {
    let port = free_port();
    let log = dir.with_extension(format!("{port}.log"));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir);
    // `--demo` and `--no-token` are ours, consumed here: tests start without the demo
    // catalog and with a known token unless they ask otherwise.
    if !extra.contains(&"--demo") {
        cmd.arg("--no-demo");
    }
    if !extra.contains(&"--no-token") {
        cmd.args(["--admin-token", BINARY_TOKEN]);
    }
    cmd.args(
        extra
            .iter()
            .filter(|a| **a != "--no-token" && **a != "--demo"),
    );
    let mut child = cmd
        // The access log (one line per request) is at `debug`; the tests read it.
        .env("RUST_LOG", "info,emporium::http=debug")
        .env_remove("EMPORIUM_ADMIN_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start emporium");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..500 {
        let ready = client
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            return Server { child, base, log };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "server did not become ready: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

impl Server {
    /// Creates a product with `on_hand` units through the admin API (with `token`).
    pub async fn stock_product(
        &self,
        token: &str,
        sku: &str,
        name: &str,
        price: i64,
        on_hand: i64,
    ) {
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/api/v1/admin/products", self.base))
            .bearer_auth(token)
            .json(&json!({"sku": sku, "name": name, "price": price}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = client
            .put(format!("{}/api/v1/admin/inventory/{sku}", self.base))
            .bearer_auth(token)
            .json(&json!({"on_hand": on_hand}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// `GET path` (e.g. `/api/v1/orders/{id}`) on this server, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A new cart holding `quantity` of `sku`; its id.
    pub async fn cart_with(&self, sku: &str, quantity: i64) -> String {
        let client = reqwest::Client::new();
        let cart: Value = client
            .post(format!("{}/api/v1/carts", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cart = cart["id"].as_str().unwrap().to_owned();
        let r = client
            .post(format!("{}/api/v1/carts/{cart}/items", self.base))
            .json(&json!({"sku": sku, "quantity": quantity}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        cart
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }
}

//! `GET /metrics`: Prometheus text, parsed strictly (names, labels, values, TYPE lines,
//! histogram buckets), with the series an operator needs present after some traffic.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use crate::checkout::{cart_with, checkout, checkout_body};
use crate::helpers::*;

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);
/// A histogram's buckets (upper bound, cumulative count) by its other labels.
type Buckets = BTreeMap<Vec<(String, String)>, Vec<(f64, f64)>>;

fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// Parses the text exposition format (version 0.0.4), refusing anything malformed.
fn parse(text: &str) -> Result<(Vec<Sample>, HashMap<String, String>), String> {
    let mut samples = Vec::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(t)) => {
                    if !valid_name(name, true) {
                        return Err(format!("bad name in {line:?}"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(format!("bad type in {line:?}"));
                    }
                    if types.insert(name.to_owned(), t.to_owned()).is_some() {
                        return Err(format!("TYPE twice for {name}"));
                    }
                }
                (Some("HELP"), Some(name), _) if valid_name(name, true) => {}
                _ => return Err(format!("bad comment line {line:?}")),
            }
            continue;
        }
        let (name_labels, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value in {line:?}"))?;
        let value = parse_value(value)?;
        let (name, labels) = match name_labels.split_once('{') {
            None => (name_labels, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unclosed labels in {line:?}"))?;
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest
                        .split_once("=\"")
                        .ok_or_else(|| format!("bad label in {line:?}"))?;
                    if !valid_name(key, false) {
                        return Err(format!("bad label name {key:?}"));
                    }
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next() {
                            Some((_, '\\')) => match chars.next() {
                                Some((_, 'n')) => value.push('\n'),
                                Some((_, c @ ('\\' | '"'))) => value.push(c),
                                _ => return Err(format!("bad escape in {line:?}")),
                            },
                            Some((i, '"')) => break i,
                            Some((_, c)) => value.push(c),
                            None => return Err(format!("unterminated label in {line:?}")),
                        }
                    };
                    labels.insert(key.to_owned(), value);
                    rest = &after[end + 1..];
                    rest = rest.strip_prefix(',').unwrap_or(rest);
                }
                (name, labels)
            }
        };
        if !valid_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|f| {
                    types
                        .get(*f)
                        .is_some_and(|t| t == "histogram" || t == "summary")
                })
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(format!("sample {name} before its TYPE"));
        }
        samples.push((name.to_owned(), labels, value));
    }
    // Histograms: cumulative buckets ending in +Inf, which equals the count.
    for (family, t) in &types {
        if t != "histogram" {
            continue;
        }
        let mut series: Buckets = BTreeMap::new();
        for (name, labels, v) in &samples {
            if name == &format!("{family}_bucket") {
                let le = parse_value(labels.get("le").ok_or("bucket without le")?)?;
                let key: Vec<_> = labels
                    .iter()
                    .filter(|(k, _)| *k != "le")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                series.entry(key).or_default().push((le, *v));
            }
        }
        for (key, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !buckets.windows(2).all(|w| w[0].1 <= w[1].1) {
                return Err(format!("{family}{key:?}: buckets not cumulative"));
            }
            let last = buckets.last().ok_or("no buckets")?;
            if last.0 != f64::INFINITY {
                return Err(format!("{family}{key:?}: no +Inf bucket"));
            }
            let count = samples
                .iter()
                .find(|(n, l, _)| {
                    n == &format!("{family}_count")
                        && key.iter().all(|(k, v)| l.get(k) == Some(v))
                        && l.len() == key.len()
                })
                .ok_or_else(|| format!("{family}{key:?}: no _count"))?;
            if count.2 != last.1 {
                return Err(format!("{family}{key:?}: +Inf bucket != count"));
            }
        }
    }
    Ok((samples, types))
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .reduce(|a, b| a + b)
}

#[test]
fn the_parser_refuses_malformed_text() {
    assert!(parse("# TYPE a counter\na 1\n").is_ok());
    assert!(parse("a 1\n").is_err(), "sample before TYPE");
    assert!(parse("# TYPE a counter\na{b=\"x} 1\n").is_err());
    assert!(parse("# TYPE a counter\na one\n").is_err());
    assert!(parse("# TYPE 1a counter\n").is_err());
    assert!(
        parse("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n")
            .is_err(),
        "buckets must be cumulative"
    );
}

/// Scrapes `/metrics` and parses it strictly.
async fn scrape(app: &TestApp) -> (Vec<Sample>, HashMap<String, String>) {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_prometheus_text_with_the_operators_series() {
    let app = spawn_app().await;
    // The recorder is process-wide and other tests run beside this one, so every check
    // is on how much a series grew across this test's own traffic: at least what it did.
    let (before, _) = scrape(&app).await;
    app.create_product("MET-1", 500, 1).await;
    let cart = cart_with(&app, &[("MET-1", 1)]).await;
    let r = checkout(&app, &cart, Some("a"), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 201);
    let cart = cart_with(&app, &[("MET-1", 1)]).await;
    let r = checkout(&app, &cart, Some("b"), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 409, "{}", r.text);
    let _ = app.get("/api/v1/products?q=product").await;
    let _ = app.post_json("/api/v1/carts/nope/items", json!({})).await;
    // Every event so far reaches the notifier before the second scrape.
    let end = app.engine.event_log_end().unwrap();
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            app.engine.subscriber_offset("notifier") >= end
        })
        .await
    );

    let (samples, types) = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or(0.0) - value(&before, name, labels).unwrap_or(0.0)
    };
    assert_eq!(types["emporium_http_requests_total"], "counter");
    assert_eq!(types["emporium_http_request_duration_seconds"], "histogram");
    let carts = [
        ("route", "/api/v1/carts"),
        ("status", "201"),
        ("method", "POST"),
    ];
    assert!(grew("emporium_http_requests_total", &carts) >= 2.0);
    let refused = [("route", "/api/v1/carts/{id}/checkout"), ("status", "409")];
    assert!(grew("emporium_http_requests_total", &refused) >= 1.0);
    let timed = [("route", "/api/v1/carts/{id}/checkout")];
    assert!(grew("emporium_http_request_duration_seconds_count", &timed) >= 2.0);
    assert!(grew("emporium_checkouts_total", &[("outcome", "paid")]) >= 1.0);
    assert!(grew("emporium_checkouts_total", &[("outcome", "out_of_stock")]) >= 1.0);
    assert!(grew("emporium_reservations_total", &[("result", "ok")]) >= 1.0);
    assert!(grew("emporium_reservations_total", &[("result", "refused")]) >= 1.0);
    assert!(grew("emporium_search_duration_seconds_count", &[]) >= 1.0);
    assert!(grew("emporium_barrier_batch_size_count", &[]) >= 1.0);
    assert!(grew("emporium_barrier_flush_seconds_count", &[]) >= 1.0);
    // Gauges read from this engine at scrape time (shared series: the last scraped
    // engine's values, so only their presence and sense are checked).
    assert!(
        value(&samples, "emporium_actors_resident", &[("kind", "cart")]).is_some_and(|v| v >= 0.0)
    );
    // Two checkouts, two order actors.
    let orders = value(&samples, "emporium_actors_activated", &[("kind", "order")]);
    assert!(orders.is_some_and(|v| v >= 2.0), "{orders:?}");
    assert!(
        value(
            &samples,
            "emporium_subscriber_lag_events",
            &[("subscriber", "notifier")]
        )
        .is_some()
    );
    // The order's events (stock, paid, placed) were delivered to the notifier.
    let delivered = [("subscriber", "notifier")];
    assert!(
        grew("emporium_events_delivered_total", &delivered) >= 3.0,
        "{}",
        grew("emporium_events_delivered_total", &delivered)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_closes_the_endpoint_to_everyone_without_it() {
    let app = spawn_app_with(|o| o.metrics_token = Some("m-secret".into())).await;
    let get = |token: Option<&str>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        app.send(req)
    };
    let none = get(None).await;
    assert_eq!((none.status, none.code()), (401, "unauthorized"));
    let wrong = get(Some("nope")).await;
    assert_eq!((wrong.status, wrong.code()), (403, "forbidden"));
    let admin = get(Some(ADMIN_TOKEN)).await;
    assert_eq!(
        admin.status, 403,
        "the admin token is not the metrics token"
    );
    let ok = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("m-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("# TYPE"));
    assert_eq!(app.get("/health").await.status, 200, "health stays open");
    app.stop().await;
}

/// Installs Prometheus (server and `promtool`) from Debian's packages if missing.
fn ensure_prometheus() {
    let has = |bin: &str| {
        std::process::Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(has("prometheus") && has("promtool")) {
        let _ = std::process::Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "prometheus"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
    }
    assert!(
        has("prometheus") && has("promtool"),
        "this test needs Prometheus (apt-get install prometheus)"
    );
}

#[tokio::test]
async fn a_real_prometheus_accepts_and_scrapes_the_endpoint() {
    ensure_prometheus();
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary(&dir.path().join("data"), &["--demo"]).await;
    let client = reqwest::Client::new();
    for path in ["/api/v1/products?q=helmet", "/api/v1/categories", "/nope"] {
        client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
    }
    client
        .post(format!("{}/api/v1/carts", server.base))
        .send()
        .await
        .unwrap();
    let text = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Prometheus' own linter.
    let mut lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        lint.stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus scrapes it every second; its query API sees our series.
    let target = server.base.trim_start_matches("http://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: emporium\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut prometheus = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    let query = |q: &'static str| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            v["data"]["result"].as_array().cloned()
        }
    };
    let scraped = eventually(std::time::Duration::from_secs(60), || async {
        let up = query("up{job=\"emporium\"}").await;
        let up_ok = up.is_some_and(|r| r.iter().any(|s| s["value"][1] == "1"));
        let requests = query("emporium_http_requests_total{route=\"/api/v1/carts\"}").await;
        up_ok && requests.is_some_and(|r| !r.is_empty())
    })
    .await;
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert!(scraped, "Prometheus did not scrape the series");
    assert!(server.terminate().success());
}

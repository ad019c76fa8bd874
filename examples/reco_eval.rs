//! Offline evaluation of recommendations on the UCI Online Retail history.
//!
//! Learn from the invoices before the split date; for every later basket with at least two
//! items, hide one item, ask for recommendations for another, and count a hit if the hidden
//! one is in the top 10 (hit-rate@10). Compared: popularity (the 10 best sellers), plain
//! co-occurrence counts, and our scoring (`recommend::stats`), plus variants with `--grid`.
//!
//! Run: `cargo run --release --example reco_eval [-- --grid] [-- --explore] [-- --split 2011-07-01]`
//! (`--explore`: where the hidden items rank, and a blend with name similarity)

use emporium::domain::history::{PastOrder, parse_time, read_uci};
use emporium::recommend::stats::{CoStats, Scoring};

const FILE: &str = "../shared/data/uci-online-retail/online_retail_until_2011-09.csv";

fn learn(train: &[&PastOrder], scoring: &Scoring) -> CoStats {
    let mut s = CoStats::default();
    for o in train {
        let items: Vec<&str> = o.items.iter().map(|i| i.sku.as_str()).collect();
        s.learn(
            &items,
            CoStats::basket_weight(scoring, items.len(), o.created_at),
        );
    }
    s
}

/// (query, hidden) for each test basket, chosen deterministically.
fn cases(test: &[&PastOrder]) -> Vec<(String, String)> {
    test.iter()
        .filter(|o| o.items.len() >= 2)
        .map(|o| {
            let mut items: Vec<&str> = o.items.iter().map(|i| i.sku.as_str()).collect();
            items.sort_unstable();
            let h =
                o.id.bytes()
                    .fold(0u64, |a, b| a.wrapping_mul(131).wrapping_add(u64::from(b)));
            let n = items.len() as u64;
            let hidden = items[(h % n) as usize];
            let query = items[((h / n) % n) as usize];
            let query = if query == hidden {
                items[((h % n + 1) % n) as usize]
            } else {
                query
            };
            (query.to_owned(), hidden.to_owned())
        })
        .collect()
}

fn hit_rate(cases: &[(String, String)], recs: impl Fn(&str) -> Vec<String>) -> f64 {
    let hits = cases
        .iter()
        .filter(|(q, h)| recs(q).iter().take(10).any(|r| r == h))
        .count();
    hits as f64 / cases.len() as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let grid = args.iter().any(|a| a == "--grid");
    let split = args
        .iter()
        .position(|a| a == "--split")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "2011-07-01".into());
    let split_ms =
        parse_time(&serde_json::Value::String(format!("{split} 00:00:00"))).expect("split date");
    let started = std::time::Instant::now();
    let history = read_uci(std::fs::File::open(FILE).expect("UCI file")).expect("UCI csv");
    let (train, test): (Vec<&PastOrder>, Vec<&PastOrder>) =
        history.orders.iter().partition(|o| o.created_at < split_ms);
    let cases = cases(&test);
    println!(
        "{} orders ({} dropped rows) read in {:.2} s; train {} before {split}, test {} baskets → {} cases",
        history.orders.len(),
        history.dropped_rows,
        started.elapsed().as_secs_f64(),
        train.len(),
        test.len(),
        cases.len()
    );

    let plain = Scoring {
        beta: 0.0,
        min_support: 1,
        half_life_days: f64::INFINITY,
        size_weighting: false,
        size_exponent: 0.0,
    };
    let started = std::time::Instant::now();
    let counts = learn(&train, &plain);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "learning: {} baskets in {:.2} s ({:.0} orders/s), {} items",
        counts.baskets(),
        secs,
        counts.baskets() as f64 / secs,
        counts.len()
    );
    let popular: Vec<String> = counts
        .popular(11)
        .into_iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let pop = hit_rate(&cases, |q| {
        popular.iter().filter(|p| *p != q).cloned().collect()
    });
    let co = hit_rate(&cases, |q| {
        counts
            .related(q, &plain, 10)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect()
    });
    let ours_scoring = Scoring::default();
    let ours_model = learn(&train, &ours_scoring);
    let ours = hit_rate(&cases, |q| {
        ours_model
            .related(q, &ours_scoring, 10)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect()
    });
    println!(
        "hit-rate@10: popularity {pop:.4}, co-occurrence counts {co:.4}, ours {ours:.4} ({:.2}× popularity, {:+.1} % vs co-occurrence)",
        ours / pop,
        (ours / co - 1.0) * 100.0
    );

    if args.iter().any(|a| a == "--explore") {
        content(&train, &cases, &history.names);
        diagnose(&train, &cases);
    }

    if grid {
        for half_life in [f64::INFINITY, 60.0, 120.0, 240.0] {
            for size in [-1.0f64, 0.0, 0.5, 1.0] {
                let base = Scoring {
                    half_life_days: half_life,
                    size_weighting: size >= 0.0,
                    size_exponent: size.max(0.0),
                    ..plain
                };
                let model = learn(&train, &base);
                for beta in [0.0, 0.15, 0.25, 0.35, 0.5] {
                    for min_support in [1, 2] {
                        let s = Scoring {
                            beta,
                            min_support,
                            ..base
                        };
                        let h = hit_rate(&cases, |q| {
                            model
                                .related(q, &s, 10)
                                .into_iter()
                                .map(|(n, _)| n.to_string())
                                .collect()
                        });
                        println!(
                            "half_life {half_life:>4} size {size:>4} beta {beta:.2} min_support {min_support}: {h:.4}"
                        );
                    }
                }
            }
        }
    }
}

/// Name similarity: IDF-weighted cosine over name words.
struct Names {
    vecs: std::collections::HashMap<String, Vec<(String, f64)>>,
    postings: std::collections::HashMap<String, Vec<String>>,
}

impl Names {
    fn new(names: &std::collections::HashMap<String, String>, known: &CoStats) -> Self {
        let words = |n: &str| -> Vec<String> {
            let mut w: Vec<String> = n
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 1)
                .map(|w| w.to_lowercase())
                .collect();
            w.sort();
            w.dedup();
            w
        };
        let mut df: std::collections::HashMap<String, f64> = Default::default();
        let items: Vec<(&String, Vec<String>)> = names
            .iter()
            .filter(|(k, _)| known.count(k) > 0)
            .map(|(k, n)| (k, words(n)))
            .collect();
        for (_, ws) in &items {
            for w in ws {
                *df.entry(w.clone()).or_default() += 1.0;
            }
        }
        let n = items.len() as f64;
        let mut vecs = std::collections::HashMap::new();
        let mut postings: std::collections::HashMap<String, Vec<String>> = Default::default();
        for (k, ws) in items {
            let mut v: Vec<(String, f64)> =
                ws.iter().map(|w| (w.clone(), (n / df[w]).ln())).collect();
            let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt().max(1e-9);
            for (_, x) in &mut v {
                *x /= norm;
            }
            for w in &ws {
                postings.entry(w.clone()).or_default().push(k.clone());
            }
            vecs.insert(k.clone(), v);
        }
        Names { vecs, postings }
    }

    fn similar(&self, item: &str) -> std::collections::HashMap<String, f64> {
        let mut out: std::collections::HashMap<String, f64> = Default::default();
        let Some(v) = self.vecs.get(item) else {
            return out;
        };
        for (w, x) in v {
            for other in &self.postings[w] {
                if other == item {
                    continue;
                }
                let y = self.vecs[other]
                    .iter()
                    .find(|(ow, _)| ow == w)
                    .map_or(0.0, |p| p.1);
                *out.entry(other.clone()).or_default() += x * y;
            }
        }
        out
    }
}

fn content(
    train: &[&PastOrder],
    cases: &[(String, String)],
    names: &std::collections::HashMap<String, String>,
) {
    let scoring = Scoring::default();
    let model = learn(train, &scoring);
    let sim = Names::new(names, &model);
    let only = hit_rate(cases, |q| {
        let mut v: Vec<(String, f64)> = sim.similar(q).into_iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.into_iter().take(10).map(|(k, _)| k).collect()
    });
    println!("names only: {only:.4}");
    for lambda in [0.05, 0.1, 0.2, 0.3, 0.5, 1.0] {
        for pow in [1.0, 2.0] {
            let h = hit_rate(cases, |q| {
                let co = model.related(q, &scoring, 200);
                let top = co.first().map_or(1.0, |x| x.1).max(1e-12);
                let mut all: std::collections::HashMap<String, f64> = co
                    .into_iter()
                    .map(|(k, s)| (k.to_string(), s / top))
                    .collect();
                for (k, s) in sim.similar(q) {
                    *all.entry(k).or_default() += lambda * f64::powf(s, pow);
                }
                let mut v: Vec<(String, f64)> = all.into_iter().collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                v.into_iter().take(10).map(|(k, _)| k).collect()
            });
            println!("co + {lambda} x names^{pow}: {h:.4}");
        }
    }
}

fn diagnose(train: &[&PastOrder], cases: &[(String, String)]) {
    let scoring = Scoring::default();
    let model = learn(train, &scoring);
    let loose = Scoring {
        min_support: 1,
        ..scoring
    };
    let (mut cold_q, mut cold_h, mut no_pair) = (0, 0, 0);
    let mut ranks = [0usize; 6]; // <=10, <=20, <=50, <=100, <=500, more
    for (q, h) in cases {
        if model.count(q) == 0 {
            cold_q += 1;
            continue;
        }
        if model.count(h) == 0 {
            cold_h += 1;
            continue;
        }
        let all = model.related(q, &loose, 100_000);
        match all.iter().position(|(k, _)| &**k == h.as_str()) {
            None => no_pair += 1,
            Some(r) => {
                let b = [10, 20, 50, 100, 500]
                    .iter()
                    .position(|&x| r < x)
                    .unwrap_or(5);
                ranks[b] += 1;
            }
        }
    }
    println!(
        "cases {}: query unseen {cold_q}, hidden unseen {cold_h}, never together {no_pair}, rank buckets <=10/20/50/100/500/more {ranks:?}",
        cases.len()
    );
}

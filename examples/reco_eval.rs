//! Offline evaluation of recommendations on the UCI Online Retail history.
//!
//! Learn from the invoices before the split date; for every later basket with at least two
//! items, hide one item, ask for recommendations for another, and count a hit if the hidden
//! one is in the top 10 (hit-rate@10). Compared: popularity (the 10 best sellers), plain
//! co-occurrence counts, and ours — the engine's `Recommender` with every product's name
//! (as a catalog would have them) and the training orders, its free slots filled with best
//! sellers as the engine serves it.
//!
//! That single split is *in sample*: the defaults were once chosen on it. What every change
//! is judged by comes after it, **rolling time splits** — each month from April to
//! September 2011 is a test period learned from everything before it (September, the last
//! month we have, plays the "new season") — scored two ways: the defaults as they stand,
//! and *tuned out of sample*: for each month, the point of a grid (half-life, nearness,
//! the shopper's own-products weight, minimum support, name shrinkage) that scored best
//! on the months before it, scored on the month. The mean over May–September of the
//! latter is the estimate for data we have not seen. The rolling splits know each test
//! basket's shopper (the UCI `CustomerID`) and what they bought before the month, as the
//! engine knows a signed-in customer's orders; the same procedure restricted to grid
//! points that ignore the shopper gives the figure for a guest. They draw up to five
//! (query, hidden) pairs from each test basket (`--cases-per-basket K`; the single split
//! keeps one): the same estimate with less noise, so the grid's choices depend less on
//! luck.
//!
//! Run: `cargo run --release --example reco_eval [-- --folds] [-- --grid] [-- --explore] [-- --split 2011-07-01] [-- --cases-per-basket 5]`
//! (`--folds`: every grid point's score per month; `--explore`: names alone, nearness and
//! name weight varied, where the hidden items rank; `--grid`: the co-occurrence weighting
//! varied on the single split)

use emporium::domain::history::{PastOrder, parse_time, read_uci};
use emporium::recommend::Recommender;
use emporium::recommend::names::NameIndex;
use emporium::recommend::stats::{CoStats, Scoring};

const FILE: &str = "../shared/data/uci-online-retail/online_retail_until_2011-09.csv";

fn learn(train: &[&PastOrder], scoring: &Scoring) -> CoStats {
    let mut s = CoStats::default();
    for o in train {
        let items: Vec<&str> = o.items.iter().map(|i| i.sku.as_str()).collect();
        s.learn(
            &items,
            CoStats::basket_weight(scoring, items.len(), o.created_at),
            scoring,
        );
    }
    s
}

/// Up to `per_basket` distinct (query, hidden) pairs for each test basket, chosen
/// deterministically; the first is the one a single case per basket has always used.
/// More pairs per basket estimate the same thing (a random query and a random hidden
/// item of a random basket) with less noise.
fn cases(test: &[&PastOrder], per_basket: u64) -> Vec<(String, String)> {
    cases_of(test, per_basket)
        .into_iter()
        .map(|(q, h, _)| (q, h))
        .collect()
}

/// [`cases`], each with the id of the order it came from.
fn cases_of(test: &[&PastOrder], per_basket: u64) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for o in test.iter().filter(|o| o.items.len() >= 2) {
        let mut items: Vec<&str> = o.items.iter().map(|i| i.sku.as_str()).collect();
        items.sort_unstable();
        let n = items.len() as u64;
        let first = out.len();
        for j in 0..per_basket {
            let h =
                o.id.bytes()
                    .fold(j, |a, b| a.wrapping_mul(131).wrapping_add(u64::from(b)));
            // Later pairs: the same hash salted by `j` and mixed, so they spread.
            let h = if j == 0 {
                h
            } else {
                h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11
            };
            let hidden = items[(h % n) as usize];
            let query = items[((h / n) % n) as usize];
            let query = if query == hidden {
                items[((h % n + 1) % n) as usize]
            } else {
                query
            };
            let case = (query.to_owned(), hidden.to_owned(), o.id.clone());
            if !out[first..].contains(&case) {
                out.push(case);
            }
        }
    }
    out
}

fn hit_rate(cases: &[(String, String)], recs: impl Fn(&str) -> Vec<String>) -> f64 {
    hit_rate_of(cases, |_, q| recs(q))
}

/// [`hit_rate`] with the case's index passed too (to look up who the basket's shopper was).
fn hit_rate_of(cases: &[(String, String)], recs: impl Fn(usize, &str) -> Vec<String>) -> f64 {
    let hits = cases
        .iter()
        .enumerate()
        .filter(|(i, (q, h))| recs(*i, q).iter().take(10).any(|r| r == h))
        .count();
    hits as f64 / cases.len() as f64
}

/// The UCI customer of each order id (`uci-<invoice>`), for orders that name one.
fn customers() -> std::collections::HashMap<String, String> {
    let mut rdr = csv::Reader::from_reader(std::fs::File::open(FILE).expect("UCI file"));
    let mut out = std::collections::HashMap::new();
    for row in rdr.records() {
        let row = row.expect("UCI csv");
        if let (Some(invoice), Some(customer)) = (row.get(0), row.get(6))
            && !customer.trim().is_empty()
        {
            out.insert(
                format!("uci-{}", invoice.trim()),
                customer.trim().to_owned(),
            );
        }
    }
    out
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
    if args.iter().any(|a| a == "--cart") {
        baskets(&history);
        return;
    }
    let (train, test): (Vec<&PastOrder>, Vec<&PastOrder>) =
        history.orders.iter().partition(|o| o.created_at < split_ms);
    let cases = cases(&test, 1);
    println!(
        "{} orders ({} dropped rows) read in {:.2} s; train {} before {split}, test {} baskets → {} cases",
        history.orders.len(),
        history.dropped_rows,
        started.elapsed().as_secs_f64(),
        train.len(),
        test.len(),
        cases.len()
    );

    let plain = Scoring::plain();
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
    let pop = hit_rate(&cases, |q| filled(Vec::new(), q, &popular));
    // Best sellers by units sold, the other common reading of "popularity".
    let by_units = best_sellers(&train, 11, true);
    let pop_units = hit_rate(&cases, |q| filled(Vec::new(), q, &by_units));
    // The engine fills slots its related products leave free with best sellers (of the
    // product's category, then overall; the UCI products have no category), so "ours as
    // served" is filled; plain co-occurrence is shown both as is and filled the same way.
    let fill = |v: Vec<String>, q: &str| filled(v, q, &popular);
    let co_list = |q: &str| -> Vec<String> {
        counts
            .related(q, &plain, 10)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect()
    };
    let co = hit_rate(&cases, co_list);
    let co_filled = hit_rate(&cases, |q| fill(co_list(q), q));
    let (_dir, rec) = recommender(&train, &history.names, Scoring::default());
    let ours_list =
        |q: &str| -> Vec<String> { rec.related(q, 10).into_iter().map(|(s, _)| s).collect() };
    let related = hit_rate(&cases, ours_list);
    let ours = hit_rate(&cases, |q| fill(ours_list(q), q));
    println!(
        "hit-rate@10: popularity {pop:.4} (by units sold {pop_units:.4}), co-occurrence counts {co:.4} (filled {co_filled:.4}), ours as served {ours:.4} (related only {related:.4})"
    );
    println!(
        "ours: {:.2}× popularity ({:.2}× by units), {:+.1} % vs co-occurrence counts, {:+.1} % vs co-occurrence filled; related only {:+.1} % vs co-occurrence counts",
        ours / pop,
        ours / pop_units,
        (ours / co - 1.0) * 100.0,
        (ours / co_filled - 1.0) * 100.0,
        (related / co - 1.0) * 100.0
    );

    let per_basket = args
        .iter()
        .position(|a| a == "--cases-per-basket")
        .and_then(|i| args.get(i + 1))
        .map_or(5, |k| k.parse().expect("--cases-per-basket: a count"));
    rolling(&history, per_basket, args.iter().any(|a| a == "--folds"));

    if args.iter().any(|a| a == "--explore") {
        explore(&train, &cases, &history.names);
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

/// Our recommender as the engine runs it: every product's name, the training orders.
fn recommender(
    train: &[&PastOrder],
    names: &std::collections::HashMap<String, String>,
    scoring: Scoring,
) -> (tempfile::TempDir, Recommender) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rec = Recommender::open(dir.path(), scoring).expect("recommender");
    for (sku, name) in names {
        rec.set_name(sku, Some(name));
    }
    for o in train {
        let items: Vec<&str> = o.items.iter().map(|i| i.sku.as_str()).collect();
        rec.learn_order(&items, o.created_at);
    }
    (dir, rec)
}

/// How much each part of the scoring adds: names alone, then nearness and name weight.
fn explore(
    train: &[&PastOrder],
    cases: &[(String, String)],
    names: &std::collections::HashMap<String, String>,
) {
    let mut ix = NameIndex::default();
    for (sku, name) in names {
        ix.set(sku, Some(name));
    }
    let only = hit_rate(cases, |q| {
        ix.similar(q, 10)
            .into_iter()
            .map(|(s, _)| s.to_string())
            .collect()
    });
    println!("names only: {only:.4}");
    for near_boost in [0.0, 2.0, 4.0, 8.0] {
        for name_weight in [0.0, 0.1, 0.15, 0.2, 0.3] {
            let scoring = Scoring {
                near_boost,
                name_weight,
                ..Scoring::default()
            };
            let (_dir, rec) = recommender(train, names, scoring);
            let h = hit_rate(cases, |q| {
                rec.related(q, 10).into_iter().map(|(s, _)| s).collect()
            });
            println!("near_boost {near_boost} name_weight {name_weight}: {h:.4}");
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

/// Milliseconds at the start of a month.
fn month_start(year: i32, month: u32) -> i64 {
    parse_time(&serde_json::Value::String(format!(
        "{year}-{month:02}-01 00:00:00"
    )))
    .expect("month")
}

/// A rolling split of 2011: the orders before month `m` (to learn from) and those in it
/// (to test on).
type Split<'a> = (Vec<&'a PastOrder>, Vec<&'a PastOrder>);

fn month_split(history: &emporium::domain::history::UciHistory, m: u32) -> Split<'_> {
    let (start, end) = (month_start(2011, m), month_start(2011, m + 1));
    let before = |o: &&PastOrder| o.created_at < start;
    let during = |o: &&PastOrder| o.created_at >= start && o.created_at < end;
    (
        history.orders.iter().filter(before).collect(),
        history.orders.iter().filter(during).collect(),
    )
}

/// One rolling fold: learn from everything before a month, test on that month.
struct Fold<'a> {
    label: String,
    train: Vec<&'a PastOrder>,
    cases: Vec<(String, String)>,
    /// For each case, the products its basket's shopper bought before the month and in
    /// how many orders (`None`: no earlier order of theirs, or no customer named).
    own: Vec<Option<std::rc::Rc<std::collections::HashMap<String, u32>>>>,
    /// Best sellers by orders over all of training (what the engine fills with).
    popular: Vec<String>,
    /// Best sellers by units sold.
    by_units: Vec<String>,
}

/// The `n` best sellers among `orders` — by orders, or by units sold — most first.
fn best_sellers(orders: &[&PastOrder], n: usize, units: bool) -> Vec<String> {
    let mut counts: std::collections::HashMap<&str, u64> = Default::default();
    for o in orders {
        for i in &o.items {
            *counts.entry(i.sku.as_str()).or_default() +=
                if units { u64::from(i.quantity) } else { 1 };
        }
    }
    let mut v: Vec<(&str, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().take(n).map(|(s, _)| s.to_owned()).collect()
}

fn folds(history: &emporium::domain::history::UciHistory, per_basket: u64) -> Vec<Fold<'_>> {
    use std::collections::HashMap;
    use std::rc::Rc;
    let customer = customers();
    // Test months April–September 2011 (the last month we have is the "new season"
    // test); each learns from everything before it.
    (4..=9)
        .map(|m| {
            let (train, test) = month_split(history, m);
            let mut bought: HashMap<&str, HashMap<String, u32>> = HashMap::new();
            for o in &train {
                if let Some(c) = customer.get(&o.id) {
                    let mine = bought.entry(c.as_str()).or_default();
                    for i in &o.items {
                        *mine.entry(i.sku.as_str().to_owned()).or_default() += 1;
                    }
                }
            }
            let bought: HashMap<&str, Rc<HashMap<String, u32>>> =
                bought.into_iter().map(|(c, m)| (c, Rc::new(m))).collect();
            let all = cases_of(&test, per_basket);
            let own = all
                .iter()
                .map(|(_, _, id)| {
                    customer
                        .get(id)
                        .and_then(|c| bought.get(c.as_str()))
                        .cloned()
                })
                .collect();
            Fold {
                label: format!("2011-{m:02}"),
                cases: all.into_iter().map(|(q, h, _)| (q, h)).collect(),
                own,
                popular: best_sellers(&train, 60, false),
                by_units: best_sellers(&train, 11, true),
                train,
            }
        })
        .collect()
}

/// Fills free slots from `best` (never the query, never twice).
fn filled(mut v: Vec<String>, q: &str, best: &[String]) -> Vec<String> {
    for p in best {
        if v.len() >= 10 {
            break;
        }
        if p != q && !v.contains(p) {
            v.push(p.clone());
        }
    }
    v
}

/// Rolling time splits: every test month lies after its training. The defaults are
/// scored on each; "tuned out of sample" picks, for each month, the grid point that
/// scored best on the months before it and reports its score on the month.
fn rolling(history: &emporium::domain::history::UciHistory, per_basket: u64, per_fold: bool) {
    let started = std::time::Instant::now();
    let folds = folds(history, per_basket);
    let plain = Scoring::plain();
    let d = Scoring::default();
    // Learning knobs (each needs its own model) × ranking knobs × fill.
    let mut learn_grid: Vec<Scoring> = Vec::new();
    for half_life_days in [60.0, 120.0, 240.0] {
        for near_boost in [0.0, 4.0] {
            learn_grid.push(Scoring {
                half_life_days,
                near_boost,
                ..d
            });
        }
    }
    let mut labels: Vec<String> = Vec::new();
    // The own-products weight of each grid point.
    let mut own_of: Vec<f64> = Vec::new();
    // scores[config][fold]
    let mut scores: Vec<Vec<f64>> = Vec::new();
    let mut baselines: Vec<[f64; 4]> = Vec::new(); // popularity, by units, co, co filled
    let mut default_at = usize::MAX;
    for (fi, fold) in folds.iter().enumerate() {
        let counts = learn(&fold.train, &plain);
        let co = |q: &str| -> Vec<String> {
            counts
                .related(q, &plain, 10)
                .into_iter()
                .map(|(n, _)| n.to_string())
                .collect()
        };
        let pop = hit_rate(&fold.cases, |q| filled(Vec::new(), q, &fold.popular));
        let units = hit_rate(&fold.cases, |q| filled(Vec::new(), q, &fold.by_units));
        baselines.push([
            pop,
            units,
            hit_rate(&fold.cases, co),
            hit_rate(&fold.cases, |q| filled(co(q), q, &fold.popular)),
        ]);
        let mut c = 0;
        for learnt in &learn_grid {
            let (_dir, rec) = recommender(&fold.train, &history.names, *learnt);
            for own_weight in [0.0, 4.0, 16.0, 64.0] {
                for min_support in [1, 2] {
                    for name_shrink in [0.0, 10.0] {
                        let s = Scoring {
                            own_weight,
                            min_support,
                            name_shrink,
                            ..*learnt
                        };
                        let h = hit_rate_of(&fold.cases, |i, q| {
                            let related = rec
                                .related_for(q, 10, &s, fold.own[i].as_deref())
                                .into_iter()
                                .map(|(s, _)| s)
                                .collect();
                            filled(related, q, &fold.popular)
                        });
                        if fi == 0 {
                            labels.push(format!(
                                "half-life {} near boost {} own {own_weight} min support {min_support} name shrink {name_shrink}",
                                learnt.half_life_days, learnt.near_boost
                            ));
                            scores.push(Vec::new());
                            own_of.push(own_weight);
                            if s == d {
                                default_at = c;
                            }
                        }
                        scores[c].push(h);
                        c += 1;
                    }
                }
            }
        }
    }
    println!(
        "\nrolling splits (learn before the month, test on it; up to {per_basket} cases per basket; {:.0} s):",
        started.elapsed().as_secs_f64()
    );
    println!(
        "| test month | cases | popularity (units) | co-occurrence (filled) | ours, defaults | ours, tuned on earlier months | chosen |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut sums = [0.0f64; 7];
    let mut n = 0.0;
    for (fi, fold) in folds.iter().enumerate() {
        let [pop, units, co, cof] = baselines[fi];
        let def = scores[default_at][fi];
        // The grid point best on the months before this one, among `allowed` points.
        let best_before = |allowed: &dyn Fn(usize) -> bool| {
            (0..scores.len())
                .filter(|&c| allowed(c))
                .max_by(|&a, &b| {
                    let m = |c: usize| scores[c][..fi].iter().sum::<f64>();
                    m(a).total_cmp(&m(b)).then(b.cmp(&a))
                })
                .expect("a grid")
        };
        let chosen = (fi > 0).then(|| best_before(&|_| true));
        let tuned = chosen.map(|c| scores[c][fi]);
        // As a guest would be served: no shopper known, so no own-products weight.
        let guest = (fi > 0).then(|| scores[best_before(&|c| own_of[c] == 0.0)][fi]);
        println!(
            "| {} | {} | {pop:.4} ({units:.4}) | {co:.4} ({cof:.4}) | {def:.4} | {} | {} |",
            fold.label,
            fold.cases.len(),
            tuned.map_or("—".into(), |t| format!("{t:.4}")),
            chosen.map_or("—".into(), |c| labels[c].clone()),
        );
        if let (Some(t), Some(g)) = (tuned, guest) {
            for (s, x) in sums.iter_mut().zip([pop, units, co, cof, def, t, g]) {
                *s += x;
            }
            n += 1.0;
        }
    }
    let [pop, units, co, cof, def, tuned, guest] = sums.map(|s| s / n);
    println!(
        "mean over the {n} months tuned out of sample: popularity {pop:.4} (units {units:.4}), co-occurrence {co:.4} (filled {cof:.4}), defaults {def:.4}, tuned {tuned:.4}"
    );
    println!(
        "out of sample: tuned {:+.1} % vs co-occurrence ({:+.1} % vs filled), {:.2}× popularity ({:.2}× by units); defaults {:+.1} % vs co-occurrence",
        (tuned / co - 1.0) * 100.0,
        (tuned / cof - 1.0) * 100.0,
        tuned / pop,
        tuned / units,
        (def / co - 1.0) * 100.0
    );
    println!(
        "as a guest (no shopper known; the grid's own-products weight 0): tuned {guest:.4}, {:+.1} % vs co-occurrence, {:.2}× popularity ({:.2}× by units)",
        (guest / co - 1.0) * 100.0,
        guest / pop,
        guest / units
    );
    if per_fold {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| {
            let m = |c: usize| scores[c].iter().sum::<f64>();
            m(b).total_cmp(&m(a))
        });
        for c in order {
            let row: Vec<String> = scores[c].iter().map(|x| format!("{x:.4}")).collect();
            println!("{}  {}", row.join(" "), labels[c]);
        }
    }
}

/// Up to five (cart, hidden) cases for each test basket: its lines in the order they were
/// added, a line `k ≥ 1` chosen by hash as the one added next, and the lines before it as
/// the cart it was added to.
fn cart_cases(test: &[&PastOrder]) -> Vec<(Vec<String>, String)> {
    let mut out: Vec<(Vec<String>, String)> = Vec::new();
    for o in test {
        let mut lines: Vec<&str> = Vec::new();
        for i in &o.items {
            if !lines.contains(&i.sku.as_str()) {
                lines.push(i.sku.as_str());
            }
        }
        let n = lines.len() as u64;
        if n < 2 {
            continue;
        }
        let mut taken: Vec<u64> = Vec::new();
        for j in 0..5u64 {
            let h =
                o.id.bytes()
                    .fold(j, |a, b| a.wrapping_mul(131).wrapping_add(u64::from(b)))
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    >> 11;
            let k = 1 + h % (n - 1);
            if !taken.contains(&k) {
                taken.push(k);
                let cart = lines[..k as usize]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                out.push((cart, lines[k as usize].to_owned()));
            }
        }
    }
    out
}

/// Recommendations for a cart (`--cart`): rolling months as for one product, each case a
/// test basket's first lines as the cart and the line added next as the one to find.
/// Compared: best sellers, plain co-occurrence counts summed over the cart's latest items
/// (the same items ours looks at), ours for the cart's latest item alone, and ours for the
/// cart ([`Recommender::related_to_basket`]), its fusion tuned on the months before.
fn baskets(history: &emporium::domain::history::UciHistory) {
    use std::collections::HashMap;
    let started = std::time::Instant::now();
    let plain = Scoring::plain();
    let d = Scoring::default();
    let grid: Vec<Scoring> = [1.0, 10.0, 60.0]
        .into_iter()
        .flat_map(|basket_fusion| {
            [0.1, 0.25, 0.5, 1.0].map(|basket_decay| Scoring {
                basket_fusion,
                basket_decay,
                ..d
            })
        })
        .collect();
    let not_in = |v: Vec<String>, cart: &[String], best: &[String]| -> Vec<String> {
        let mut out: Vec<String> = v.into_iter().filter(|s| !cart.contains(s)).collect();
        for p in best {
            if out.len() >= 10 {
                break;
            }
            if !cart.contains(p) && !out.contains(p) {
                out.push(p.clone());
            }
        }
        out.truncate(10);
        out
    };
    let rate = |cases: &[(Vec<String>, String)], recs: &dyn Fn(&[String]) -> Vec<String>| {
        let hits = cases.iter().filter(|(c, h)| recs(c).contains(h)).count();
        hits as f64 / cases.len() as f64
    };
    println!(
        "| test month | cases | mean cart | popularity | co-occurrence: latest item (summed) | ours, latest item | ours, cart (defaults) | ours, cart (tuned on earlier months) | chosen |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut scores: Vec<Vec<f64>> = vec![Vec::new(); grid.len()];
    let mut sums = [0.0f64; 6];
    let mut months = 0.0;
    for m in 4..=9 {
        let (train, test) = month_split(history, m);
        let cases = cart_cases(&test);
        let popular = best_sellers(&train, 60, false);
        let counts = learn(&train, &plain);
        let pop = rate(&cases, &|c| not_in(Vec::new(), c, &popular));
        let co = rate(&cases, &|c| {
            let mut sum: HashMap<String, f64> = HashMap::new();
            for q in c.iter().rev().take(emporium::recommend::BASKET_CONTEXT) {
                for (s, x) in counts.related(q, &plain, usize::MAX) {
                    *sum.entry(s.to_string()).or_default() += x;
                }
            }
            let mut v: Vec<(String, f64)> = sum.into_iter().collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let v = v.into_iter().map(|(s, _)| s).filter(|s| !c.contains(s));
            v.take(10).collect()
        });
        let co_latest = rate(&cases, &|c| {
            let q = c.last().expect("a cart");
            let v = counts
                .related(q, &plain, 20)
                .into_iter()
                .map(|(s, _)| s.to_string());
            v.filter(|s| !c.contains(s)).take(10).collect()
        });
        let (_dir, rec) = recommender(&train, &history.names, d);
        let latest = rate(&cases, &|c| {
            let q = c.last().expect("a cart");
            let v = rec.related(q, 20).into_iter().map(|(s, _)| s).collect();
            not_in(v, c, &popular)
        });
        let mut default_at = 0;
        for (g, s) in grid.iter().enumerate() {
            let h = rate(&cases, &|c| {
                let cart: Vec<&str> = c.iter().map(String::as_str).collect();
                let v = rec
                    .related_to_basket(&cart, 10, s, None)
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect();
                not_in(v, c, &popular)
            });
            scores[g].push(h);
            if *s == d {
                default_at = g;
            }
        }
        let fi = scores[0].len() - 1;
        let chosen = (fi > 0).then(|| {
            (0..grid.len())
                .max_by(|&a, &b| {
                    let before = |g: usize| scores[g][..fi].iter().sum::<f64>();
                    before(a).total_cmp(&before(b)).then(b.cmp(&a))
                })
                .expect("a grid")
        });
        let def = scores[default_at][fi];
        let tuned = chosen.map(|g| scores[g][fi]);
        let mean_cart =
            cases.iter().map(|(c, _)| c.len()).sum::<usize>() as f64 / cases.len() as f64;
        println!(
            "| 2011-{m:02} | {} | {mean_cart:.1} | {pop:.4} | {co_latest:.4} ({co:.4}) | {latest:.4} | {def:.4} | {} | {} |",
            cases.len(),
            tuned.map_or("—".into(), |t| format!("{t:.4}")),
            chosen.map_or("—".into(), |g| format!(
                "fusion {} decay {}",
                grid[g].basket_fusion, grid[g].basket_decay
            )),
        );
        if let Some(t) = tuned {
            for (s, x) in sums.iter_mut().zip([pop, co, co_latest, latest, def, t]) {
                *s += x;
            }
            months += 1.0;
        }
    }
    let [pop, co, co_latest, latest, def, tuned] = sums.map(|s| s / months);
    println!(
        "mean over the {months} months tuned out of sample: popularity {pop:.4}, co-occurrence of the latest item {co_latest:.4} (summed over the cart {co:.4}), ours for the latest item {latest:.4}, ours for the cart: defaults {def:.4}, tuned {tuned:.4} ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    println!(
        "out of sample, a cart: tuned {:+.1} % vs co-occurrence of its latest item ({:+.1} % vs summed over the cart), {:.2}× popularity, {:+.1} % vs ours for its latest item alone; defaults {:+.1} % vs co-occurrence of the latest item",
        (tuned / co_latest - 1.0) * 100.0,
        (tuned / co - 1.0) * 100.0,
        tuned / pop,
        (tuned / latest - 1.0) * 100.0,
        (def / co_latest - 1.0) * 100.0
    );
}

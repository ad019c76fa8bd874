//! Co-occurrence statistics and association scores, learned one basket at a time.
//!
//! Every basket (an order's distinct items, or the products one session viewed) adds to
//! each item's count and to each pair's count. Besides the raw counts, which give the
//! textbook measures (support, confidence, lift — checked against the published Groceries
//! figures), each basket carries a *weight* used for ranking:
//!
//! - **basket size**: a pair seen in a 3-item basket is stronger evidence than one seen in
//!   a 300-item wholesale order, so a basket of `n` items weighs `1 / n`;
//! - **recency**: assortments and seasons move, so a basket from time `t` weighs
//!   `2^(t / half_life)` — newer baskets count more, without ever rewriting old counts
//!   (only ratios of weights are compared).
//!
//! - **nearness in the basket**: lines of an order keep the order they were added in; two
//!   lines added close together (within `near_lines`) were usually chosen together (one
//!   page, one collection), two far apart in a long order much less so, so a near pair's
//!   weight is multiplied by `1 + near_boost`.
//!
//! The score of `b` for `a` is `w(a, b) / W(b)^β`: the weighted co-occurrence, damped by
//! how common `b` is. `β = 0` ranks by co-occurrence (what "bought together" counts
//! give), `β = 1` by lift (which over-rewards rare items); in between keeps what is
//! bought with `a` but stops best-sellers from topping every list. Pairs seen fewer than
//! `min_support` times are ignored as noise. For a shopper whose earlier orders are known,
//! the recommender multiplies the score of a product they bought before by
//! `1 + own_weight × ln(1 + their orders of it)` ([`Scoring::own_weight`]).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::intern::{Interner, top_k};

/// Ranking parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scoring {
    /// Popularity damping exponent β (0 = co-occurrence, 1 = lift).
    pub beta: f64,
    /// Least raw pair count considered.
    pub min_support: u32,
    /// Half-life of a basket's weight in days (`f64::INFINITY`: no recency).
    pub half_life_days: f64,
    /// Whether large baskets weigh less.
    pub size_weighting: bool,
    /// How much less: a basket of `n` items weighs `n^-size_exponent` (0: `1 / ln(1 + n)`).
    pub size_exponent: f64,
    /// Lines at most this far apart in a basket count as a near pair.
    pub near_lines: u32,
    /// A near pair weighs `1 + near_boost` times a far one (0: nearness ignored).
    pub near_boost: f64,
    /// Weight of name similarity blended into "bought together" (0: none); see
    /// [`crate::recommend::names`].
    pub name_weight: f64,
    /// How much more names weigh for a product seen in few orders: the weight is
    /// `name_weight × (1 + name_shrink / orders)` (0: the same for every product).
    pub name_shrink: f64,
    /// For a shopper whose earlier orders are known: a product they bought before and
    /// that is bought with this one weighs `1 + own_weight × ln(1 + their orders of
    /// it)` times its bought-together score (0: everyone sees the same list).
    #[serde(default)]
    pub own_weight: f64,
    /// Recommendations for a basket (a cart): each item's list weighs this much less than
    /// the one added after it (`basket_decay^age`, the latest item's age 0).
    #[serde(default = "default_basket_decay")]
    pub basket_decay: f64,
    /// How a basket's items' lists are fused (reciprocal rank): an item's `r`-th product
    /// (from 0) adds `1 / (basket_fusion + r)`, so a small value lets each item's first
    /// few count most and a large one rewards products on many lists.
    #[serde(default = "default_basket_fusion")]
    pub basket_fusion: f64,
}

fn default_basket_decay() -> f64 {
    Scoring::default().basket_decay
}

fn default_basket_fusion() -> f64 {
    Scoring::default().basket_fusion
}

impl Scoring {
    /// Plain co-occurrence counts: no damping, recency, size or nearness weighting, no
    /// minimum support, no names — the baseline the scoring is measured against.
    pub fn plain() -> Scoring {
        Scoring {
            beta: 0.0,
            min_support: 1,
            half_life_days: f64::INFINITY,
            size_weighting: false,
            size_exponent: 0.0,
            near_lines: 0,
            near_boost: 0.0,
            name_weight: 0.0,
            name_shrink: 0.0,
            own_weight: 0.0,
            basket_decay: BASKET_DECAY,
            basket_fusion: BASKET_FUSION,
        }
    }
}

impl Default for Scoring {
    fn default() -> Self {
        // Judged out of sample on the UCI history (`reco_eval`'s rolling months: each
        // month scored by the grid point best on the months before it): no popularity
        // damping, no minimum support and names weighing more for thinly bought products
        // were chosen for every month; half-life, nearness and size weighting moved
        // between neighbouring values of a flat plateau, and stay in its middle.
        Scoring {
            beta: 0.0,
            min_support: 1,
            half_life_days: 120.0,
            size_weighting: true,
            size_exponent: 1.0,
            near_lines: 10,
            near_boost: 4.0,
            name_weight: 0.15,
            name_shrink: 10.0,
            own_weight: OWN_WEIGHT,
            basket_decay: BASKET_DECAY,
            basket_fusion: BASKET_FUSION,
        }
    }
}

/// The default [`Scoring::basket_decay`].
pub const BASKET_DECAY: f64 = 0.25;

/// The default [`Scoring::basket_fusion`].
pub const BASKET_FUSION: f64 = 10.0;

/// The default [`Scoring::own_weight`], chosen out of sample in every month (BENCHMARKS.md,
/// "Built: the shopper's own products").
pub const OWN_WEIGHT: f64 = 16.0;

/// Counts for one item.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ItemStat {
    /// Baskets containing it.
    pub count: u32,
    /// Their total weight.
    pub weight: f64,
}

/// Counts for one pair.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PairStat {
    /// Baskets containing both.
    pub count: u32,
    /// Their total weight.
    pub weight: f64,
}

/// Most items of one basket that take part in pair counting (the rest still count as
/// items): bounds the quadratic cost of huge wholesale baskets.
pub const MAX_PAIR_ITEMS: usize = 200;

/// Co-occurrence statistics over interned item ids.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CoStats {
    names: Interner,
    items: Vec<ItemStat>,
    /// For each item, its partners (both directions are stored).
    pairs: Vec<HashMap<u32, PairStat>>,
    baskets: u64,
}

/// Milliseconds per day.
const DAY_MS: f64 = 86_400_000.0;
/// The time origin of recency weights (2000-01-01); keeps exponents small.
const EPOCH_MS: f64 = 946_684_800_000.0;

impl CoStats {
    fn intern(&mut self, name: &str) -> u32 {
        let (id, new) = self.names.intern(name);
        if new {
            self.items.push(ItemStat::default());
            self.pairs.push(HashMap::new());
        }
        id
    }

    /// The weight of a basket of `n` distinct items at time `at_ms`.
    pub fn basket_weight(scoring: &Scoring, n: usize, at_ms: i64) -> f64 {
        let size = if scoring.size_weighting && scoring.size_exponent > 0.0 {
            (n.max(1) as f64).powf(-scoring.size_exponent)
        } else if scoring.size_weighting {
            1.0 / (1.0 + n as f64).ln()
        } else {
            1.0
        };
        let recency = if scoring.half_life_days.is_finite() {
            ((at_ms as f64 - EPOCH_MS) / DAY_MS / scoring.half_life_days).exp2()
        } else {
            1.0
        };
        size * recency
    }

    /// Learns one basket, its lines in the order they were added (repeats are ignored),
    /// with the given weight; pairs of lines near each other weigh more (see [`Scoring`]).
    pub fn learn<S: AsRef<str>>(&mut self, basket: &[S], weight: f64, scoring: &Scoring) {
        // (item, first position), one per distinct item, in basket order.
        let mut lines: Vec<(u32, usize)> = basket
            .iter()
            .enumerate()
            .map(|(pos, s)| (self.intern(s.as_ref()), pos))
            .collect();
        lines.sort_unstable();
        lines.dedup_by_key(|l| l.0);
        lines.sort_unstable_by_key(|l| l.1);
        if lines.is_empty() {
            return;
        }
        self.baskets += 1;
        for &(i, _) in &lines {
            let s = &mut self.items[i as usize];
            s.count += 1;
            s.weight += weight;
        }
        let near = weight * (1.0 + scoring.near_boost);
        let paired = &lines[..lines.len().min(MAX_PAIR_ITEMS)];
        for (x, &(a, _)) in paired.iter().enumerate() {
            for (y, &(b, _)) in paired.iter().enumerate().skip(x + 1) {
                let w = if y - x <= scoring.near_lines as usize {
                    near
                } else {
                    weight
                };
                for (from, to) in [(a, b), (b, a)] {
                    let p = self.pairs[from as usize].entry(to).or_default();
                    p.count += 1;
                    p.weight += w;
                }
            }
        }
    }

    /// Baskets learned.
    pub fn baskets(&self) -> u64 {
        self.baskets
    }

    /// Distinct items seen.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.baskets == 0
    }

    /// Baskets containing `item`.
    pub fn count(&self, item: &str) -> u32 {
        self.names
            .id(item)
            .map_or(0, |i| self.items[i as usize].count)
    }

    /// Baskets containing both.
    pub fn pair_count(&self, a: &str, b: &str) -> u32 {
        match (self.names.id(a), self.names.id(b)) {
            (Some(a), Some(b)) => self.pairs[a as usize].get(&b).map_or(0, |p| p.count),
            _ => 0,
        }
    }

    /// Support of an item set of one or two items (fraction of baskets).
    pub fn support(&self, a: &str, b: Option<&str>) -> f64 {
        if self.baskets == 0 {
            return 0.0;
        }
        let n = match b {
            None => self.count(a),
            Some(b) => self.pair_count(a, b),
        };
        f64::from(n) / self.baskets as f64
    }

    /// Confidence of the rule `a → b`: P(b | a).
    pub fn confidence(&self, a: &str, b: &str) -> f64 {
        let ca = self.count(a);
        if ca == 0 {
            return 0.0;
        }
        f64::from(self.pair_count(a, b)) / f64::from(ca)
    }

    /// Lift of `a → b`: confidence over the support of `b`.
    pub fn lift(&self, a: &str, b: &str) -> f64 {
        let sb = self.support(b, None);
        if sb == 0.0 {
            return 0.0;
        }
        self.confidence(a, b) / sb
    }

    /// The items most associated with `item`, best first, with their scores.
    pub fn related(&self, item: &str, scoring: &Scoring, limit: usize) -> Vec<(Arc<str>, f64)> {
        let Some(a) = self.names.id(item) else {
            return Vec::new();
        };
        let scored: Vec<(u32, f64)> = self.pairs[a as usize]
            .iter()
            .filter_map(|(&b, p)| Some((b, self.pair_score(b, p, scoring)?)))
            .collect();
        top_k(scored, limit, |x, y| {
            y.1.total_cmp(&x.1).then(x.0.cmp(&y.0))
        })
        .into_iter()
        .map(|(b, s)| (self.names.name(b).clone(), s))
        .collect()
    }

    /// How `b` scores as a partner of `a`, as [`CoStats::related`] scores it (`None`: not
    /// a partner under `scoring`'s minimum support).
    pub fn score(&self, a: &str, b: &str, scoring: &Scoring) -> Option<f64> {
        self.scorer(a, scoring)?(b)
    }

    /// [`CoStats::score`] of any item as a partner of `a`, with `a` looked up once
    /// (`None`: `a` was never learned): for scoring many items against one.
    pub fn scorer<'s>(
        &'s self,
        a: &str,
        scoring: &'s Scoring,
    ) -> Option<impl Fn(&str) -> Option<f64> + 's> {
        let partners = &self.pairs[self.names.id(a)? as usize];
        Some(move |b: &str| {
            let b = self.names.id(b)?;
            self.pair_score(b, partners.get(&b)?, scoring)
        })
    }

    /// The score of partner `b` with pair counts `p`: `w(a, b) / W(b)^β`, or `None` below
    /// the minimum support.
    fn pair_score(&self, b: u32, p: &PairStat, scoring: &Scoring) -> Option<f64> {
        (p.count >= scoring.min_support).then(|| {
            let wb = self.items[b as usize].weight.max(f64::MIN_POSITIVE);
            p.weight / wb.powf(scoring.beta)
        })
    }

    /// Items by how often they were bought (raw counts), best first.
    pub fn popular(&self, limit: usize) -> Vec<(Arc<str>, u32)> {
        let all: Vec<(u32, u32)> = self
            .items
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s.count))
            .filter(|(_, c)| *c > 0)
            .collect();
        top_k(all, limit, |x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)))
            .into_iter()
            .map(|(i, c)| (self.names.name(i).clone(), c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_measures() {
        let mut s = CoStats::default();
        s.learn(&["a", "b", "c"], 1.0, &Scoring::plain());
        s.learn(&["a", "b"], 1.0, &Scoring::plain());
        s.learn(&["a", "d", "a"], 1.0, &Scoring::plain());
        s.learn(&["e"], 1.0, &Scoring::plain());
        assert_eq!(s.baskets(), 4);
        assert_eq!(
            (s.count("a"), s.pair_count("a", "b"), s.pair_count("b", "a")),
            (3, 2, 2)
        );
        assert_eq!(s.support("a", Some("b")), 0.5);
        assert!((s.confidence("a", "b") - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.lift("a", "b") - (2.0 / 3.0) / 0.5).abs() < 1e-12);
        let plain = Scoring::plain();
        let r = s.related("a", &plain, 10);
        assert_eq!(&*r[0].0, "b");
        assert_eq!(r.len(), 3);
        assert!(
            s.related(
                "a",
                &Scoring {
                    min_support: 2,
                    ..plain
                },
                10
            )
            .len()
                == 1
        );
        assert_eq!(s.related("zzz", &plain, 10), Vec::new());
        assert_eq!(&*s.popular(1)[0].0, "a");
        let top3: Vec<String> = s.popular(3).iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(top3, ["a", "b", "c"], "ties in first-seen order");
        assert_eq!(s.popular(100).len(), 5);
        assert!(s.popular(0).is_empty());
    }

    #[test]
    fn one_query_scores_many_partners_as_related_ranks_them() {
        let mut s = CoStats::default();
        let plain = Scoring::plain();
        s.learn(&["a", "b", "c"], 1.0, &plain);
        s.learn(&["a", "b"], 1.0, &plain);
        s.learn(&["d", "e"], 1.0, &plain);
        let score = s.scorer("a", &plain).expect("a was learned");
        for (b, x) in s.related("a", &plain, 10) {
            assert_eq!(score(&b), Some(x));
            assert_eq!(s.score("a", &b, &plain), Some(x));
        }
        assert_eq!((score("b"), score("c")), (Some(2.0), Some(1.0)));
        // Learned but never with "a"; never learned; and no scorer for an unknown query.
        assert_eq!((score("d"), score("zzz"), score("a")), (None, None, None));
        assert!(s.scorer("zzz", &plain).is_none());
        let strict = Scoring {
            min_support: 2,
            ..plain
        };
        let score = s.scorer("a", &strict).unwrap();
        assert_eq!((score("b"), score("c")), (Some(2.0), None));
    }

    #[test]
    fn damping_stops_best_sellers_topping_every_list() {
        let mut s = CoStats::default();
        // "milk" is in every basket; "bun" goes with "sausage" specifically.
        for _ in 0..50 {
            s.learn(&["milk", "bread"], 1.0, &Scoring::plain());
        }
        for _ in 0..5 {
            s.learn(&["sausage", "milk", "bun"], 1.0, &Scoring::plain());
        }
        s.learn(&["sausage", "milk"], 1.0, &Scoring::plain());
        let counts = Scoring {
            min_support: 2,
            ..Scoring::plain()
        };
        assert_eq!(&*s.related("sausage", &counts, 1)[0].0, "milk");
        let damped = Scoring {
            beta: 0.5,
            ..counts
        };
        assert_eq!(&*s.related("sausage", &damped, 1)[0].0, "bun");
    }

    #[test]
    fn lines_added_near_each_other_weigh_more() {
        // "a" first, "b" last of 13 lines: a–x1 is near, a–b is 12 lines apart.
        let mut basket = vec!["a".to_owned()];
        basket.extend((1..=11).map(|i| format!("x{i}")));
        basket.push("b".to_owned());
        let weight_of = |scoring: &Scoring, other: &str| {
            let mut s = CoStats::default();
            s.learn(&basket, 1.0, scoring);
            let r = s.related("a", &Scoring::plain(), 20);
            let found = r.iter().find(|(n, _)| &**n == other).map(|(_, w)| *w);
            (found.unwrap(), s.pair_count("a", other))
        };
        let near = Scoring {
            near_lines: 10,
            near_boost: 4.0,
            ..Scoring::plain()
        };
        assert_eq!(weight_of(&near, "x1"), (5.0, 1));
        assert_eq!(
            weight_of(&near, "b"),
            (1.0, 1),
            "far: weight only, count as ever"
        );
        assert_eq!(weight_of(&Scoring::plain(), "x1"), (1.0, 1));
        // A repeated line counts once, at its first position.
        let mut s = CoStats::default();
        s.learn(&["a", "b", "a"], 1.0, &near);
        assert_eq!((s.count("a"), s.pair_count("a", "b")), (1, 1));
    }

    #[test]
    fn newer_and_smaller_baskets_weigh_more() {
        let sc = Scoring::default();
        let day = 86_400_000;
        let t = 1_300_000_000_000;
        let old = CoStats::basket_weight(&sc, 2, t);
        let new = CoStats::basket_weight(&sc, 2, t + 120 * day);
        assert!(
            (new / old - 2.0).abs() < 1e-9,
            "one half-life doubles the weight"
        );
        assert!(CoStats::basket_weight(&sc, 2, t) > CoStats::basket_weight(&sc, 50, t));
    }
}

//! Name similarity: products whose names share rare words are alike.
//!
//! Purchase history is sparse: most pairs of products were never bought together often
//! enough to count, and a product new to the catalog has no history at all. Names fill
//! part of that gap — "pink paper lantern" goes with "blue paper lantern" and "paper
//! lantern string lights". Each name is a set of words (lower-cased letters and digits,
//! two characters or more), each word weighs its inverse document frequency
//! `ln(N / df)`, and two products score the cosine of their weighted word vectors.
//! [`Recommender::related`](super::Recommender::related) blends this into "bought
//! together" (see [`Scoring::name_weight`](super::stats::Scoring::name_weight)).
//!
//! The index lives in memory only: the engine fills it from the product table at start
//! and keeps it current from `ProductChanged` events.

use std::collections::HashMap;
use std::sync::Arc;

use super::intern::{Interner, top_k};

/// Most candidates one lookup gathers. Words are taken rarest first: a word adds new
/// candidates only while they fit under this bound, and a commoner word then only adds to
/// the scores of the candidates already found (a membership test each) — so a lookup
/// costs about this many steps per word however large the catalog, and the rare words,
/// which weigh most, always pick the candidates.
const MAX_CANDIDATES: usize = 2_000;
/// Fewest candidates a lookup tries to gather: a commoner word over the bound still adds
/// new ones (its first, in index order) while fewer than this were found.
const MIN_CANDIDATES: usize = 200;

/// The words of a product name, distinct and sorted.
pub fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 1)
        .map(str::to_lowercase)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Product names as weighted word sets, with an inverted index.
#[derive(Debug, Default)]
pub struct NameIndex {
    skus: Interner,
    /// Word ids of each product (empty: no name, or removed).
    docs: Vec<Vec<u32>>,
    words: HashMap<String, u32>,
    /// Products having each word, sorted.
    postings: Vec<Vec<u32>>,
    /// `ln` of each word's posting count (kept with the postings: a lookup then costs no
    /// logarithm per candidate).
    ln_df: Vec<f64>,
    /// Products with at least one word.
    named: usize,
}

impl NameIndex {
    fn doc(&mut self, sku: &str) -> u32 {
        let (d, new) = self.skus.intern(sku);
        if new {
            self.docs.push(Vec::new());
        }
        d
    }

    fn word(&mut self, w: String) -> u32 {
        let next = self.postings.len() as u32;
        let id = *self.words.entry(w).or_insert(next);
        if id == next {
            self.postings.push(Vec::new());
            self.ln_df.push(0.0);
        }
        id
    }

    /// Sets the name of `sku` (`None`: the product is gone).
    pub fn set(&mut self, sku: &str, name: Option<&str>) {
        let doc = self.doc(sku);
        let mut new: Vec<u32> = name
            .map(words)
            .unwrap_or_default()
            .into_iter()
            .map(|w| self.word(w))
            .collect();
        new.sort_unstable();
        let old = &self.docs[doc as usize];
        if *old == new {
            return;
        }
        let old = std::mem::take(&mut self.docs[doc as usize]);
        for &w in &old {
            let posting = &mut self.postings[w as usize];
            if let Ok(at) = posting.binary_search(&doc) {
                posting.remove(at);
            }
        }
        for &w in &new {
            let posting = &mut self.postings[w as usize];
            if let Err(at) = posting.binary_search(&doc) {
                posting.insert(at, doc);
            }
        }
        for &w in old.iter().chain(&new) {
            self.ln_df[w as usize] = (self.postings[w as usize].len().max(1) as f64).ln();
        }
        self.named = self.named + usize::from(!new.is_empty()) - usize::from(!old.is_empty());
        self.docs[doc as usize] = new;
    }

    /// Products with a name.
    pub fn len(&self) -> usize {
        self.named
    }

    /// Whether no product has a name.
    pub fn is_empty(&self) -> bool {
        self.named == 0
    }

    /// `idf(w) = ln(N / df) = ln N - ln df`, given `ln N`.
    fn idf(&self, ln_n: f64, word: u32) -> f64 {
        ln_n - self.ln_df[word as usize]
    }

    fn norm(&self, ln_n: f64, doc: u32) -> f64 {
        self.docs[doc as usize]
            .iter()
            .map(|&w| self.idf(ln_n, w).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// The products most similar to `sku` by name, best first, with their cosine
    /// similarity (0–1); never `sku` itself.
    pub fn similar(&self, sku: &str, limit: usize) -> Vec<(Arc<str>, f64)> {
        let Some(doc) = self.skus.id(sku) else {
            return Vec::new();
        };
        let ln_n = (self.named.max(1) as f64).ln();
        let mut words = self.docs[doc as usize].clone();
        words.sort_by_key(|&w| self.postings[w as usize].len());
        let mut acc: HashMap<u32, f64> = HashMap::new();
        for w in words {
            let posting = &self.postings[w as usize];
            let weight = self.idf(ln_n, w).powi(2);
            if weight <= 0.0 {
                continue;
            }
            if acc.len() + posting.len() <= MAX_CANDIDATES {
                for &other in posting {
                    if other != doc {
                        *acc.entry(other).or_default() += weight;
                    }
                }
                continue;
            }
            for (other, score) in acc.iter_mut() {
                if posting.binary_search(other).is_ok() {
                    *score += weight;
                }
            }
            // Too few found so far: the first new ones of this commoner word.
            let mut room = MIN_CANDIDATES.saturating_sub(acc.len());
            for &other in posting {
                if room == 0 {
                    break;
                }
                if other != doc && !acc.contains_key(&other) {
                    acc.insert(other, weight);
                    room -= 1;
                }
            }
        }
        let own = self.norm(ln_n, doc);
        let scored: Vec<(u32, f64)> = acc
            .into_iter()
            .map(|(d, dot)| {
                let cos = dot / (own * self.norm(ln_n, d)).max(f64::MIN_POSITIVE);
                (d, cos)
            })
            .collect();
        let by_score = |x: &(u32, f64), y: &(u32, f64)| {
            y.1.total_cmp(&x.1)
                .then_with(|| self.skus.name(x.0).cmp(self.skus.name(y.0)))
        };
        top_k(scored, limit, by_score)
            .into_iter()
            .map(|(d, s)| (self.skus.name(d).clone(), s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_cased_distinct_and_longer_than_one_character() {
        assert_eq!(
            words("Pink PAPER lantern, pink (S) 3-pack"),
            ["lantern", "pack", "paper", "pink"]
        );
        assert_eq!(words(""), Vec::<String>::new());
    }

    #[test]
    fn shared_rare_words_make_products_similar() {
        let mut ix = NameIndex::default();
        ix.set("A", Some("Pink paper lantern"));
        ix.set("B", Some("Blue paper lantern"));
        ix.set("C", Some("Pink cotton scarf"));
        ix.set("D", Some("Steel hammer"));
        ix.set("E", Some("Steel screwdriver"));
        let sim = ix.similar("A", 10);
        let names: Vec<&str> = sim.iter().map(|(s, _)| &**s).collect();
        assert_eq!(
            names,
            ["B", "C"],
            "two shared words beat one; D and E share none"
        );
        assert!(sim[0].1 > sim[1].1 && sim[0].1 <= 1.0 + 1e-12);
        assert!(ix.similar("nope", 10).is_empty());
        // The same name is fully similar.
        ix.set("F", Some("blue PAPER lantern"));
        assert!((ix.similar("B", 1)[0].1 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_lookup_in_a_large_catalog_is_bounded_and_led_by_rare_words() {
        let mut ix = NameIndex::default();
        for i in 0..5_000 {
            ix.set(&format!("W{i}"), Some(&format!("widget model{i}")));
        }
        ix.set("Q", Some("widget gizmo"));
        ix.set("G", Some("gizmo sprocket"));
        let sim = ix.similar("Q", 10);
        assert_eq!(&*sim[0].0, "G", "the rare shared word leads");
        // The common word still brings candidates (the first ones), never all 5,000.
        assert_eq!(sim.len(), 10);
        assert!(sim[1..].iter().all(|(s, _)| s.starts_with('W')));
        assert!(ix.similar("W1", usize::MAX).len() <= MAX_CANDIDATES);
    }

    proptest::proptest! {
        /// Below the candidate bound a lookup is exact: the same cosine scores, in the same
        /// order, as comparing the product with every other one — also after renames.
        #[test]
        fn small_catalogs_are_ranked_exactly(
            names in proptest::collection::vec(
                proptest::collection::vec(0u8..12, 0..5), 1..40),
            renames in proptest::collection::vec((0usize..40, proptest::collection::vec(0u8..12, 0..5)), 0..10),
        ) {
            let text = |ws: &[u8]| ws.iter().map(|w| format!("w{w}")).collect::<Vec<_>>().join(" ");
            let mut ix = NameIndex::default();
            let mut current: Vec<String> = Vec::new();
            for (i, ws) in names.iter().enumerate() {
                ix.set(&format!("P{i}"), Some(&text(ws)));
                current.push(text(ws));
            }
            for (i, ws) in &renames {
                if *i < current.len() {
                    ix.set(&format!("P{i}"), Some(&text(ws)));
                    current[*i] = text(ws);
                }
            }
            // Brute force over the current names.
            let sets: Vec<Vec<String>> = current.iter().map(|n| words(n)).collect();
            let n = sets.iter().filter(|s| !s.is_empty()).count().max(1) as f64;
            let df = |w: &String| sets.iter().filter(|s| s.contains(w)).count() as f64;
            let idf2 = |w: &String| (n / df(w)).ln().powi(2);
            let norm = |s: &Vec<String>| s.iter().map(idf2).sum::<f64>().sqrt();
            for (q, qs) in sets.iter().enumerate() {
                let mut want: Vec<(String, f64)> = sets
                    .iter()
                    .enumerate()
                    .filter(|(d, _)| *d != q)
                    .filter_map(|(d, ds)| {
                        let dot: f64 = qs.iter().filter(|w| ds.contains(w)).map(idf2).sum();
                        (dot > 0.0).then(|| (format!("P{d}"), dot / (norm(qs) * norm(ds))))
                    })
                    .collect();
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let got = ix.similar(&format!("P{q}"), usize::MAX);
                proptest::prop_assert_eq!(got.len(), want.len());
                for ((gs, gv), (ws, wv)) in got.iter().zip(&want) {
                    proptest::prop_assert!((gv - wv).abs() < 1e-9, "{gs} {gv} vs {ws} {wv}");
                }
            }
        }
    }

    #[test]
    fn renamed_and_removed_products_leave_the_index() {
        let mut ix = NameIndex::default();
        ix.set("A", Some("paper lantern"));
        ix.set("B", Some("paper lantern"));
        ix.set("C", Some("wool socks"));
        assert_eq!(ix.len(), 3);
        ix.set("B", Some("wool socks"));
        assert!(ix.similar("A", 10).is_empty());
        assert_eq!(&*ix.similar("C", 10)[0].0, "B");
        ix.set("B", None);
        assert_eq!(ix.len(), 2);
        assert!(ix.similar("C", 10).is_empty());
        assert!(ix.similar("B", 10).is_empty());
        // Setting the same name again changes nothing.
        ix.set("A", Some("Paper Lantern"));
        assert_eq!(ix.len(), 2);
    }
}

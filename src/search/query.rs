//! From a shopper's text to a tantivy query — never through tantivy's query parser, so no
//! field can be addressed and no syntax can fail: the text is only ever split into words.
//!
//! Ranking ([`Ranking::Tuned`]), for each word:
//! - the best of its exact matches across fields (a disjunction-max with a small tie
//!   breaker), with field weights: name and codes ×3, brand and category ×2, description
//!   ×1, other attributes ×0.5;
//! - a typo-tolerant match (Levenshtein 1 for words of 4–7 letters, 2 from 8) on name,
//!   brand, category and codes, at a low constant score so exact matches rank first;
//! - the last word also matches as a prefix of a name word (search as you type).
//!
//! Every word must match (AND); if that finds nothing, any word may (OR). With two or more
//! words, an exact phrase in the name (slop 2) adds a bonus.
//! [`Ranking::Bm25Baseline`] is plain BM25: any word in name, description, category or brand,
//! all fields weighted alike. It exists only to measure the tuned ranking against.

use tantivy::Term;
use tantivy::query::{
    BooleanQuery, BoostQuery, DisjunctionMaxQuery, FuzzyTermQuery, Occur, PhraseQuery, Query,
    TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;

use super::schema::Fields;

/// How results are ranked for a text query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ranking {
    /// Field weights, typo tolerance, phrase bonus, AND with OR fallback.
    #[default]
    Tuned,
    /// Plain BM25 over name, description, category and brand (for evaluation).
    Bm25Baseline,
}

/// Most words of a query that are used.
pub const MAX_TERMS: usize = 16;

/// Splits `text` into analyzed words (at most [`MAX_TERMS`]).
pub fn words(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        if out.len() == MAX_TERMS {
            break;
        }
        let t = stream.token().text.clone();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

fn term(field: tantivy::schema::Field, word: &str, boost: f32) -> Box<dyn Query> {
    let q = TermQuery::new(
        Term::from_field_text(field, word),
        IndexRecordOption::WithFreqs,
    );
    Box::new(BoostQuery::new(Box::new(q), boost))
}

fn fuzzy_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// The text part of a query; `None` for no words. `strict` is AND, otherwise OR.
/// `prefix_last` treats the last word as a prefix (the shopper is still typing it).
pub fn text_query(
    f: &Fields,
    stemmed: &[String],
    raw_last: Option<&str>,
    ranking: Ranking,
    strict: bool,
) -> Option<Box<dyn Query>> {
    if stemmed.is_empty() {
        return None;
    }
    let occur = if strict { Occur::Must } else { Occur::Should };
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for (i, w) in stemmed.iter().enumerate() {
        let per_word: Box<dyn Query> = match ranking {
            Ranking::Bm25Baseline => Box::new(BooleanQuery::new(
                [f.name, f.description, f.category_text, f.brand]
                    .into_iter()
                    .map(|fl| (Occur::Should, term(fl, w, 1.0)))
                    .collect(),
            )),
            Ranking::Tuned => {
                let exact = DisjunctionMaxQuery::with_tie_breaker(
                    vec![
                        term(f.name, w, 3.0),
                        term(f.codes, w, 3.0),
                        term(f.brand, w, 2.0),
                        term(f.category_text, w, 2.0),
                        term(f.description, w, 1.0),
                        term(f.attrs, w, 0.5),
                    ],
                    0.1,
                );
                let mut alts: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Should, Box::new(exact))];
                let d = fuzzy_distance(w);
                if d > 0 {
                    for fl in [f.name, f.brand, f.category_text, f.codes] {
                        let fz = FuzzyTermQuery::new(Term::from_field_text(fl, w), d, true);
                        alts.push((Occur::Should, Box::new(BoostQuery::new(Box::new(fz), 0.3))));
                    }
                }
                if i + 1 == stemmed.len() {
                    if let Some(raw) = raw_last.filter(|r| r.chars().count() >= 2) {
                        let px = FuzzyTermQuery::new_prefix(
                            Term::from_field_text(f.name_words, raw),
                            0,
                            false,
                        );
                        alts.push((Occur::Should, Box::new(BoostQuery::new(Box::new(px), 0.2))));
                    }
                }
                Box::new(BooleanQuery::new(alts))
            }
        };
        clauses.push((occur, per_word));
    }
    if ranking == Ranking::Tuned && stemmed.len() >= 2 {
        let terms: Vec<(usize, Term)> = stemmed
            .iter()
            .enumerate()
            .map(|(i, w)| (i, Term::from_field_text(f.name, w)))
            .collect();
        let phrase = PhraseQuery::new_with_offset_and_slop(terms, 2);
        clauses.push((
            Occur::Should,
            Box::new(BoostQuery::new(Box::new(phrase), 2.0)),
        ));
    }
    Some(Box::new(BooleanQuery::new(clauses)))
}

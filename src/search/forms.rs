//! One spelling for quantities and model codes, whichever way they are written.
//!
//! Product text and shoppers write the same thing several ways: "1TB", "1 TB" and "1-TB";
//! "TN-2110" and "TN2110". The [`CodeForms`] filter, part of the analyzers that index
//! documents and read queries, adds terms so that the spellings meet:
//!
//! - a **quantity** — a number and a unit of at most three letters (`tb`, `gb`, `mm`, `w`,
//!   `mah`, `k`, `p`), glued or after a space or hyphen — yields the number, the unit and
//!   the two joined, however it was written: `1TB`, `1 TB`, `1-tb` → `1`, `tb`, `1tb`;
//! - a **code** written with a hyphen between letters and a number also yields the two
//!   joined: `TN-2110` → `tn`, `2110`, `tn2110`, so it meets `TN2110`. Glued codes are
//!   not split (`AA2000` must not match "aa"), and words apart are not joined ("pack 2"
//!   is no code).
//!
//! The added terms take the position of the word they come from, so phrases stay as
//! written. A query ([`optional_terms`]) requires a quantity's number and unit and only
//! prefers its joined form; for a code it requires the joined form and only prefers the
//! parts — so "tn-2110" finds "TN2110", and "1 tb" finds "1TB".

use std::collections::VecDeque;

use tantivy::tokenizer::{Token, TokenFilter, TokenStream, Tokenizer};

/// Longest letter run taken as a unit or a code prefix when joined across a space.
const SHORT: usize = 3;

/// The filter (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct CodeForms;

impl TokenFilter for CodeForms {
    type Tokenizer<T: Tokenizer> = CodeFormsFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> CodeFormsFilter<T> {
        CodeFormsFilter { inner }
    }
}

/// [`CodeForms`] applied to a tokenizer.
#[derive(Clone)]
pub struct CodeFormsFilter<T> {
    inner: T,
}

impl<T: Tokenizer> Tokenizer for CodeFormsFilter<T> {
    type TokenStream<'a> = CodeFormsStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CodeFormsStream {
            text,
            tail: self.inner.token_stream(text),
            pending: VecDeque::new(),
            current: Token::default(),
            previous: None,
        }
    }
}

/// The token stream of [`CodeFormsFilter`].
pub struct CodeFormsStream<'a, T> {
    text: &'a str,
    tail: T,
    /// Terms still to hand out for the inner token just read.
    pending: VecDeque<Token>,
    current: Token,
    /// The inner stream's previous token.
    previous: Option<Token>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Digits,
    Letters,
    Mixed,
}

fn kind(s: &str) -> Kind {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if digits == s.len() {
        Kind::Digits
    } else if digits == 0 {
        Kind::Letters
    } else {
        Kind::Mixed
    }
}

/// A quantity glued together: a number, then a unit of at most [`SHORT`] letters.
fn glued_quantity(s: &str) -> Option<(&str, &str)> {
    let cut = s.bytes().position(|b| !b.is_ascii_digit())?;
    let (number, unit) = s.split_at(cut);
    (cut > 0 && unit.len() <= SHORT && kind(unit) == Kind::Letters).then_some((number, unit))
}

/// Whether `a` and `b` (in that order, `between` the text that separates them) are one
/// quantity or one code written apart.
fn joined(a: &str, between: &str, b: &str) -> bool {
    match (kind(a), kind(b), between) {
        (Kind::Digits, Kind::Letters, " " | "-") => b.len() <= SHORT,
        (Kind::Letters, Kind::Digits, "-") => true,
        _ => false,
    }
}

impl<T: TokenStream> TokenStream for CodeFormsStream<'_, T> {
    fn advance(&mut self) -> bool {
        if self.pending.is_empty() {
            if !self.tail.advance() {
                return false;
            }
            let token = self.tail.token().clone();
            if let Some((number, unit)) = glued_quantity(&token.text) {
                for part in [number, unit] {
                    self.pending.push_back(Token {
                        text: part.to_owned(),
                        ..token.clone()
                    });
                }
            }
            self.pending.push_back(token.clone());
            if let Some(prev) = &self.previous
                && let Some(between) = self.text.get(prev.offset_to..token.offset_from)
                && joined(&prev.text, between, &token.text)
            {
                self.pending.push_back(Token {
                    text: format!("{}{}", prev.text, token.text),
                    offset_from: prev.offset_from,
                    ..token.clone()
                });
            }
            self.previous = Some(token);
        }
        match self.pending.pop_front() {
            Some(t) => {
                self.current = t;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.current
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
    }
}

/// The terms of `terms` (not `i`) that spell `terms[i]` joined — two or more, in their
/// order, others may come between — if any.
fn parts_of(terms: &[String], i: usize) -> Option<Vec<usize>> {
    let t = terms[i].as_str();
    (0..terms.len()).find_map(|start| {
        let (mut spelled, mut parts) = (0, Vec::new());
        for (j, part) in terms.iter().enumerate().skip(start) {
            if j == i || part.is_empty() || !t[spelled..].starts_with(part.as_str()) {
                continue;
            }
            spelled += part.len();
            parts.push(j);
            if spelled == t.len() {
                return (parts.len() >= 2).then_some(parts);
            }
        }
        None
    })
}

/// Which of a query's terms are only preferred, not required: a quantity's joined form
/// (`1tb` of `1 tb`), and a code's parts (`tn`, `2110` of `tn-2110`).
pub fn optional_terms(terms: &[String]) -> Vec<bool> {
    let mut optional = vec![false; terms.len()];
    for i in 0..terms.len() {
        if let Some(parts) = parts_of(terms, i) {
            if kind(&terms[parts[0]]) == Kind::Digits {
                optional[i] = true;
            } else {
                for p in parts {
                    optional[p] = true;
                }
            }
        }
    }
    optional
}

#[cfg(test)]
mod tests {
    use tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer};

    use super::*;

    fn terms(text: &str) -> Vec<String> {
        let mut a = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .filter(CodeForms)
            .build();
        let mut out = Vec::new();
        let mut s = a.token_stream(text);
        while s.advance() {
            out.push(s.token().text.clone());
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn every_spelling_of_a_quantity_gives_the_same_terms() {
        for group in [
            &["1TB", "1 TB", "1-tb"][..],
            &["5000mAh", "5000 mAh"],
            &["4K", "4 k"],
        ] {
            let first = terms(group[0]);
            for other in &group[1..] {
                assert_eq!(terms(other), first, "{other} vs {}", group[0]);
            }
        }
        assert_eq!(terms("1tb"), ["1", "1tb", "tb"]);
    }

    #[test]
    fn a_hyphenated_code_meets_its_glued_spelling_and_glued_codes_stay_whole() {
        assert_eq!(terms("TN-2110"), ["2110", "tn", "tn2110"]);
        assert_eq!(terms("TN2110"), ["tn2110"]);
        assert_eq!(terms("AA2000 cells"), ["aa2000", "cells"]);
    }

    #[test]
    fn a_query_requires_what_every_spelling_has() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // A quantity: number and unit required, the joined form preferred.
        assert_eq!(
            optional_terms(&t(&["ssd", "1", "tb", "1tb"])),
            [false, false, false, true]
        );
        // A code: the joined form required, the parts preferred.
        assert_eq!(
            optional_terms(&t(&["tn", "2110", "tn2110", "toner"])),
            [true, true, false, false]
        );
        // A word that merely starts like another is no form of it.
        assert_eq!(optional_terms(&t(&["usb", "usbc"])), [false, false]);
    }

    #[test]
    fn ordinary_words_and_words_apart_stay_as_they_are() {
        assert_eq!(terms("laser printer"), ["laser", "printer"]);
        assert_eq!(terms("iphone 11"), ["11", "iphone"]);
        assert_eq!(terms("2 printers"), ["2", "printers"]);
        // Positions: added terms sit where their word is.
        let mut a = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(CodeForms)
            .build();
        let mut s = a.token_stream("ssd 1 tb black");
        let mut at = Vec::new();
        while s.advance() {
            at.push((s.token().text.clone(), s.token().position));
        }
        assert_eq!(
            at,
            [
                ("ssd".to_owned(), 0),
                ("1".to_owned(), 1),
                ("tb".to_owned(), 2),
                ("1tb".to_owned(), 2),
                ("black".to_owned(), 3)
            ]
        );
    }
}

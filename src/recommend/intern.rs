//! Names as dense ids: the co-occurrence statistics and the name index both keep their
//! per-product data in vectors indexed by one.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Names ↔ dense `u32` ids, in first-seen order. Serialised as the list of names alone;
/// the lookup map is rebuilt when it is read back.
#[derive(Debug, Default)]
pub struct Interner {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Interner {
    /// The id of `name`, if it was interned.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The id of `name`, and whether it is new (then it is the next id, `len() - 1`).
    pub fn intern(&mut self, name: &str) -> (u32, bool) {
        if let Some(&id) = self.ids.get(name) {
            return (id, false);
        }
        let id = self.names.len() as u32;
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        (id, true)
    }

    /// The name of `id`.
    pub fn name(&self, id: u32) -> &Arc<str> {
        &self.names[id as usize]
    }

    /// Names interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl Serialize for Interner {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Interner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<Arc<str>>::deserialize(d)?;
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Ok(Interner { names, ids })
    }
}

/// The `k` best of `items` under `better` (an ordering, best first), sorted; the rest are
/// only partitioned away, not sorted.
pub fn top_k<T>(
    mut items: Vec<T>,
    k: usize,
    better: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Vec<T> {
    let k = k.min(items.len());
    if k == 0 {
        return Vec::new();
    }
    items.select_nth_unstable_by(k - 1, &better);
    items.truncate(k);
    items.sort_by(better);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_stable_and_survive_a_round_trip() {
        let mut i = Interner::default();
        assert_eq!(i.intern("a"), (0, true));
        assert_eq!(i.intern("b"), (1, true));
        assert_eq!(i.intern("a"), (0, false));
        assert_eq!((i.id("b"), i.id("c"), i.len()), (Some(1), None, 2));
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&i, config).unwrap();
        let (back, _): (Interner, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(
            (back.id("a"), back.id("b"), &**back.name(1)),
            (Some(0), Some(1), "b")
        );
        // The same bytes as the plain list of names it replaced in the snapshot.
        let names: Vec<Arc<str>> = vec![Arc::from("a"), Arc::from("b")];
        assert_eq!(
            bytes,
            bincode::serde::encode_to_vec(&names, config).unwrap()
        );
    }

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let by_desc = |a: &u32, b: &u32| b.cmp(a);
        assert_eq!(top_k(vec![3, 9, 1, 7, 5], 3, by_desc), [9, 7, 5]);
        assert_eq!(top_k(vec![3, 1], 10, by_desc), [3, 1]);
        assert!(top_k(vec![3, 1], 0, by_desc).is_empty());
    }
}

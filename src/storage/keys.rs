//! Key encoding: big-endian and order-preserving, so that sled's byte order is the
//! logical order of the keys (range scans and cursors rely on it).

/// A type usable as a tree key.
pub trait Key {
    /// Appends the order-preserving encoding of `self` to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);

    /// The encoded key.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

impl Key for u64 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl Key for str {
    /// Strings are stored as their UTF-8 bytes, which is order-preserving as long as the
    /// string is the last component of a key (all our composite keys put it last).
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Key for [u8] {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Key for String {
    fn encode_into(&self, out: &mut Vec<u8>) {
        self.as_str().encode_into(out);
    }
}

impl<A: Key + ?Sized> Key for &A {
    fn encode_into(&self, out: &mut Vec<u8>) {
        (*self).encode_into(out);
    }
}

/// A composite key `(prefix, rest)`: the first component is a big-endian number.
impl<B: Key> Key for (u64, B) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        self.0.encode_into(out);
        self.1.encode_into(out);
    }
}

/// Decodes a big-endian `u64` key.
pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn u64_key_order_is_numeric_order(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
            prop_assert_eq!(decode_u64(&a.encode()), Some(a));
        }

        #[test]
        fn string_key_order_is_string_order(a in "[A-Za-z0-9._-]{0,20}", b in "[A-Za-z0-9._-]{0,20}") {
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
        }

        #[test]
        fn composite_keys_order_by_number_then_string(a in any::<u64>(), s in "[a-z]{0,5}", b in any::<u64>(), t in "[a-z]{0,5}") {
            let logical = (a, s.clone()).cmp(&(b, t.clone()));
            prop_assert_eq!(logical, (a, s).encode().cmp(&(b, t).encode()));
        }
    }
}

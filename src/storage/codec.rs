//! Value encoding: one version byte followed by bincode (standard config, serde).
//!
//! Every record type names its current version. A stored value whose version byte is not
//! the one this build knows is reported as corruption, never decoded by guesswork and never
//! a panic. All bincode use is in this file so the codec can be swapped (bincode is
//! unmaintained, RUSTSEC-2025-0141; postcard is the closest serde-compatible replacement).

use serde::{Serialize, de::DeserializeOwned};

use super::StorageError;

/// A type stored as a value in a tree.
pub trait Record: Serialize + DeserializeOwned {
    /// Version byte written in front of the encoded value. Bump it when the layout changes
    /// and teach [`decode`] to read the old one.
    const VERSION: u8;
    /// Short name used in error messages.
    const NAME: &'static str;

    /// Reads a value written under an older `version` (`body` is what follows the version
    /// byte), or `None` if that version is unknown. Override it when bumping
    /// [`Record::VERSION`]: decode the old layout with [`decode_body`] and convert.
    fn upgrade(version: u8, body: &[u8]) -> Option<Result<Self, StorageError>> {
        let _ = (version, body);
        None
    }
}

/// Encodes `value` as `[VERSION] ++ bincode(value)`.
pub fn encode<T: Record>(value: &T) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(64);
    out.push(T::VERSION);
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .map_err(|e| StorageError::encode(T::NAME, e))?;
    Ok(out)
}

/// Decodes a value written by [`encode`], checking the version byte and that every byte
/// was consumed.
pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, StorageError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(StorageError::Corrupt(format!("{}: empty value", T::NAME)));
    };
    if version != T::VERSION {
        return T::upgrade(version, body).unwrap_or_else(|| {
            Err(StorageError::Corrupt(format!(
                "{}: unknown version {version} (this build reads {})",
                T::NAME,
                T::VERSION
            )))
        });
    }
    decode_body(T::NAME, body)
}

/// Decodes a value's bytes after its version byte (any serde type: old layouts too),
/// checking that every byte was consumed.
pub fn decode_body<T: DeserializeOwned>(name: &str, body: &[u8]) -> Result<T, StorageError> {
    let (value, used) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| StorageError::decode(name, e))?;
    if used != body.len() {
        return Err(StorageError::Corrupt(format!(
            "{name}: {} trailing bytes",
            body.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Sample {
        id: String,
        n: u64,
        list: Vec<(String, u32)>,
        opt: Option<i64>,
    }
    impl Record for Sample {
        const VERSION: u8 = 3;
        const NAME: &'static str = "sample";
    }

    proptest! {
        #[test]
        fn any_record_round_trips(id in ".{0,40}", n in any::<u64>(),
                                  list in prop::collection::vec((".{0,8}", any::<u32>()), 0..10),
                                  opt in any::<Option<i64>>()) {
            let v = Sample { id, n, list, opt };
            let bytes = encode(&v).unwrap();
            prop_assert_eq!(bytes[0], 3);
            prop_assert_eq!(decode::<Sample>(&bytes).unwrap(), v);
        }
    }

    #[test]
    fn an_unknown_version_is_corruption_not_a_panic() {
        let mut bytes = encode(&Sample {
            id: "a".into(),
            n: 1,
            list: vec![],
            opt: None,
        })
        .unwrap();
        bytes[0] = 9;
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(StorageError::Corrupt(_))
        ));
    }

    #[test]
    fn truncated_and_padded_values_are_corruption() {
        let bytes = encode(&Sample {
            id: "abc".into(),
            n: 7,
            list: vec![],
            opt: Some(1),
        })
        .unwrap();
        assert!(decode::<Sample>(&bytes[..bytes.len() - 1]).is_err());
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(decode::<Sample>(&padded).is_err());
        assert!(decode::<Sample>(&[]).is_err());
    }
}

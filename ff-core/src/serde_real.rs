//! Reading numbers of the precision being loaded from serialised files (model files,
//! checkpoints).
//!
//! A file stores its numbers as decimal text, which can hold values that a `f32` cannot:
//! `1e39` is finite in `f64` but `inf` in `f32`, and a plain `as f32` turns it into `inf`
//! without a word, to fail much later far from the file. Here every number is read as `f64`
//! and converted to the precision `F` being loaded (the same bits as a direct read when it
//! fits); a finite value that overflows `F` is an error naming its position and value.

use crate::real::{overflow_message, to_real, Real};
use serde::de::{Deserializer, Error as _, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Deserialises a sequence of numbers into `Vec<F>` (use as
/// `#[serde(deserialize_with = "ff_core::serde_real::vec")]`), refusing a number that overflows
/// `F` with an error naming its entry (from 0) and value (see [`crate::real::overflow_message`]).
///
/// # Errors
/// The deserializer's errors, and a custom error for a value that overflows `F`.
pub fn vec<'de, D: Deserializer<'de>, F: Real>(deserializer: D) -> Result<Vec<F>, D::Error> {
    struct Numbers<F>(PhantomData<F>);

    impl<'de, F: Real> Visitor<'de> for Numbers<F> {
        type Value = Vec<F>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an array of numbers")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<F>, A::Error> {
            // The hint comes from the file: trust it only so far.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(v) = seq.next_element::<f64>()? {
                match to_real::<F>(v) {
                    Some(x) => out.push(x),
                    None => return Err(A::Error::custom(format!("entry {}: {}", out.len(), overflow_message::<F>(v)))),
                }
            }
            Ok(out)
        }
    }

    deserializer.deserialize_seq(Numbers(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(bound = "F: Real")]
    struct Holder<F> {
        #[serde(deserialize_with = "vec")]
        v: Vec<F>,
    }

    #[test]
    fn values_that_overflow_f32_are_refused_with_their_entry_and_value() {
        let e = serde_json::from_str::<Holder<f32>>(r#"{"v": [1, 2.5, 1e39]}"#).unwrap_err().to_string();
        assert!(e.contains("entry 2: value 1e39 overflows f32") && e.contains("precision = \"f64\""), "{e}");
        assert!(serde_json::from_str::<Holder<f32>>(r#"{"v": [-1e39]}"#).is_err());
        // The same file at f64 loads; and what fits in f32 reads as the plain f32 read would.
        assert_eq!(serde_json::from_str::<Holder<f64>>(r#"{"v": [1e39]}"#).unwrap().v, [1e39]);
        let text = r#"{"v": [0.1, -3.4028235e38, 1e-45, 16777217]}"#;
        let ours = serde_json::from_str::<Holder<f32>>(text).unwrap().v;
        #[derive(Deserialize)]
        struct Plain {
            v: Vec<f32>,
        }
        let plain = serde_json::from_str::<Plain>(text).unwrap().v;
        assert_eq!(
            ours.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            plain.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}

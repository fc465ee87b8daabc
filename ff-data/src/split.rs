//! Deterministic seeded shuffles, train/test splits and mini-batch orders.
//!
//! All randomness comes from [`ff_core::rng::rng_for`] (ChaCha8) and is consumed by the
//! shuffles of [`ff_core::rng`] (Fisher-Yates with Lemire's unbiased bounded draw, re-exported
//! here), not by `rand`'s `SliceRandom`, whose algorithm may change between `rand` versions: the
//! same seed gives the same split on every platform and with every dependency version. The
//! per-epoch order lives in `ff-core` so that [`ff_core::Network::fit`] shuffles exactly as the
//! trainer does.

use crate::error::DataError;
use ff_core::rng::rng_for;
pub use ff_core::rng::{epoch_order, permutation, shuffle_in_place, MiniBatches};

/// RNG purpose tag of [`crate::Dataset::split`].
pub const PURPOSE_SPLIT: &str = "ff-data/split";

/// Number of test samples for a split of `n` samples: `ceil(test_fraction * n)`, the convention
/// of scikit-learn's `train_test_split` (258 vowel tokens at 0.2 give 52 test, 206 train).
///
/// # Errors
/// [`DataError::Invalid`] if `test_fraction` is not in `(0, 1)` or either side would be empty.
pub fn test_count(n: usize, test_fraction: f64) -> Result<usize, DataError> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(DataError::invalid(
            "test_fraction",
            format!("must be strictly between 0 and 1, got {test_fraction}"),
        ));
    }
    let n_test = (test_fraction * n as f64).ceil() as usize;
    if n_test == 0 || n_test >= n {
        return Err(DataError::invalid(
            "test_fraction",
            format!(
                "{test_fraction} of {n} samples leaves {n_test} for testing and {} for training; \
                 both must be non-empty",
                n.saturating_sub(n_test)
            ),
        ));
    }
    Ok(n_test)
}

/// Splits the indices `0..labels.len()` into `(train, test)`, with `ceil(test_fraction * n)` test
/// indices, deterministically from `seed`.
///
/// - Not stratified: one random permutation; the first `n - n_test` entries train, the rest test.
/// - Stratified: each class gets a test share proportional to its size (largest-remainder rounding,
///   ties to the lower class index), drawn at random within the class; both lists are then
///   shuffled so that classes are interleaved.
///
/// Both lists come out in random order (not sorted).
///
/// # Errors
/// [`DataError::Invalid`] as [`test_count`], or if a label is `>= num_classes`.
pub fn split_indices(
    labels: &[usize],
    num_classes: usize,
    test_fraction: f64,
    seed: u64,
    stratified: bool,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let n = labels.len();
    let n_test = test_count(n, test_fraction)?;
    let mut rng = rng_for(seed, PURPOSE_SPLIT);
    if !stratified {
        let mut p = permutation(n, &mut rng);
        let test = p.split_off(n - n_test);
        return Ok((p, test));
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &c) in labels.iter().enumerate() {
        match by_class.get_mut(c) {
            Some(v) => v.push(i),
            None => {
                return Err(DataError::invalid(
                    "labels",
                    format!("label {c} of sample {i} is out of range 0..{num_classes}"),
                ))
            }
        }
    }
    // Largest-remainder allocation of n_test over the classes.
    let mut quota: Vec<usize> = Vec::with_capacity(num_classes);
    let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(num_classes);
    for (c, members) in by_class.iter().enumerate() {
        let num = n_test as u128 * members.len() as u128;
        quota.push((num / n as u128) as usize);
        remainders.push((num % n as u128, c));
    }
    let mut left = n_test - quota.iter().sum::<usize>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(r, c) in &remainders {
        if left == 0 {
            break;
        }
        if r > 0 {
            quota[c] += 1;
            left -= 1;
        }
    }
    let mut train = Vec::with_capacity(n - n_test);
    let mut test = Vec::with_capacity(n_test);
    for (c, members) in by_class.iter_mut().enumerate() {
        shuffle_in_place(members, &mut rng);
        let k = members.len() - quota[c];
        train.extend_from_slice(&members[..k]);
        test.extend_from_slice(&members[k..]);
    }
    shuffle_in_place(&mut train, &mut rng);
    shuffle_in_place(&mut test, &mut rng);
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_count_follows_ceil_convention_and_rejects_bad_fractions() {
        assert_eq!(test_count(258, 0.2).unwrap(), 52);
        assert_eq!(test_count(1797, 0.2).unwrap(), 360);
        assert_eq!(test_count(10, 0.25).unwrap(), 3);
        for bad in [0.0, 1.0, -0.1, f64::NAN, 1.5] {
            assert!(test_count(10, bad).is_err(), "{bad}");
        }
        assert!(test_count(1, 0.5).is_err());
        assert!(test_count(0, 0.5).is_err());
    }

    #[test]
    fn stratified_split_keeps_class_proportions() {
        // 3 classes of sizes 50, 30, 20; 20 % test -> 10, 6, 4.
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i >= 50) + usize::from(i >= 80)).collect();
        let (train, test) = split_indices(&labels, 3, 0.2, 9, true).unwrap();
        assert_eq!(test.len(), 20);
        assert_eq!(train.len(), 80);
        let count = |idx: &[usize], c: usize| idx.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!([count(&test, 0), count(&test, 1), count(&test, 2)], [10, 6, 4]);
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn stratified_rounding_hits_the_exact_test_count() {
        // 7 classes of 37 and one of 36 (like the vowels), 20 %: ceil(0.2 * 295) = 59.
        let mut labels = Vec::new();
        for c in 0..8 {
            labels.extend(std::iter::repeat_n(c, if c == 7 { 36 } else { 37 }));
        }
        let (train, test) = split_indices(&labels, 8, 0.2, 1, true).unwrap();
        assert_eq!(test.len(), 59);
        assert_eq!(train.len(), labels.len() - 59);
        for c in 0..8 {
            let k = test.iter().filter(|&&i| labels[i] == c).count();
            assert!((7..=8).contains(&k), "class {c}: {k} test samples");
        }
    }

    #[test]
    fn out_of_range_label_is_an_error() {
        assert!(split_indices(&[0, 1, 5], 2, 0.5, 0, true).is_err());
    }
}

//! The vowel preprocessing of the public PhyLL code.

use super::PAPER_RESERVED_LEADING;
use crate::dataset::{Dataset, Layout, TrainTest};
use crate::error::DataError;
use crate::split::permutation;
use ff_core::rng::rng_for;
use ff_core::{Matrix, Real};

/// The preprocessing of the public PhyLL code (`load_Vowel` in `Acoustic/acoustics_pnn.py`),
/// step by step:
/// 1. shuffle the tokens (seeded: `rng_for(seed, "ff-data/vowels-paper")`);
/// 2. z-score each feature over **all** tokens (population standard deviation, as numpy's
///    `std`), before the split, as the public code does;
/// 3. subtract the global minimum over all features and tokens, so every entry is `>= 0`;
/// 4. split: the first `floor(0.8 n)` shuffled tokens train, the rest test (206 / 52 for 258);
/// 5. prepend [`PAPER_RESERVED_LEADING`] = 8 zeros to each vector (12 features become 20
///    entries; `Layout::Vector { reserved_leading: 8 }`), where the trainer writes the label.
///
/// The arithmetic is done in `f64`, then converted to `F`.
///
/// # Errors
/// [`DataError::Invalid`] if `data` has fewer than 2 samples, reserved leading entries already,
/// or a constant feature (its z-score is undefined).
pub fn paper_preprocess<F: Real>(data: &Dataset<F>, seed: u64) -> Result<TrainTest<F>, DataError> {
    let n = data.len();
    let d = data.dim();
    if n < 2 {
        return Err(DataError::invalid(
            "vowel data",
            format!("the paper's preprocessing needs at least 2 tokens, got {n}"),
        ));
    }
    if data.layout != (Layout::Vector { reserved_leading: 0 }) {
        return Err(DataError::invalid(
            "vowel data",
            format!("expected raw feature vectors, got layout {:?}", data.layout),
        ));
    }
    let order = permutation(n, &mut rng_for(seed, "ff-data/vowels-paper"));
    let mut z: Vec<f64> = Vec::with_capacity(n * d);
    for &i in &order {
        z.extend(data.x.row(i).iter().map(|v| v.to_f64().unwrap_or(f64::NAN)));
    }
    for j in 0..d {
        let mean = (0..n).map(|i| z[i * d + j]).sum::<f64>() / n as f64;
        let var = (0..n).map(|i| (z[i * d + j] - mean).powi(2)).sum::<f64>() / n as f64;
        let std = var.sqrt();
        if !(std > 0.0 && std.is_finite()) {
            return Err(DataError::invalid(
                "vowel data",
                format!("feature {j} has standard deviation {std}; cannot z-score it"),
            ));
        }
        for i in 0..n {
            z[i * d + j] = (z[i * d + j] - mean) / std;
        }
    }
    let min = z.iter().copied().fold(f64::INFINITY, f64::min);
    let r = PAPER_RESERVED_LEADING;
    let n_train = n * 4 / 5;
    let part = |rows: std::ops::Range<usize>| -> Dataset<F> {
        let m = rows.len();
        let mut x = Matrix::zeros(m, r + d);
        for (out, i) in rows.clone().enumerate() {
            for (dst, &v) in x.row_mut(out)[r..].iter_mut().zip(&z[i * d..(i + 1) * d]) {
                *dst = F::c(v - min);
            }
        }
        Dataset {
            name: data.name.clone(),
            x,
            y: rows.map(|i| data.y[order[i]]).collect(),
            num_classes: data.num_classes,
            class_names: data.class_names.clone(),
            layout: Layout::Vector { reserved_leading: r },
        }
    };
    Ok(TrainTest { train: part(0..n_train), test: part(n_train..n) })
}

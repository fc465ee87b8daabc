//! Goodness functions: the per-sample scalar a block's local objective is built from.

use crate::activation::Activation;
use crate::real::Real;
use serde::{Deserialize, Serialize};

/// Denominator floor of the cosine similarity (PyTorch's `CosineSimilarity(eps=1e-6)`).
pub const COSINE_EPS: f64 = 1e-6;

/// How a block scores its output `z` (one sample, a vector).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Goodness {
    /// PhyLL: `g = cos(f(z), xi) = <f(z), xi> / (max(|f(z)|, eps) |xi|)` with `f` the
    /// activation (`abs` in the paper) and `xi` the block's fixed random prototype.
    /// Range `[-1, 1]` (`[0, 1]` for non-negative activations and a prototype of any sign).
    Cosine {
        /// Rectification applied to `z` before the cosine (paper: `abs`).
        activation: Activation,
    },
    /// Hinton: `g = mean_i f(z_i)^2`.
    MeanSquares {
        /// Activation applied to `z` (Hinton: `relu`).
        activation: Activation,
    },
    /// Hinton: `g = sum_i f(z_i)^2`.
    SumSquares {
        /// Activation applied to `z` (Hinton: `relu`).
        activation: Activation,
    },
}

impl Default for Goodness {
    fn default() -> Self {
        Goodness::Cosine { activation: Activation::Abs }
    }
}

impl Goodness {
    /// The activation this goodness applies to `z`.
    pub fn activation(&self) -> Activation {
        match *self {
            Goodness::Cosine { activation }
            | Goodness::MeanSquares { activation }
            | Goodness::SumSquares { activation } => activation,
        }
    }

    /// Whether this goodness uses the block's prototype vector.
    pub fn uses_prototype(&self) -> bool {
        matches!(self, Goodness::Cosine { .. })
    }

    /// Goodness of one sample `z`; if `dz` is given, writes `dg/dz` into it.
    ///
    /// `prototype` is only read by [`Goodness::Cosine`] and must then have `z.len()` entries.
    ///
    /// # Panics
    /// If `dz` (when given) or the prototype (for `Cosine`) has a different length than `z`.
    pub fn eval<F: Real>(&self, z: &[F], prototype: &[F], dz: Option<&mut [F]>) -> F {
        match *self {
            Goodness::Cosine { activation } => cosine(activation, z, prototype, dz),
            Goodness::MeanSquares { activation } => {
                let scale = F::one() / F::from_usize(z.len().max(1)).unwrap();
                squares(activation, z, scale, dz)
            }
            Goodness::SumSquares { activation } => squares(activation, z, F::one(), dz),
        }
    }
}

fn cosine<F: Real>(act: Activation, z: &[F], xi: &[F], dz: Option<&mut [F]>) -> F {
    assert_eq!(z.len(), xi.len(), "prototype length must match the block output");
    let eps = F::c(COSINE_EPS);
    let (mut dot, mut aa, mut xx) = (F::zero(), F::zero(), F::zero());
    for (&zi, &p) in z.iter().zip(xi) {
        let a = act.apply(zi);
        dot += a * p;
        aa += a * a;
        xx += p * p;
    }
    let na = aa.sqrt();
    let nx = xx.sqrt().max(eps);
    let clamped = na <= eps;
    let den = na.max(eps) * nx;
    let g = dot / den;
    if let Some(dz) = dz {
        assert_eq!(dz.len(), z.len());
        // dg/da = xi / den - g * a / |a|^2 (the second term vanishes when |a| is clamped).
        let c2 = if clamped { F::zero() } else { g / aa };
        for ((d, &zi), &p) in dz.iter_mut().zip(z).zip(xi) {
            let a = act.apply(zi);
            *d = (p / den - c2 * a) * act.derivative(zi);
        }
    }
    g
}

fn squares<F: Real>(act: Activation, z: &[F], scale: F, dz: Option<&mut [F]>) -> F {
    let mut s = F::zero();
    for &zi in z {
        let a = act.apply(zi);
        s += a * a;
    }
    if let Some(dz) = dz {
        assert_eq!(dz.len(), z.len());
        let two = F::c(2.0) * scale;
        for (d, &zi) in dz.iter_mut().zip(z) {
            *d = two * act.apply(zi) * act.derivative(zi);
        }
    }
    s * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fd_check(g: Goodness, z: &[f64], xi: &[f64]) -> Result<(), TestCaseError> {
        let mut dz = vec![0.0; z.len()];
        g.eval(z, xi, Some(&mut dz));
        let h = 1e-6;
        for i in 0..z.len() {
            let mut zp = z.to_vec();
            let mut zm = z.to_vec();
            zp[i] += h;
            zm[i] -= h;
            let fd = (g.eval(&zp, xi, None) - g.eval(&zm, xi, None)) / (2.0 * h);
            // Relative bound 1e-5 (central differences in f64, smooth region).
            prop_assert!((fd - dz[i]).abs() <= 1e-5 * (1.0 + dz[i].abs()), "{g:?} entry {i}: fd {fd} vs {}", dz[i]);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn goodness_gradients_match_finite_differences(
            z in proptest::collection::vec(prop_oneof![-3.0f64..-0.01, 0.01f64..3.0], 1..12),
            seed in 0u64..1000,
            k in 0usize..6,
        ) {
            let xi: Vec<f64> = (0..z.len()).map(|i| ((i as u64 * 7919 + seed) % 200) as f64 / 100.0 - 1.0).collect();
            let acts = [Activation::Abs, Activation::Gelu];
            let g = match k { 0 | 1 => Goodness::Cosine { activation: acts[k] },
                2 | 3 => Goodness::MeanSquares { activation: acts[k - 2] },
                4 => Goodness::SumSquares { activation: Activation::Relu },
                _ => Goodness::SumSquares { activation: Activation::Identity } };
            fd_check(g, &z, &xi)?;
        }
    }

    #[test]
    fn cosine_of_aligned_vectors_is_one() {
        let g = Goodness::default();
        let xi = [0.6, 0.8];
        assert!((g.eval(&[-3.0f64, 4.0], &xi, None) - 1.0).abs() < 1e-12);
        assert!((g.eval(&[0.0f64, 0.0], &xi, None)).abs() < 1e-12);
        let s = Goodness::MeanSquares { activation: Activation::Relu };
        assert_eq!(s.eval(&[-1.0f64, 2.0], &[], None), 2.0);
    }
}

//! Goodness functions: the per-sample scalar a block's local objective is built from.

use crate::activation::Activation;
use crate::real::Real;
use rayon::prelude::*;
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

impl Goodness {
    /// Goodness and gradient of a whole batch stored feature-major: `zt` is `d x n` row-major,
    /// row `j` holding feature `j` of all `n` samples (the transpose of the usual batch
    /// layout, as `W U^T` produces it). Pushes the `n` goodness values onto `g` and replaces
    /// `zt` by `dg/dz` in the same layout. Each sample's sums run over its features in order,
    /// exactly as in [`Goodness::eval`], so the result is bit for bit the per-sample one; the
    /// loops run across samples, contiguous in memory, and vectorise.
    ///
    /// `scratch` holds per-sample temporaries (reused between calls).
    ///
    /// # Panics
    /// If `zt.len()` is not a multiple of `n`, or (cosine) the number of features differs from
    /// `prototype.len()`.
    pub fn eval_columns_with_grad<F: Real>(
        &self,
        zt: &mut [F],
        n: usize,
        prototype: &[F],
        g: &mut Vec<F>,
        scratch: &mut ColumnScratch<F>,
    ) {
        self.eval_columns_impl(zt, n, prototype, g, scratch, true);
    }

    /// [`Goodness::eval_columns_with_grad`], split over threads only if `allow_split` (the
    /// result is the same bits either way).
    pub(crate) fn eval_columns_impl<F: Real>(
        &self,
        zt: &mut [F],
        n: usize,
        prototype: &[F],
        g: &mut Vec<F>,
        scratch: &mut ColumnScratch<F>,
        allow_split: bool,
    ) {
        if n == 0 {
            return;
        }
        assert_eq!(zt.len() % n, 0, "{} values are not whole columns of {n} samples", zt.len());
        let d = zt.len() / n;
        let start = g.len();
        g.resize(start + n, F::zero());
        let g = &mut g[start..];
        let (act, kind) = match *self {
            Goodness::Cosine { activation } => {
                assert_eq!(d, prototype.len(), "prototype length must match the block output");
                (activation, Kind::Cosine)
            }
            Goodness::MeanSquares { activation } => {
                (activation, Kind::Squares(F::one() / F::from_usize(d.max(1)).unwrap()))
            }
            Goodness::SumSquares { activation } => (activation, Kind::Squares(F::one())),
        };
        scratch.a.resize(n, F::zero());
        scratch.b.resize(n, F::zero());
        // Samples are independent: large batches are cut into blocks of columns, one per
        // thread (the result does not depend on the cut).
        let parts = if allow_split && n * d >= PARALLEL_MIN_VALUES {
            rayon::current_num_threads().min(n / 32).max(1)
        } else {
            1
        };
        let width = n.div_ceil(parts);
        let mut blocks: Vec<ColumnBlock<'_, F>> = g
            .chunks_mut(width)
            .zip(scratch.a.chunks_mut(width))
            .zip(scratch.b.chunks_mut(width))
            .map(|((g, s1), s2)| ColumnBlock { rows: Vec::with_capacity(d), g, s1, s2 })
            .collect();
        for row in zt.chunks_exact_mut(n) {
            for (block, piece) in blocks.iter_mut().zip(row.chunks_mut(width)) {
                block.rows.push(piece);
            }
        }
        let run = |block: &mut ColumnBlock<'_, F>| {
            // One copy of the loops per activation, so they hold no dispatch.
            match act {
                Activation::Abs => columns(Activation::Abs, kind, prototype, block),
                Activation::Relu => columns(Activation::Relu, kind, prototype, block),
                Activation::Gelu => columns(Activation::Gelu, kind, prototype, block),
                Activation::Identity => columns(Activation::Identity, kind, prototype, block),
                Activation::Silu => columns(Activation::Silu, kind, prototype, block),
            }
        };
        if blocks.len() > 1 {
            blocks.par_iter_mut().for_each(run);
        } else {
            blocks.iter_mut().for_each(run);
        }
    }
}

/// Values (features x samples) from which [`Goodness::eval_columns_with_grad`] splits a batch
/// over threads.
const PARALLEL_MIN_VALUES: usize = 1 << 12;

/// Some columns (samples) of a feature-major batch: a piece of every feature row, with the
/// matching goodness outputs and per-sample temporaries.
struct ColumnBlock<'a, F> {
    rows: Vec<&'a mut [F]>,
    g: &'a mut [F],
    s1: &'a mut [F],
    s2: &'a mut [F],
}

/// Per-sample temporaries of [`Goodness::eval_columns_with_grad`].
#[derive(Clone, Debug)]
pub struct ColumnScratch<F> {
    a: Vec<F>,
    b: Vec<F>,
}

impl<F> Default for ColumnScratch<F> {
    fn default() -> Self {
        ColumnScratch { a: Vec::new(), b: Vec::new() }
    }
}

#[derive(Clone, Copy)]
enum Kind<F> {
    Cosine,
    /// Sum of squares times this scale.
    Squares(F),
}

#[inline(always)]
fn columns<F: Real>(act: Activation, kind: Kind<F>, xi: &[F], block: &mut ColumnBlock<'_, F>) {
    let ColumnBlock { rows, g, s1, s2 } = block;
    match kind {
        Kind::Cosine => {
            let eps = F::c(COSINE_EPS);
            // The same sequential sums as `cosine`, one per sample: dot in `g`, |a|^2 in `s1`.
            let mut xx = F::zero();
            for &p in xi {
                xx += p * p;
            }
            let nx = xx.sqrt().max(eps);
            g.fill(F::zero());
            s1.fill(F::zero());
            for (row, &p) in rows.iter().zip(xi) {
                for ((dot, aa), &z) in g.iter_mut().zip(s1.iter_mut()).zip(row.iter()) {
                    let a = act.apply(z);
                    *dot += a * p;
                    *aa += a * a;
                }
            }
            // g <- dot / den; s1 <- c2 = g / |a|^2 (0 when the norm is clamped); s2 <- den.
            for ((gi, aa), den) in g.iter_mut().zip(s1.iter_mut()).zip(s2.iter_mut()) {
                let na = aa.sqrt();
                let clamped = na <= eps;
                *den = na.max(eps) * nx;
                *gi /= *den;
                *aa = if clamped { F::zero() } else { *gi / *aa };
            }
            for (row, &p) in rows.iter_mut().zip(xi) {
                for ((z, &c2), &den) in row.iter_mut().zip(s1.iter()).zip(s2.iter()) {
                    let zi = *z;
                    let a = act.apply(zi);
                    *z = (p / den - c2 * a) * act.derivative(zi);
                }
            }
        }
        Kind::Squares(scale) => {
            s1.fill(F::zero());
            for row in rows.iter() {
                for (s, &z) in s1.iter_mut().zip(row.iter()) {
                    let a = act.apply(z);
                    *s += a * a;
                }
            }
            for (gi, &s) in g.iter_mut().zip(s1.iter()) {
                *gi = s * scale;
            }
            let two = F::c(2.0) * scale;
            for row in rows.iter_mut() {
                for z in row.iter_mut() {
                    let zi = *z;
                    *z = two * act.apply(zi) * act.derivative(zi);
                }
            }
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

    proptest! {
        /// The feature-major batch form is bit for bit the per-sample one, for every goodness,
        /// including all-zero samples (the clamped cosine norm).
        #[test]
        fn columns_match_per_sample_evaluation(n in 0usize..40, d in 1usize..9, seed in 0u64..1000, k in 0usize..5) {
            let val = |i: usize| ((i as u64 * 2654435761 + seed * 97) % 2001) as f32 / 500.0 - 2.0;
            let g = [Goodness::default(), Goodness::Cosine { activation: Activation::Gelu },
                Goodness::MeanSquares { activation: Activation::Relu }, Goodness::SumSquares { activation: Activation::Gelu },
                Goodness::SumSquares { activation: Activation::Identity }][k];
            let xi: Vec<f32> = (0..d).map(|i| val(i + 7777)).collect();
            // Sample-major rows; sample 2 all zero.
            let mut z: Vec<f32> = (0..n * d).map(val).collect();
            if n > 2 {
                z[2 * d..3 * d].fill(0.0);
            }
            let mut want_g = vec![9.0f32];
            let mut want_dz = z.clone();
            let mut row_grad = vec![0.0; d];
            for row in want_dz.chunks_exact_mut(d) {
                want_g.push(g.eval(row, &xi, Some(&mut row_grad)));
                row.copy_from_slice(&row_grad);
            }
            let mut zt: Vec<f32> = (0..d * n).map(|t| z[(t % n.max(1)) * d + t / n.max(1)]).collect();
            let mut got_g = vec![9.0f32];
            g.eval_columns_with_grad(&mut zt, n, &xi, &mut got_g, &mut ColumnScratch::default());
            let got_dz: Vec<f32> = (0..n * d).map(|t| zt[(t % d) * n + t / d]).collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got_g), bits(&want_g));
            prop_assert_eq!(bits(&got_dz), bits(&want_dz));
        }
    }

    /// A batch large enough to be cut over threads gives the single-block result bit for bit.
    #[test]
    fn split_batches_match_one_block() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let (n, d) = (2_011, 20);
        let val = |i: usize| ((i as u64 * 2654435761) % 2001) as f32 / 500.0 - 2.0;
        let xi: Vec<f32> = (0..d).map(|i| val(i + 7777)).collect();
        for g in [Goodness::default(), Goodness::SumSquares { activation: Activation::Relu }] {
            let zt: Vec<f32> = (0..n * d).map(val).collect();
            let (mut z1, mut g1) = (zt.clone(), vec![7.0f32]);
            one.install(|| g.eval_columns_with_grad(&mut z1, n, &xi, &mut g1, &mut ColumnScratch::default()));
            let (mut z3, mut g3) = (zt.clone(), vec![7.0f32]);
            pool.install(|| g.eval_columns_with_grad(&mut z3, n, &xi, &mut g3, &mut ColumnScratch::default()));
            assert_eq!(g1, g3, "{g:?}");
            assert_eq!(z1, z3, "{g:?}");
            assert_eq!(g3.len(), n + 1);
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

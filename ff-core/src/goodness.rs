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
    /// For a batch `z` of rows of width `prototype.len()` (or any width for the squares
    /// goodnesses, with `width`), pushes each row's goodness onto `g` and replaces the row by
    /// `dg/dz`. Bit for bit what [`Goodness::eval`] gives row by row; the cosine handles
    /// [`ROW_BLOCK`] rows at once so that their independent sums overlap in the pipeline
    /// (each row keeps its own summation order).
    ///
    /// # Panics
    /// If `z.len()` is not a multiple of `width`, or (cosine) `width != prototype.len()`.
    pub fn eval_rows_with_grad<F: Real>(&self, z: &mut [F], width: usize, prototype: &[F], g: &mut Vec<F>) {
        assert!(width > 0 && z.len() % width == 0, "rows of width {width} do not tile {} values", z.len());
        let rows = z.len() / width;
        let start = g.len();
        g.resize(start + rows, F::zero());
        let out = &mut g[start..];
        // Large batches: blocks of rows on rayon's threads (every row is independent, so the
        // result does not depend on the split).
        let per_part = (PARALLEL_MIN_VALUES / width).next_multiple_of(ROW_BLOCK).max(ROW_BLOCK);
        if rows >= 2 * per_part && rayon::current_num_threads() > 1 {
            z.par_chunks_mut(per_part * width)
                .zip(out.par_chunks_mut(per_part))
                .for_each(|(zc, gc)| self.rows_serial(zc, width, prototype, gc));
        } else {
            self.rows_serial(z, width, prototype, out);
        }
    }

    fn rows_serial<F: Real>(&self, z: &mut [F], width: usize, prototype: &[F], g: &mut [F]) {
        match *self {
            Goodness::Cosine { activation } => cosine_rows(activation, z, width, prototype, g),
            _ => {
                let mut row_grad = vec![F::zero(); width];
                for (row, gi) in z.chunks_exact_mut(width).zip(g) {
                    *gi = self.eval(row, prototype, Some(&mut row_grad));
                    row.copy_from_slice(&row_grad);
                }
            }
        }
    }
}

/// Values (rows x width) per thread below which [`Goodness::eval_rows_with_grad`] stays on the
/// calling thread.
const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// Rows of a batch the blocked cosine processes together.
pub const ROW_BLOCK: usize = 8;

fn cosine_rows<F: Real>(act: Activation, z: &mut [F], d: usize, xi: &[F], g: &mut [F]) {
    // One copy of the loop per activation, so the element loops hold no dispatch.
    match act {
        Activation::Abs => cosine_rows_for(Activation::Abs, z, d, xi, g),
        Activation::Relu => cosine_rows_for(Activation::Relu, z, d, xi, g),
        Activation::Gelu => cosine_rows_for(Activation::Gelu, z, d, xi, g),
        Activation::Identity => cosine_rows_for(Activation::Identity, z, d, xi, g),
        Activation::Silu => cosine_rows_for(Activation::Silu, z, d, xi, g),
    }
}

#[inline(always)]
fn cosine_rows_for<F: Real>(act: Activation, z: &mut [F], d: usize, xi: &[F], g: &mut [F]) {
    assert_eq!(d, xi.len(), "prototype length must match the block output");
    let eps = F::c(COSINE_EPS);
    // The same sequential sum as `cosine` accumulates alongside the others.
    let mut xx = F::zero();
    for &p in xi {
        xx += p * p;
    }
    let nx = xx.sqrt().max(eps);
    let mut blocks = z.chunks_exact_mut(ROW_BLOCK * d);
    let mut gs = g.chunks_exact_mut(ROW_BLOCK);
    for (block, gb) in (&mut blocks).zip(&mut gs) {
        let (mut dot, mut aa) = ([F::zero(); ROW_BLOCK], [F::zero(); ROW_BLOCK]);
        for (j, &p) in xi.iter().enumerate() {
            for r in 0..ROW_BLOCK {
                let a = act.apply(block[r * d + j]);
                dot[r] += a * p;
                aa[r] += a * a;
            }
        }
        for r in 0..ROW_BLOCK {
            let na = aa[r].sqrt();
            let clamped = na <= eps;
            let den = na.max(eps) * nx;
            let gr = dot[r] / den;
            gb[r] = gr;
            let c2 = if clamped { F::zero() } else { gr / aa[r] };
            for (zv, &p) in block[r * d..(r + 1) * d].iter_mut().zip(xi) {
                let zi = *zv;
                let a = act.apply(zi);
                *zv = (p / den - c2 * a) * act.derivative(zi);
            }
        }
    }
    let mut row_grad = [F::zero(); 64];
    for (row, gi) in blocks.into_remainder().chunks_exact_mut(d).zip(gs.into_remainder()) {
        if d <= row_grad.len() {
            *gi = cosine(act, row, xi, Some(&mut row_grad[..d]));
            row.copy_from_slice(&row_grad[..d]);
        } else {
            let mut rg = vec![F::zero(); d];
            *gi = cosine(act, row, xi, Some(&mut rg));
            row.copy_from_slice(&rg);
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
        /// The batched form is bit for bit the row-by-row one, for every goodness, ragged
        /// row counts (not multiples of the row block) and zero rows (the clamped norm).
        #[test]
        fn batched_rows_match_row_by_row(rows in 0usize..20, d in 1usize..9, seed in 0u64..1000, k in 0usize..4) {
            let val = |i: usize| ((i as u64 * 2654435761 + seed * 97) % 2001) as f32 / 500.0 - 2.0;
            let g = [Goodness::default(), Goodness::Cosine { activation: Activation::Gelu },
                Goodness::MeanSquares { activation: Activation::Relu }, Goodness::SumSquares { activation: Activation::Gelu }][k];
            let xi: Vec<f32> = (0..d).map(|i| val(i + 7777)).collect();
            let mut z: Vec<f32> = (0..rows * d).map(val).collect();
            if rows > 2 {
                z[d..2 * d].fill(0.0);
            }
            let mut want_g = Vec::new();
            let mut want_z = z.clone();
            let mut row_grad = vec![0.0; d];
            for row in want_z.chunks_exact_mut(d) {
                want_g.push(g.eval(row, &xi, Some(&mut row_grad)));
                row.copy_from_slice(&row_grad);
            }
            let mut got_g = Vec::new();
            g.eval_rows_with_grad(&mut z, d, &xi, &mut got_g);
            prop_assert_eq!(got_g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want_g.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            prop_assert_eq!(z.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want_z.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    /// A batch large enough to be split over threads gives the serial result bit for bit, and
    /// appends after what `g` already holds.
    #[test]
    fn split_batches_match_the_serial_pass() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let (rows, d) = (20_011, 20);
        let val = |i: usize| ((i as u64 * 2654435761) % 2001) as f32 / 500.0 - 2.0;
        let xi: Vec<f32> = (0..d).map(|i| val(i + 7777)).collect();
        for g in [Goodness::default(), Goodness::SumSquares { activation: Activation::Relu }] {
            let z: Vec<f32> = (0..rows * d).map(val).collect();
            let (mut zs, mut gs) = (z.clone(), vec![7.0f32]);
            let mut want = vec![0.0f32; rows];
            let mut zw = z.clone();
            g.rows_serial(&mut zw, d, &xi, &mut want);
            pool.install(|| g.eval_rows_with_grad(&mut zs, d, &xi, &mut gs));
            assert_eq!(gs[0], 7.0);
            assert_eq!(&gs[1..], &want[..], "{g:?}");
            assert_eq!(zs, zw, "{g:?}");
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

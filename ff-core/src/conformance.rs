//! The conformance check every [`PhysicalSystem`] implementation runs in its tests.
//!
//! It verifies, for a system built twice from the same configuration and seed:
//! - the declared lengths are positive and the output buffer is filled with finite values;
//! - the same query sequence gives the same bits (determinism under a seed);
//! - for systems declared stateless (noiseless simulators; not noise or drift wrappers), a
//!   batch gives the same answer as its rows queried one at a time;
//! - wrong input/output widths, mismatched batch sizes and NaN inputs are errors, not panics;
//! - the type is `Send + Sync` (checked at compile time by the bound).

use crate::matrix::Matrix;
use crate::real::Real;
use crate::system::PhysicalSystem;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Options of [`check_conformance`].
#[derive(Clone, Debug)]
pub struct Conformance {
    /// Rows of the test batches.
    pub batch: usize,
    /// Inputs are drawn uniformly from `[lo, hi)`.
    pub input_range: (f64, f64),
    /// Whether the system's answer to a row is independent of the other rows and of earlier
    /// queries (true for noiseless simulators). Then the batch answer must equal the
    /// row-by-row answers bit for bit.
    pub stateless: bool,
}

impl Default for Conformance {
    fn default() -> Self {
        Conformance { batch: 5, input_range: (0.0, 1.0), stateless: true }
    }
}

/// Runs the conformance check on systems produced by `make` (called twice; both must be
/// built from the same configuration and seed).
///
/// # Panics
/// On any violation, with a message naming it (this is a test helper).
pub fn check_conformance<F, S, M>(make: M, opts: &Conformance)
where
    F: Real,
    S: PhysicalSystem<F> + Send + Sync,
    M: Fn() -> S,
{
    let mut a = make();
    let mut b = make();
    let name = a.name();
    let (n_in, n_out) = (a.input_len(), a.output_len());
    assert!(n_in > 0 && n_out > 0, "{name}: lengths must be positive, got {n_in} -> {n_out}");
    assert_eq!((b.input_len(), b.output_len()), (n_in, n_out), "{name}: lengths differ between two builds");

    let mut rng = ChaCha8Rng::seed_from_u64(0xC0F0);
    let (lo, hi) = opts.input_range;
    let x = Matrix::<F>::from_fn(opts.batch, n_in, |_, _| F::c(lo + (hi - lo) * rng.random::<f64>()));

    let ya = a.forward(x.view()).unwrap_or_else(|e| panic!("{name}: valid query failed: {e}"));
    assert_eq!((ya.rows(), ya.cols()), (opts.batch, n_out), "{name}: output shape");
    if let Some((r, c, v)) = ya.find_non_finite() {
        panic!("{name}: non-finite output {v} at ({r}, {c})");
    }
    let yb = b.forward(x.view()).expect("second build answers");
    assert!(bitwise_eq(&ya, &yb), "{name}: two builds with the same seed answer differently");
    // A second query sequence must also agree between the two builds.
    let ya2 = a.forward(x.view()).expect("repeat query");
    let yb2 = b.forward(x.view()).expect("repeat query");
    assert!(bitwise_eq(&ya2, &yb2), "{name}: not deterministic over a query sequence");

    if opts.stateless {
        assert!(bitwise_eq(&ya, &ya2), "{name}: declared stateless but repeated query differs");
        for i in 0..opts.batch {
            let xi = x.slice_rows(i, i + 1);
            let yi = a.forward(xi.view()).expect("single-row query");
            for (p, q) in yi.data().iter().zip(ya.row(i)) {
                let (p, q) = (p.to_f64().unwrap(), q.to_f64().unwrap());
                assert!(
                    (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                    "{name}: row {i} alone ({p}) differs from the same row in a batch ({q})"
                );
            }
        }
    }

    // Bad input: errors, not panics.
    let wrong_in = Matrix::<F>::zeros(2, n_in + 1);
    assert!(a.forward(wrong_in.view()).is_err(), "{name}: accepted a too-wide input");
    let mut out_wrong = Matrix::<F>::zeros(2, n_out + 1);
    let ok_in = Matrix::<F>::zeros(2, n_in);
    assert!(a.forward_batch(ok_in.view(), out_wrong.view_mut()).is_err(), "{name}: accepted a too-wide output buffer");
    let mut out_rows = Matrix::<F>::zeros(3, n_out);
    assert!(a.forward_batch(ok_in.view(), out_rows.view_mut()).is_err(), "{name}: accepted a batch-size mismatch");
    let mut nan_in = x.clone();
    nan_in.data_mut()[0] = F::nan();
    assert!(a.forward(nan_in.view()).is_err(), "{name}: accepted a NaN input");
    // An empty batch is valid and yields an empty answer.
    let empty = Matrix::<F>::zeros(0, n_in);
    let ye = a.forward(empty.view()).unwrap_or_else(|e| panic!("{name}: empty batch failed: {e}"));
    assert_eq!(ye.rows(), 0);
}

fn bitwise_eq<F: Real>(a: &Matrix<F>, b: &Matrix<F>) -> bool {
    a.rows() == b.rows()
        && a.cols() == b.cols()
        && a.data().iter().zip(b.data()).all(|(x, y)| x.to_f64().unwrap().to_bits() == y.to_f64().unwrap().to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::{Identity, Zeros};

    #[test]
    fn digital_stand_ins_conform() {
        check_conformance::<f32, _, _>(|| Identity::new(7), &Conformance::default());
        check_conformance::<f64, _, _>(|| Zeros::new(3, 4), &Conformance::default());
    }
}

/// Checks a [`crate::system::Differentiable`] system's vector-Jacobian product against
/// central finite differences of its forward map, in `f64`, at random inputs drawn from
/// `input_range`, with random output cotangents.
///
/// The bound: for every input entry, `|vjp - fd| <= tol * (1 + max|vjp|)`; `tol` is the
/// caller's (finite differences with step `h` in f64 give about `1e-6` for smooth maps).
///
/// # Panics
/// When the bound is violated (this is a test helper).
pub fn check_vjp<S>(system: &mut S, input_range: (f64, f64), batch: usize, h: f64, tol: f64, seed: u64)
where
    S: crate::system::Differentiable<f64>,
{
    let name = system.name();
    let (n_in, n_out) = (system.input_len(), system.output_len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (lo, hi) = input_range;
    let x = Matrix::<f64>::from_fn(batch, n_in, |_, _| lo + (hi - lo) * rng.random::<f64>());
    let w = Matrix::<f64>::from_fn(batch, n_out, |_, _| rng.random::<f64>() * 2.0 - 1.0);
    let mut g = Matrix::<f64>::zeros(batch, n_in);
    system.vjp(x.view(), w.view(), g.view_mut()).unwrap_or_else(|e| panic!("{name}: vjp failed: {e}"));
    let scale = 1.0 + g.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for i in 0..batch {
        for j in 0..n_in {
            let (mut xp, mut xm) = (x.slice_rows(i, i + 1), x.slice_rows(i, i + 1));
            xp.data_mut()[j] += h;
            xm.data_mut()[j] -= h;
            let yp = system.forward(xp.view()).expect("forward");
            let ym = system.forward(xm.view()).expect("forward");
            let fd: f64 = (0..n_out).map(|k| w.get(i, k) * (yp.get(0, k) - ym.get(0, k)) / (2.0 * h)).sum();
            let an = g.get(i, j);
            assert!(
                (an - fd).abs() <= tol * scale,
                "{name}: vjp row {i} input {j}: analytic {an} vs finite difference {fd}"
            );
        }
    }
}

#[cfg(test)]
mod vjp_tests {
    use super::*;
    use crate::system::{Identity, Zeros};

    #[test]
    fn stand_in_vjps_match_finite_differences() {
        check_vjp(&mut Identity::new(4), (-1.0, 1.0), 3, 1e-6, 1e-6, 1);
        check_vjp(&mut Zeros::new(3, 2), (-1.0, 1.0), 2, 1e-6, 1e-6, 2);
    }
}

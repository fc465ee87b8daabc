//! # ff-bench: benchmarks of phyff
//!
//! Criterion benches live in `benches/`; this library holds the shared set-ups so that the
//! benches and `cargo xtask roofline` measure the same thing. Run `cargo bench -p ff-bench`.
//!
//! Each fast kernel is measured against the machine's own limit, measured in the same run: the
//! peak of a fused multiply-add loop on the widest vector unit present, on every thread
//! ([`peak`]), so a reader sees the ratio to that limit rather than an absolute number. The
//! GEMMs available (phyff's, the `gemm` crate, `matrixmultiply`) are compared on the shapes
//! that matter ([`gemms`]).

pub mod gemms;
pub mod methods;
pub mod peak;
pub mod roofline;

use ff_core::rng::rng_for;
use ff_core::{Goodness, LocalLayer, Loss, Matrix, Real};
use rand::Rng;

/// A random `rows x cols` matrix with entries uniform in `[-1, 1)` (seeded).
pub fn random_matrix<F: Real>(rows: usize, cols: usize, seed: u64) -> Matrix<F> {
    let mut rng = rng_for(seed, "bench-matrix");
    Matrix::from_fn(rows, cols, |_, _| F::c(rng.random_range(-1.0..1.0)))
}

/// The inputs of one forward-forward inner step: a PhyLL layer `d_in -> d_out` and paired
/// positive/negative physical outputs of `n` samples.
pub struct FfStep<F: Real> {
    /// The layer being trained.
    pub layer: LocalLayer<F>,
    /// Physical outputs of the positives.
    pub up: Matrix<F>,
    /// Physical outputs of the negatives.
    pub un: Matrix<F>,
    /// The SymBa loss (alpha = 5, optics).
    pub loss: Loss,
}

impl<F: Real> FfStep<F> {
    /// A seeded set-up.
    pub fn new(n: usize, d_in: usize, d_out: usize) -> Self {
        let layer =
            LocalLayer::new(d_in, d_out, Goodness::default(), &mut rng_for(1, "init"), &mut rng_for(1, "proto"))
                .expect("positive sizes");
        FfStep { layer, up: random_matrix(n, d_in, 2), un: random_matrix(n, d_in, 3), loss: Loss::Symba { alpha: 5.0 } }
    }

    /// GEMM floating-point operations of one inner step (the forward and the gradient GEMM on
    /// the stacked positives and negatives, `2 x 2 (2n) d_in d_out`): the work the step's
    /// rate is counted in.
    pub fn gemm_flops(&self) -> u64 {
        4 * 2 * (self.up.rows() * self.layer.d_in() * self.layer.d_out()) as u64
    }
}

/// FLOPs of a complex FFT of length `n` by the usual convention `5 n log2 n`.
pub fn fft_flops(n: usize) -> f64 {
    5.0 * n as f64 * (n as f64).log2()
}

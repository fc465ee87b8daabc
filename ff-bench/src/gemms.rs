//! The GEMMs the roofline compares on the same shapes: phyff's own `ff_core::gemm` (whichever
//! kernel it picked for this machine, `ff_core::matrix::kernel`), the `gemm` crate called
//! directly with its own threading (its widest kernels), and `matrixmultiply` split over rayon's
//! threads by blocks of rows or columns (`ff_core::gemm`'s kernel where AVX-512 is absent, and
//! everywhere before the `gemm` crate). All of them use every thread of the current rayon pool.
//!
//! A shape is `m x k x n`: `C (m x n) = op(A) (m x k) op(B) (k x n)`, all row-major, `2 m k n`
//! FLOPs.

use crate::random_matrix;
use ff_core::gemm_kernels::Kernel;
use ff_core::matrix::gemm_with;
use ff_core::{gemm, Matrix, Op, Real};
use std::time::Instant;

/// One GEMM implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmImpl {
    /// `ff_core::gemm`, as every phyff product calls it.
    Phyff,
    /// The `gemm` crate's kernel for the precision (`Real::gemm_crate_raw`, the whole inner
    /// dimension in one call), its own threads over the rayon pool.
    GemmCrate,
    /// `matrixmultiply` on one block of rows (or columns) of `C` per rayon thread
    /// (`ff_core::matrix::gemm_with` with `Kernel::Matrixmultiply`).
    Matrixmultiply,
}

impl GemmImpl {
    /// Every implementation, in the order reported.
    pub const ALL: [GemmImpl; 3] = [GemmImpl::Phyff, GemmImpl::GemmCrate, GemmImpl::Matrixmultiply];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            GemmImpl::Phyff => "phyff",
            GemmImpl::GemmCrate => "gemm crate",
            GemmImpl::Matrixmultiply => "matrixmultiply",
        }
    }
}

/// A product shape: `C (m x n) = op_a(A) op_b(B)` with inner dimension `k`.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// What the product is, for reports.
    pub label: String,
    /// Rows of `C`.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of `C`.
    pub n: usize,
    /// Whether `A` is stored `m x k` (`N`) or `k x m` (`T`).
    pub op_a: Op,
    /// Whether `B` is stored `k x n` (`N`) or `n x k` (`T`).
    pub op_b: Op,
}

impl Shape {
    /// A shape with a label.
    pub fn new(label: &str, m: usize, k: usize, n: usize, op_a: Op, op_b: Op) -> Self {
        Shape { label: label.into(), m, k, n, op_a, op_b }
    }

    /// FLOPs of one product, `2 m k n`.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    /// `m x k x n` with the transposes, e.g. `676x20000x676 NN`.
    pub fn dims(&self) -> String {
        let t = |o: Op| if o == Op::N { "N" } else { "T" };
        format!("{}x{}x{} {}{}", self.m, self.k, self.n, t(self.op_a), t(self.op_b))
    }

    /// The forward-forward inner step's two products on `2 n` stacked rows of a `d -> d` layer,
    /// as `LocalLayer::loss_and_grad_stacked` issues them: the forward `z^T = W U^T`
    /// (`d x d` by the transpose of the stored `2n x d` batch) and the weight gradient
    /// `dW = dZ^T U` (`d x 2n` feature-major derivatives by the `2n x d` batch).
    pub fn ff_step(n: usize, d: usize) -> [Shape; 2] {
        [
            Shape::new(&format!("FF forward W U^T (n = {n} pairs, d = {d})"), d, d, 2 * n, Op::N, Op::T),
            Shape::new(&format!("FF gradient dZ^T U (n = {n} pairs, d = {d})"), d, 2 * n, d, Op::N, Op::N),
        ]
    }
}

/// Random operands of a shape and the output, ready to run any implementation.
pub struct Operands<F> {
    shape: Shape,
    a: Matrix<F>,
    b: Matrix<F>,
    c: Matrix<F>,
}

impl<F: Real> Operands<F> {
    /// Seeded operands with entries uniform in `[-1, 1)`.
    pub fn new(shape: &Shape) -> Self {
        let s = shape;
        let a = if s.op_a == Op::N { random_matrix(s.m, s.k, 31) } else { random_matrix(s.k, s.m, 31) };
        let b = if s.op_b == Op::N { random_matrix(s.k, s.n, 32) } else { random_matrix(s.n, s.k, 32) };
        Operands { shape: s.clone(), a, b, c: Matrix::zeros(s.m, s.n) }
    }

    /// The last product computed.
    pub fn output(&self) -> &Matrix<F> {
        &self.c
    }

    /// `C = op(A) op(B)` by `imp`.
    pub fn run(&mut self, imp: GemmImpl) {
        let s = &self.shape;
        let (m, k, n) = (s.m, s.k, s.n);
        // Strides of op(A) and op(B) in the stored row-major matrices.
        let (rsa, csa) = if s.op_a == Op::N { (k as isize, 1) } else { (1, m as isize) };
        let (rsb, csb) = if s.op_b == Op::N { (n as isize, 1) } else { (1, k as isize) };
        let (pa, pb) = (self.a.data().as_ptr(), self.b.data().as_ptr());
        match imp {
            GemmImpl::Phyff => {
                gemm(F::one(), self.a.view(), s.op_a, self.b.view(), s.op_b, F::zero(), &mut self.c.view_mut())
            }
            GemmImpl::GemmCrate => {
                let pc = self.c.data_mut().as_mut_ptr();
                let threads = rayon::current_num_threads();
                // SAFETY: the strides describe the matrices built by `new` for this shape; C is
                // a distinct allocation.
                unsafe {
                    F::gemm_crate_raw(
                        m,
                        k,
                        n,
                        F::one(),
                        pa,
                        rsa,
                        csa,
                        pb,
                        rsb,
                        csb,
                        F::zero(),
                        pc,
                        n as isize,
                        1,
                        threads,
                    )
                }
            }
            GemmImpl::Matrixmultiply => gemm_with(
                Kernel::Matrixmultiply,
                true,
                F::one(),
                self.a.view(),
                s.op_a,
                self.b.view(),
                s.op_b,
                F::zero(),
                &mut self.c.view_mut(),
            ),
        }
    }
}

/// Median seconds of each of `runs`, timed interleaved: one warm-up call of each, then `reps`
/// rounds calling each once in turn (A B C A B C ...), so that a change of load or clock
/// during the measurement falls on all of them alike.
pub fn interleaved_medians(reps: usize, runs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    for f in runs.iter_mut() {
        f();
    }
    let mut times = vec![Vec::with_capacity(reps); runs.len()];
    for _ in 0..reps.max(1) {
        for (f, t) in runs.iter_mut().zip(times.iter_mut()) {
            let s = Instant::now();
            f();
            t.push(s.elapsed().as_secs_f64());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

/// GFLOP/s of each implementation in `imps` on `shape` at precision `F` (interleaved medians
/// of `reps` rounds).
pub fn compare<F: Real>(shape: &Shape, imps: &[GemmImpl], reps: usize) -> Vec<f64> {
    let mut ops: Vec<Operands<F>> = imps.iter().map(|_| Operands::new(shape)).collect();
    let mut runs: Vec<Box<dyn FnMut() + '_>> =
        ops.iter_mut().zip(imps).map(|(o, &imp)| Box::new(move || o.run(imp)) as Box<dyn FnMut()>).collect();
    let mut refs: Vec<&mut dyn FnMut()> = runs.iter_mut().map(|b| b.as_mut() as &mut dyn FnMut()).collect();
    interleaved_medians(reps, &mut refs).into_iter().map(|t| shape.flops() / t / 1e9).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::matrix::gemm_naive;

    /// Every implementation computes the same product (to within the rounding of a `k`-term
    /// sum), whichever side `matrixmultiply` splits and for every transpose.
    #[test]
    fn implementations_agree_with_the_naive_product() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for (m, k, n) in [(70, 50, 40), (40, 50, 70)] {
            for (op_a, op_b) in [(Op::N, Op::N), (Op::T, Op::N), (Op::N, Op::T), (Op::T, Op::T)] {
                let shape = Shape::new("test", m, k, n, op_a, op_b);
                let mut o = Operands::<f64>::new(&shape);
                let mut want = Matrix::zeros(m, n);
                gemm_naive(1.0, o.a.view(), op_a, o.b.view(), op_b, 0.0, &mut want.view_mut());
                for imp in GemmImpl::ALL {
                    o.c = Matrix::from_fn(m, n, |_, _| f64::NAN);
                    pool.install(|| o.run(imp));
                    for (x, y) in o.output().data().iter().zip(want.data()) {
                        assert!((x - y).abs() <= 1e-13, "{} {}: {x} vs {y}", imp.name(), shape.dims());
                    }
                }
            }
        }
    }

    #[test]
    fn ff_step_shapes_count_the_step_flops() {
        let [fwd, grad] = Shape::ff_step(10_000, 676);
        assert_eq!((fwd.m, fwd.k, fwd.n), (676, 676, 20_000));
        assert_eq!((grad.m, grad.k, grad.n), (676, 20_000, 676));
        // The step's GEMM FLOPs as `FfStep::gemm_flops` counts them.
        assert_eq!(fwd.flops() + grad.flops(), 4.0 * 2.0 * 10_000.0 * 676.0 * 676.0);
    }
}

//! A small dense network trained by backpropagation: the digital baselines (a plain MLP,
//! the digital twin of a physical system, softmax read-outs). Pure math, no I/O.
//!
//! Layer `l` maps `a_{l-1}` (`batch x d_{l-1}`) to `z_l = a_{l-1} W_l^T + b_l` and
//! `a_l = f_l(z_l)`; `W_l` is `d_l x d_{l-1}` row-major. All parameters live in one flat
//! vector (layer by layer, `W_l` then `b_l`) so an [`crate::Optimizer`] steps them at once.

use crate::activation::Activation;
use crate::error::{CoreError, Result};
use crate::matrix::{gemm, gemm_serial, MatMut, MatRef, Matrix, Op};
use crate::real::Real;
use crate::rng::Rng;
use rand::Rng as _;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A multilayer perceptron with its parameters.
///
/// Deserialising checks [`Mlp::from_parts`]'s rules and reads the numbers in the precision
/// `F` ([`crate::serde_real`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Real", try_from = "MlpFile<F>")]
pub struct Mlp<F> {
    sizes: Vec<usize>,
    activations: Vec<Activation>,
    params: Vec<F>,
}

/// An [`Mlp`] as stored in a file, before its sizes are checked.
#[derive(Deserialize)]
#[serde(bound = "F: Real")]
struct MlpFile<F> {
    sizes: Vec<usize>,
    activations: Vec<Activation>,
    #[serde(deserialize_with = "crate::serde_real::vec")]
    params: Vec<F>,
}

impl<F: Real> TryFrom<MlpFile<F>> for Mlp<F> {
    type Error = CoreError;

    fn try_from(f: MlpFile<F>) -> Result<Self> {
        Mlp::from_parts(f.sizes, f.activations, f.params)
    }
}

/// Activations of a forward pass kept for [`Mlp::backward`].
#[derive(Clone, Debug, Default)]
pub struct MlpCache<F> {
    /// `a_0 = x, a_1, ..., a_L` (post-activation; `a_L` is the output).
    post: Vec<Matrix<F>>,
    /// `z_1, ..., z_L` (pre-activation).
    pre: Vec<Matrix<F>>,
}

/// Reusable buffers of [`Mlp::forward_with`]: two activations used alternately, one such
/// pair per thread when a batch is split, and the assembled output.
#[derive(Clone, Debug)]
pub struct MlpScratch<F> {
    main: PartScratch<F>,
    parts: Vec<PartScratch<F>>,
    out: Matrix<F>,
}

#[derive(Clone, Debug)]
struct PartScratch<F> {
    a: Matrix<F>,
    b: Matrix<F>,
}

impl<F> Default for PartScratch<F> {
    fn default() -> Self {
        PartScratch { a: Matrix::default(), b: Matrix::default() }
    }
}

impl<F> Default for MlpScratch<F> {
    fn default() -> Self {
        MlpScratch { main: PartScratch::default(), parts: Vec::new(), out: Matrix::default() }
    }
}

impl<F: Real> MlpCache<F> {
    /// The network output of the cached pass (`batch x d_L`).
    ///
    /// # Panics
    /// If no forward pass was cached.
    pub fn output(&self) -> &Matrix<F> {
        self.post.last().expect("a cached forward pass")
    }
}

impl<F: Real> Mlp<F> {
    /// A network with layer widths `sizes` (`[d_0, d_1, ..., d_L]`), activation `hidden` on
    /// every hidden layer and `output` on the last; weights and biases drawn from
    /// `U(-1/sqrt(d_in), 1/sqrt(d_in))` (PyTorch's `Linear` default).
    ///
    /// # Errors
    /// [`CoreError::Config`] if fewer than two sizes are given or a size is zero.
    pub fn new(sizes: &[usize], hidden: Activation, output: Activation, rng: &mut Rng) -> Result<Self> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(CoreError::config(
                "mlp.sizes",
                format!("need at least an input and an output width, all positive; got {sizes:?}"),
            ));
        }
        let layers = sizes.len() - 1;
        let activations = (0..layers).map(|l| if l + 1 == layers { output } else { hidden }).collect();
        let mut params = Vec::new();
        for w in sizes.windows(2) {
            let bound = 1.0 / (w[0] as f64).sqrt();
            params.extend((0..w[1] * w[0] + w[1]).map(|_| F::c(rng.random_range(-bound..bound))));
        }
        Ok(Mlp { sizes: sizes.to_vec(), activations, params })
    }

    /// A network from explicit parts (e.g. a loaded file): widths `[d_0, ..., d_L]`, one
    /// activation per layer, and the flat parameters (layer by layer, `W` row-major then `b`).
    ///
    /// # Errors
    /// [`CoreError::Config`] for fewer than two widths or a zero width; [`CoreError::Shape`]
    /// for another number of activations than layers, a parameter count that overflows, or
    /// another number of parameters than the widths need.
    pub fn from_parts(sizes: Vec<usize>, activations: Vec<Activation>, params: Vec<F>) -> Result<Self> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(CoreError::config(
                "mlp.sizes",
                format!("need at least an input and an output width, all positive; got {sizes:?}"),
            ));
        }
        if activations.len() != sizes.len() - 1 {
            return Err(CoreError::Shape {
                context: "mlp.activations".into(),
                expected: format!("one activation per layer ({} for sizes {sizes:?})", sizes.len() - 1),
                got: format!("{}", activations.len()),
            });
        }
        let n = sizes.windows(2).try_fold(0usize, |acc, w| {
            w[1].checked_mul(w[0]).and_then(|p| p.checked_add(w[1])).and_then(|p| acc.checked_add(p))
        });
        let Some(n) = n else {
            return Err(CoreError::Shape {
                context: "mlp.sizes".into(),
                expected: "widths whose parameter count fits in memory".into(),
                got: format!("{sizes:?}"),
            });
        };
        if params.len() != n {
            return Err(CoreError::Shape {
                context: "mlp.params".into(),
                expected: format!("{n} values for sizes {sizes:?} (each layer W then b)"),
                got: format!("{} values", params.len()),
            });
        }
        Ok(Mlp { sizes, activations, params })
    }

    /// Layer widths `[d_0, ..., d_L]`.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Input width `d_0`.
    pub fn input_len(&self) -> usize {
        self.sizes[0]
    }

    /// Output width `d_L`.
    pub fn output_len(&self) -> usize {
        *self.sizes.last().expect("at least two sizes")
    }

    /// All parameters, flat (layer by layer, `W` row-major then `b`).
    pub fn params(&self) -> &[F] {
        &self.params
    }

    /// Mutable parameters (for an optimiser step).
    pub fn params_mut(&mut self) -> &mut [F] {
        &mut self.params
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    fn offsets(&self, l: usize) -> (usize, usize, usize) {
        let mut off = 0;
        for w in self.sizes.windows(2).take(l) {
            off += w[1] * w[0] + w[1];
        }
        let (d_in, d_out) = (self.sizes[l], self.sizes[l + 1]);
        (off, off + d_out * d_in, off + d_out * d_in + d_out)
    }

    fn check_input(&self, x: &MatRef<'_, F>) -> Result<()> {
        if x.cols() != self.input_len() {
            return Err(CoreError::Shape {
                context: "mlp input".into(),
                expected: format!("{} columns", self.input_len()),
                got: format!("{} columns", x.cols()),
            });
        }
        Ok(())
    }

    /// Forward pass keeping the activations in `cache` for [`Mlp::backward`]; the output is
    /// [`MlpCache::output`].
    ///
    /// # Errors
    /// [`CoreError::Shape`] if `x` does not have `input_len` columns.
    pub fn forward_cached(&self, x: MatRef<'_, F>, cache: &mut MlpCache<F>) -> Result<()> {
        self.check_input(&x)?;
        let layers = self.sizes.len() - 1;
        cache.post.resize_with(layers + 1, || Matrix::zeros(0, 0));
        cache.pre.resize_with(layers, || Matrix::zeros(0, 0));
        let n = x.rows();
        cache.post[0].resize(n, x.cols());
        cache.post[0].data_mut().copy_from_slice(x.data());
        for l in 0..layers {
            let (before, after) = cache.post.split_at_mut(l + 1);
            let z = &mut cache.pre[l];
            self.affine(l, before[l].view(), z);
            let a = &mut after[0];
            a.resize(n, z.cols());
            a.data_mut().copy_from_slice(z.data());
            self.activations[l].apply_slice(a.data_mut());
        }
        Ok(())
    }

    /// `z = a W_l^T + b_l` of layer `l` (from 0), into `z` (resized).
    fn affine(&self, l: usize, a: MatRef<'_, F>, z: &mut Matrix<F>) {
        self.affine_with(l, a, z, true);
    }

    fn affine_with(&self, l: usize, a: MatRef<'_, F>, z: &mut Matrix<F>, split_gemm: bool) {
        let (w0, b0, end) = self.offsets(l);
        let (d_in, d_out) = (self.sizes[l], self.sizes[l + 1]);
        let w = MatRef::new(d_out, d_in, &self.params[w0..b0]).expect("consistent by construction");
        let b = &self.params[b0..end];
        z.resize(a.rows(), d_out);
        for r in 0..a.rows() {
            z.row_mut(r).copy_from_slice(b);
        }
        if split_gemm {
            gemm(F::one(), a, Op::N, w, Op::T, F::one(), &mut z.view_mut());
        } else {
            gemm_serial(F::one(), a, Op::N, w, Op::T, F::one(), &mut z.view_mut());
        }
    }

    /// Forward pass without keeping activations.
    ///
    /// # Errors
    /// [`CoreError::Shape`] if `x` does not have `input_len` columns.
    pub fn forward(&self, x: MatRef<'_, F>) -> Result<Matrix<F>> {
        let mut scratch = MlpScratch::default();
        Ok(self.forward_with(x, &mut scratch)?.to_owned())
    }

    /// Forward pass without keeping activations, in the buffers of `scratch` (reused from call
    /// to call: no allocation once they have grown to the batch). Returns a view of the output
    /// (`batch x d_L`), valid until `scratch` is used again.
    ///
    /// # Errors
    /// [`CoreError::Shape`] if `x` does not have `input_len` columns.
    pub fn forward_with<'s>(&self, x: MatRef<'_, F>, scratch: &'s mut MlpScratch<F>) -> Result<MatRef<'s, F>> {
        self.check_input(&x)?;
        let n = x.rows();
        let parts = self.parallel_parts(n);
        if parts <= 1 {
            return Ok(self.forward_part(x, &mut scratch.main, true));
        }
        // Rows are independent: each thread runs the whole network on its own block of rows
        // (one hand-off per call, not one per layer), with GEMMs kept on that thread.
        let d_out = self.output_len();
        let rows_per = n.div_ceil(parts);
        scratch.parts.resize_with(parts, PartScratch::default);
        scratch.out.resize(n, d_out);
        scratch.out.data_mut().par_chunks_mut(rows_per * d_out).zip(scratch.parts.par_iter_mut()).enumerate().for_each(
            |(p, (out, part))| {
                let xs = x.slice_rows(p * rows_per, ((p + 1) * rows_per).min(n));
                out.copy_from_slice(self.forward_part(xs, part, false).data());
            },
        );
        Ok(scratch.out.view())
    }

    /// How many blocks of rows [`Mlp::forward_with`] splits a batch of `n` into: one per
    /// rayon thread when the batch is worth it ([`crate::matrix::PARALLEL_MIN_MULS`]
    /// multiply-adds per block at least, and 16 rows), else 1.
    fn parallel_parts(&self, n: usize) -> usize {
        let per_row: usize = self.sizes.windows(2).map(|w| w[0] * w[1]).sum();
        let muls = n.saturating_mul(per_row);
        let min = crate::matrix::PARALLEL_MIN_MULS;
        if muls < 2 * min || n < 32 {
            return 1;
        }
        rayon::current_num_threads().min(muls / min).min(n / 16).max(1)
    }

    /// The serial forward pass of [`Mlp::forward_with`] in one pair of buffers; `split_gemms`
    /// lets each product use the thread pool (false when the caller already runs in parallel).
    fn forward_part<'s>(&self, x: MatRef<'_, F>, part: &'s mut PartScratch<F>, split_gemms: bool) -> MatRef<'s, F> {
        let layers = self.sizes.len() - 1;
        let PartScratch { a, b } = part;
        // Layer l reads from one buffer and writes the other; layer 0 reads `x` itself.
        for l in 0..layers {
            let (src, dst) = if l % 2 == 0 { (&*b, &mut *a) } else { (&*a, &mut *b) };
            let input = if l == 0 { x } else { src.view() };
            self.affine_with(l, input, dst, split_gemms);
            self.activations[l].apply_slice(dst.data_mut());
        }
        if layers % 2 == 1 {
            part.a.view()
        } else {
            part.b.view()
        }
    }

    /// Backward pass of the cached forward: given `grad_out = dL/d(output)` (`batch x d_L`),
    /// writes `dL/dparams` into `grad_params` (overwritten, length `num_params`) and, when
    /// given, `dL/dx` into `grad_input` (`batch x d_0`).
    ///
    /// # Panics
    /// If the cache does not belong to a forward pass of this network or the buffers have
    /// the wrong shapes (caller bugs).
    pub fn backward(
        &self,
        cache: &MlpCache<F>,
        grad_out: MatRef<'_, F>,
        grad_params: &mut [F],
        grad_input: Option<&mut MatMut<'_, F>>,
    ) {
        let layers = self.sizes.len() - 1;
        assert_eq!(cache.pre.len(), layers, "cache from another network");
        assert_eq!(grad_params.len(), self.params.len(), "gradient length");
        let n = grad_out.rows();
        assert_eq!(grad_out.cols(), self.output_len(), "output gradient width");
        // delta = dL/dz_l, starting from the output.
        let mut delta = grad_out.to_owned();
        let mut grad_input = grad_input;
        for l in (0..layers).rev() {
            self.activations[l].mul_derivative_slice(cache.pre[l].data(), delta.data_mut());
            let (w0, b0, end) = self.offsets(l);
            let (d_in, d_out) = (self.sizes[l], self.sizes[l + 1]);
            let (gw, gb) = grad_params[w0..end].split_at_mut(b0 - w0);
            let mut gw = MatMut::new(d_out, d_in, gw).expect("shape");
            gemm(F::one(), delta.view(), Op::T, cache.post[l].view(), Op::N, F::zero(), &mut gw);
            gb.fill(F::zero());
            for r in 0..n {
                for (g, &d) in gb.iter_mut().zip(delta.row(r)) {
                    *g += d;
                }
            }
            let w = MatRef::new(d_out, d_in, &self.params[w0..b0]).expect("shape");
            if l > 0 {
                let mut next = Matrix::zeros(n, d_in);
                gemm(F::one(), delta.view(), Op::N, w, Op::N, F::zero(), &mut next.view_mut());
                delta = next;
            } else if let Some(gi) = grad_input.as_mut() {
                gemm(F::one(), delta.view(), Op::N, w, Op::N, F::zero(), gi);
            }
        }
    }

    /// Digital FLOPs of a forward pass of `n` samples: `2 d_in d_out + 2 d_out` per layer
    /// and sample (product, bias, activation counted as one each).
    pub fn flops_forward(&self, n: usize) -> u64 {
        self.sizes.windows(2).map(|w| (2 * w[0] * w[1] + 2 * w[1]) as u64).sum::<u64>() * n as u64
    }

    /// Digital FLOPs of a backward pass of `n` samples (parameter and input gradients):
    /// twice the forward products plus the element-wise work.
    pub fn flops_backward(&self, n: usize) -> u64 {
        self.sizes.windows(2).map(|w| (4 * w[0] * w[1] + 3 * w[1]) as u64).sum::<u64>() * n as u64
    }
}

/// Mean softmax cross-entropy of `logits` (`batch x classes`) against `labels`; writes
/// `dL/dlogits` into `grad` (same shape) and returns the loss (nats).
///
/// # Panics
/// If the shapes disagree or a label is out of range (caller bugs).
pub fn softmax_cross_entropy<F: Real>(logits: MatRef<'_, F>, labels: &[usize], grad: &mut Matrix<F>) -> F {
    let (n, k) = (logits.rows(), logits.cols());
    assert_eq!(labels.len(), n, "one label per row");
    grad.resize(n, k);
    let inv_n = F::one() / F::c(n.max(1) as f64);
    let mut loss = F::zero();
    for (r, &y) in labels.iter().enumerate() {
        assert!(y < k, "label {y} out of range for {k} classes");
        let row = logits.row(r);
        let m = row.iter().fold(F::neg_infinity(), |a, &b| a.max(b));
        let sum: F = row.iter().map(|&v| (v - m).exp()).fold(F::zero(), |a, b| a + b);
        loss += (sum.ln() + m - row[y]) * inv_n;
        for (c, (g, &v)) in grad.row_mut(r).iter_mut().zip(row).enumerate() {
            let p = (v - m).exp() / sum;
            *g = (p - if c == y { F::one() } else { F::zero() }) * inv_n;
        }
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::rng_for;
    use proptest::prelude::*;

    fn loss_of(mlp: &Mlp<f64>, x: &Matrix<f64>, w: &Matrix<f64>) -> f64 {
        let y = mlp.forward(x.view()).unwrap();
        y.data().iter().zip(w.data()).map(|(a, b)| a * b).sum()
    }

    /// The scratch-buffer inference path gives the cached path's output bit for bit, for odd
    /// and even depths, and stays right when one scratch serves batches of different sizes.
    #[test]
    fn forward_with_matches_forward_cached() {
        let mut rng = rng_for(7, "mlp forward_with");
        // Three threads, so that the larger batches are split into blocks of rows.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for sizes in [&[3usize, 2][..], &[3, 5, 2], &[20, 100, 200, 100, 20], &[20, 100, 200, 100]] {
            let mlp = Mlp::<f32>::new(sizes, Activation::Silu, Activation::Identity, &mut rng).unwrap();
            let mut scratch = MlpScratch::default();
            if sizes.len() > 3 {
                assert!(pool.install(|| mlp.parallel_parts(206)) > 1, "the emulator-sized batch is split");
            }
            for n in [7usize, 1, 33, 206, 50] {
                let x = Matrix::from_fn(n, sizes[0], |_, _| rng.random_range(-2.0..2.0));
                let mut cache = MlpCache::default();
                mlp.forward_cached(x.view(), &mut cache).unwrap();
                let fast = pool.install(|| mlp.forward_with(x.view(), &mut scratch)).unwrap();
                assert_eq!((fast.rows(), fast.cols()), (n, *sizes.last().unwrap()));
                assert_eq!(fast.data(), cache.output().data(), "sizes {sizes:?}, batch {n}");
            }
            assert!(mlp.forward_with(Matrix::<f32>::zeros(2, sizes[0] + 1).view(), &mut scratch).is_err());
        }
    }

    #[test]
    fn a_saved_mlp_whose_sizes_do_not_fit_is_refused() {
        let mlp = Mlp::<f32>::new(&[3, 4, 2], Activation::Relu, Activation::Identity, &mut rng_for(1, "m")).unwrap();
        let json = serde_json::to_string(&mlp).unwrap();
        assert_eq!(serde_json::from_str::<Mlp<f32>>(&json).unwrap(), mlp);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let load = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut w = v.clone();
            edit(&mut w);
            serde_json::from_value::<Mlp<f32>>(w).unwrap_err().to_string()
        };
        let e = load(&|w| {
            w["params"].as_array_mut().unwrap().pop();
        });
        assert!(e.contains("mlp.params") && e.contains("26 values for sizes [3, 4, 2]") && e.contains("got 25"), "{e}");
        let e = load(&|w| {
            w["activations"].as_array_mut().unwrap().pop();
        });
        assert!(e.contains("one activation per layer (2 for sizes [3, 4, 2])") && e.contains("got 1"), "{e}");
        assert!(load(&|w| w["sizes"] = serde_json::json!([3])).contains("need at least an input and an output"));
        assert!(load(&|w| w["sizes"] = serde_json::json!([3, 0, 2])).contains("all positive"));
        let huge = serde_json::json!([1u64 << 40, 1u64 << 40, 2]);
        assert!(load(&|w| w["sizes"] = huge.clone()).contains("fits in memory"));
        assert!(load(&|w| w["params"][0] = 1e39.into()).contains("value 1e39 overflows f32"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn gradients_match_finite_differences(seed in 0u64..1000, act in 0usize..3) {
            let hidden = [Activation::Silu, Activation::Gelu, Activation::Identity][act];
            let mut rng = rng_for(seed, "mlp test");
            let mlp = Mlp::<f64>::new(&[3, 5, 4, 2], hidden, Activation::Silu, &mut rng).unwrap();
            let x = Matrix::from_fn(4, 3, |_, _| rng.random_range(-1.0..1.0));
            let w = Matrix::from_fn(4, 2, |_, _| rng.random_range(-1.0..1.0));
            let mut cache = MlpCache::default();
            mlp.forward_cached(x.view(), &mut cache).unwrap();
            let mut gp = vec![0.0; mlp.num_params()];
            let mut gx = Matrix::zeros(4, 3);
            mlp.backward(&cache, w.view(), &mut gp, Some(&mut gx.view_mut()));
            let h = 1e-6;
            for (i, &gi) in gp.iter().enumerate() {
                let (mut p, mut m) = (mlp.clone(), mlp.clone());
                p.params_mut()[i] += h;
                m.params_mut()[i] -= h;
                let fd = (loss_of(&p, &x, &w) - loss_of(&m, &x, &w)) / (2.0 * h);
                prop_assert!((fd - gi).abs() < 1e-6 * (1.0 + fd.abs()), "param {i}: {fd} vs {gi}");
            }
            for j in 0..x.data().len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp.data_mut()[j] += h;
                xm.data_mut()[j] -= h;
                let fd = (loss_of(&mlp, &xp, &w) - loss_of(&mlp, &xm, &w)) / (2.0 * h);
                prop_assert!((fd - gx.data()[j]).abs() < 1e-6 * (1.0 + fd.abs()), "input {j}");
            }
        }

        #[test]
        fn softmax_gradient_matches_finite_differences(seed in 0u64..1000) {
            let mut rng = rng_for(seed, "xent test");
            let z = Matrix::<f64>::from_fn(3, 4, |_, _| rng.random_range(-3.0..3.0));
            let labels = [0, 3, 1];
            let mut g = Matrix::zeros(0, 0);
            softmax_cross_entropy(z.view(), &labels, &mut g);
            let mut scratch = Matrix::zeros(0, 0);
            for j in 0..12 {
                let (mut p, mut m) = (z.clone(), z.clone());
                p.data_mut()[j] += 1e-6;
                m.data_mut()[j] -= 1e-6;
                let fd = (softmax_cross_entropy(p.view(), &labels, &mut scratch)
                    - softmax_cross_entropy(m.view(), &labels, &mut scratch)) / 2e-6;
                prop_assert!((fd - g.data()[j]).abs() < 1e-7, "logit {j}: {fd} vs {}", g.data()[j]);
            }
        }
    }

    #[test]
    fn adam_fits_a_smooth_map() {
        // y = sin(3 x): a 1-16-1 SiLU net with Adam reaches a small MSE in a few hundred steps.
        let mut rng = rng_for(1, "mlp fit");
        let mut mlp = Mlp::<f64>::new(&[1, 16, 1], Activation::Silu, Activation::Identity, &mut rng).unwrap();
        let x = Matrix::from_fn(64, 1, |i, _| i as f64 / 32.0 - 1.0);
        let y: Vec<f64> = x.data().iter().map(|v| (3.0 * v).sin()).collect();
        let mut opt = crate::Optimizer::new(crate::OptimizerConfig::adam(1e-2), mlp.num_params());
        let (mut cache, mut gp) = (MlpCache::default(), vec![0.0; mlp.num_params()]);
        let mse = |m: &Mlp<f64>| {
            let p = m.forward(x.view()).unwrap();
            p.data().iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / 64.0
        };
        let start = mse(&mlp);
        for _ in 0..1500 {
            mlp.forward_cached(x.view(), &mut cache).unwrap();
            let g = Matrix::from_fn(64, 1, |i, _| 2.0 * (cache.output().get(i, 0) - y[i]) / 64.0);
            mlp.backward(&cache, g.view(), &mut gp, None);
            let mut p = mlp.params().to_vec();
            opt.step(&mut p, &gp);
            mlp.params_mut().copy_from_slice(&p);
        }
        let end = mse(&mlp);
        assert!(end < 0.01 && end < start / 20.0, "MSE {start} -> {end}");
        assert!(Mlp::<f64>::new(&[3], Activation::Silu, Activation::Identity, &mut rng).is_err());
    }
}

//! The trained part of a block: an affine map scored by a goodness, with closed-form gradients.

use crate::error::{CoreError, Result};
use crate::goodness::{ColumnScratch, Goodness};
use crate::loss::Loss;
use crate::matrix::{gemm, MatRef, Matrix, Op};
use crate::real::Real;
use crate::rng::Rng;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The affine map `z = W u + b` of one block, with its goodness and fixed prototype.
///
/// Parameters are one flat vector: `W` (`d_out x d_in`, row-major) followed by `b` (`d_out`),
/// so one optimiser state covers them. The prototype `xi` (unit norm, `d_out` entries) is
/// drawn once from a seeded `N(0, I)`, never trained, and saved with the model.
///
/// Deserialising checks what [`LocalLayer::from_parts`] checks (a saved layer whose sizes do
/// not fit together is an error, not a panic later), and reads the numbers in the precision
/// `F` (see [`crate::serde_real`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Real", try_from = "LayerFile<F>")]
pub struct LocalLayer<F> {
    d_in: usize,
    d_out: usize,
    params: Vec<F>,
    prototype: Vec<F>,
    goodness: Goodness,
}

/// A [`LocalLayer`] as stored in a file, before its sizes are checked.
#[derive(Deserialize)]
#[serde(bound = "F: Real")]
struct LayerFile<F> {
    d_in: usize,
    d_out: usize,
    #[serde(deserialize_with = "crate::serde_real::vec")]
    params: Vec<F>,
    #[serde(deserialize_with = "crate::serde_real::vec")]
    prototype: Vec<F>,
    goodness: Goodness,
}

impl<F: Real> TryFrom<LayerFile<F>> for LocalLayer<F> {
    type Error = CoreError;

    fn try_from(f: LayerFile<F>) -> Result<Self> {
        LocalLayer::from_parts(f.d_in, f.d_out, f.params, f.prototype, f.goodness)
    }
}

/// Reusable buffers for [`LocalLayer::loss_and_grad`] (no allocation in the inner loop).
#[derive(Debug)]
pub struct Workspace<F> {
    u: Matrix<F>,
    z: Matrix<F>,
    g: Vec<F>,
    dg: Vec<F>,
    columns: ColumnScratch<F>,
}

impl<F: Real> Default for Workspace<F> {
    fn default() -> Self {
        Workspace {
            u: Matrix::zeros(0, 0),
            z: Matrix::zeros(0, 0),
            g: Vec::new(),
            dg: Vec::new(),
            columns: ColumnScratch::default(),
        }
    }
}

/// Stacks paired batches into one: the rows of `up`, then the rows of `un` (the layout of
/// [`LocalLayer::loss_and_grad_stacked`]); `u` is resized.
///
/// # Panics
/// If the two batches differ in shape (a caller bug).
pub fn stack_into<F: Real>(up: MatRef<'_, F>, un: MatRef<'_, F>, u: &mut Matrix<F>) {
    assert_eq!((up.rows(), up.cols()), (un.rows(), un.cols()), "positive and negative batches must be paired");
    u.resize(2 * up.rows(), up.cols());
    let half = up.data().len();
    u.data_mut()[..half].copy_from_slice(up.data());
    u.data_mut()[half..].copy_from_slice(un.data());
}

/// Writes the transpose of `a` into `t` (resized to `a.cols() x a.rows()`), in cache-sized tiles.
pub fn transpose_into<F: Real>(a: MatRef<'_, F>, t: &mut Matrix<F>) {
    const TILE: usize = 32;
    let (r, c) = (a.rows(), a.cols());
    t.resize(c, r);
    let (src, dst) = (a.data(), t.data_mut());
    for i0 in (0..r).step_by(TILE) {
        for j0 in (0..c).step_by(TILE) {
            for i in i0..(i0 + TILE).min(r) {
                for j in j0..(j0 + TILE).min(c) {
                    dst[j * r + i] = src[i * c + j];
                }
            }
        }
    }
}

impl<F: Real> LocalLayer<F> {
    /// A layer `d_in -> d_out`, initialised like PyTorch's `nn.Linear`
    /// (`W, b ~ U(-1/sqrt(d_in), 1/sqrt(d_in))`) from `init_rng`, with a prototype drawn from
    /// `proto_rng` (`N(0, I)`, normalised to unit length).
    ///
    /// # Errors
    /// [`CoreError::Config`] if a dimension is zero.
    pub fn new(d_in: usize, d_out: usize, goodness: Goodness, init_rng: &mut Rng, proto_rng: &mut Rng) -> Result<Self> {
        if d_in == 0 || d_out == 0 {
            return Err(CoreError::config("layer size", format!("dimensions must be positive, got {d_in} -> {d_out}")));
        }
        let bound = 1.0 / (d_in as f64).sqrt();
        let params = (0..d_out * d_in + d_out).map(|_| F::c(init_rng.random_range(-bound..bound))).collect();
        let raw: Vec<f64> = (0..d_out).map(|_| StandardNormal.sample(proto_rng)).collect();
        let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        let prototype = raw.iter().map(|v| F::c(v / norm)).collect();
        Ok(LocalLayer { d_in, d_out, params, prototype, goodness })
    }

    /// Builds a layer from explicit parts (e.g. a loaded model).
    ///
    /// # Errors
    /// [`CoreError::Config`] if a dimension is zero; [`CoreError::Shape`] if `d_out x d_in`
    /// overflows, or the lengths do not match `d_in` and `d_out` (`params`: `d_out x d_in + d_out`,
    /// `prototype`: `d_out`), naming the field and both numbers.
    pub fn from_parts(
        d_in: usize,
        d_out: usize,
        params: Vec<F>,
        prototype: Vec<F>,
        goodness: Goodness,
    ) -> Result<Self> {
        if d_in == 0 || d_out == 0 {
            return Err(CoreError::config(
                "layer d_in, d_out",
                format!("dimensions must be positive, got {d_in} -> {d_out}"),
            ));
        }
        let Some(n) = d_out.checked_mul(d_in).and_then(|w| w.checked_add(d_out)) else {
            return Err(CoreError::Shape {
                context: "layer d_in, d_out".into(),
                expected: "a parameter count d_out x d_in + d_out that fits in memory".into(),
                got: format!("{d_in} -> {d_out}"),
            });
        };
        if params.len() != n {
            return Err(CoreError::Shape {
                context: "layer params".into(),
                expected: format!("{n} values for a {d_in} -> {d_out} layer (W {d_out} x {d_in}, then b {d_out})"),
                got: format!("{} values", params.len()),
            });
        }
        if prototype.len() != d_out {
            return Err(CoreError::Shape {
                context: "layer prototype".into(),
                expected: format!("{d_out} values (one per output, d_out = {d_out})"),
                got: format!("{} values", prototype.len()),
            });
        }
        Ok(LocalLayer { d_in, d_out, params, prototype, goodness })
    }

    /// Input dimension.
    pub fn d_in(&self) -> usize {
        self.d_in
    }
    /// Output dimension.
    pub fn d_out(&self) -> usize {
        self.d_out
    }
    /// The goodness function.
    pub fn goodness(&self) -> Goodness {
        self.goodness
    }
    /// The fixed prototype vector `xi` (unit norm).
    pub fn prototype(&self) -> &[F] {
        &self.prototype
    }
    /// All parameters (`W` row-major, then `b`).
    pub fn params(&self) -> &[F] {
        &self.params
    }
    /// All parameters, mutable.
    pub fn params_mut(&mut self) -> &mut [F] {
        &mut self.params
    }
    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }
    /// `W` as a `d_out x d_in` view.
    pub fn weights(&self) -> MatRef<'_, F> {
        MatRef::new(self.d_out, self.d_in, &self.params[..self.d_out * self.d_in]).expect("consistent by construction")
    }
    /// `b`.
    pub fn bias(&self) -> &[F] {
        &self.params[self.d_out * self.d_in..]
    }

    /// `z = u W^T + b` for a batch `u` (`n x d_in`), written into `z` (`n x d_out`).
    ///
    /// # Panics
    /// If `u.cols() != d_in` (validated by the network).
    pub fn forward(&self, u: MatRef<'_, F>, z: &mut Matrix<F>) {
        assert_eq!(u.cols(), self.d_in, "layer input width");
        z.resize(u.rows(), self.d_out);
        let b = self.bias();
        for i in 0..u.rows() {
            z.row_mut(i).copy_from_slice(b);
        }
        gemm(F::one(), u, Op::N, self.weights(), Op::T, F::one(), &mut z.view_mut());
    }

    /// Per-sample goodness of a batch of outputs `z`.
    pub fn goodness_batch(&self, z: MatRef<'_, F>, g: &mut Vec<F>) {
        g.clear();
        g.extend((0..z.rows()).map(|i| self.goodness.eval(z.row(i), &self.prototype, None)));
    }

    /// Loss of the paired batches `(u_pos, u_neg)` and its gradient with respect to the
    /// parameters (written into `grad`, same layout as [`LocalLayer::params`]).
    ///
    /// Closed form: with `dZ = dL/dz` per row (through the loss, the goodness and the
    /// activation), `dW = dZp^T Up + dZn^T Un` and `db = colsum(dZp) + colsum(dZn)`. The two
    /// batches are stacked (a copy into `ws`) and handled by
    /// [`LocalLayer::loss_and_grad_stacked`]; callers that step many times on the same batches
    /// should stack them once and call that directly.
    ///
    /// # Panics
    /// If widths or `grad`'s length are wrong, or the two batches differ in size (caller bugs).
    pub fn loss_and_grad(
        &self,
        loss: &Loss,
        up: MatRef<'_, F>,
        un: MatRef<'_, F>,
        ws: &mut Workspace<F>,
        grad: &mut [F],
    ) -> F {
        assert_eq!(up.rows(), un.rows(), "positive and negative batches must be paired");
        let mut u = std::mem::take(&mut ws.u);
        stack_into(up, un, &mut u);
        let value = self.loss_and_grad_stacked(loss, u.view(), ws, grad);
        ws.u = u;
        value
    }

    /// [`LocalLayer::loss_and_grad`] on a stacked batch `u` (`2n x d_in`): the `n` positives
    /// in rows `0..n`, their paired negatives in rows `n..2n` (see [`stack_into`]). One GEMM
    /// computes every `z` (feature-major, `z^T = W U^T + b`), one more the weight gradient
    /// `dW = dZ^T U` (the sum over positives and negatives is a single inner dimension of `2n`).
    ///
    /// # Panics
    /// If `u`'s width or `grad`'s length is wrong, or `u` has an odd number of rows.
    pub fn loss_and_grad_stacked(&self, loss: &Loss, u: MatRef<'_, F>, ws: &mut Workspace<F>, grad: &mut [F]) -> F {
        self.loss_and_grad_impl(loss, u, None, ws, grad)
    }

    /// [`LocalLayer::loss_and_grad_stacked`] given also `ut`, the transpose of `u`
    /// (`d_in x 2n`, e.g. from [`transpose_into`]). Same result, bit for bit; faster when
    /// several steps share one batch, because the forward product then reads its right-hand
    /// side row by row (on the acoustic inner step, 6.6 us against 9.7 us single-threaded).
    ///
    /// # Panics
    /// As [`LocalLayer::loss_and_grad_stacked`], or if `ut` is not `d_in x 2n`.
    pub fn loss_and_grad_stacked_with_transpose(
        &self,
        loss: &Loss,
        u: MatRef<'_, F>,
        ut: MatRef<'_, F>,
        ws: &mut Workspace<F>,
        grad: &mut [F],
    ) -> F {
        assert_eq!((ut.rows(), ut.cols()), (u.cols(), u.rows()), "ut must be the transpose of u");
        self.loss_and_grad_impl(loss, u, Some(ut), ws, grad)
    }

    fn loss_and_grad_impl(
        &self,
        loss: &Loss,
        u: MatRef<'_, F>,
        ut: Option<MatRef<'_, F>>,
        ws: &mut Workspace<F>,
        grad: &mut [F],
    ) -> F {
        assert_eq!(u.rows() % 2, 0, "a stacked batch holds positives then as many negatives");
        // An empty batch has loss 0 and gradient 0 (`loss_and_grad_sum`); max(1) only keeps
        // its 1/n finite.
        let inv_n = F::one() / F::from_usize((u.rows() / 2).max(1)).unwrap();
        self.loss_and_grad_sum(loss, u, ut, inv_n, true, ws, grad) * inv_n
    }

    /// One piece of a batch: [`LocalLayer::loss_and_grad_stacked_with_transpose`] on `u`
    /// (`2m x d_in`: `m` positives, then their `m` negatives) taken from a batch of `n_total`
    /// pairs. Returns the piece's *summed* loss terms and writes into `grad` the piece's
    /// contribution to the gradient of the whole batch's mean loss. Summing the pieces' values
    /// and gradients (then multiplying the value by `1 / n_total`) gives the whole batch's
    /// [`LocalLayer::loss_and_grad_stacked`] up to the order of the additions: each `z`,
    /// goodness and `dL/dz` is the same bits whatever the pieces. This is how
    /// [`crate::Network`] spreads an inner step over threads with one exchange per step.
    ///
    /// # Panics
    /// As [`LocalLayer::loss_and_grad_stacked_with_transpose`], or if `n_total` is zero.
    pub fn loss_and_grad_part(
        &self,
        loss: &Loss,
        u: MatRef<'_, F>,
        ut: MatRef<'_, F>,
        n_total: usize,
        ws: &mut Workspace<F>,
        grad: &mut [F],
    ) -> F {
        assert_eq!((ut.rows(), ut.cols()), (u.cols(), u.rows()), "ut must be the transpose of u");
        assert_eq!(u.rows() % 2, 0, "a stacked piece holds positives then as many negatives");
        assert!(n_total > 0 && u.rows() / 2 <= n_total, "a piece of {} pairs of a batch of {n_total}", u.rows() / 2);
        let inv_n = F::one() / F::from_usize(n_total).unwrap();
        // The pieces already run in parallel: their element-wise stages stay on the piece's
        // thread (the products may still split when large).
        self.loss_and_grad_sum(loss, u, Some(ut), inv_n, false, ws, grad)
    }

    /// The common body: summed loss terms of the pairs in `u`, gradient of (that sum times
    /// `inv_n`) into `grad`. `split` lets the goodness and the chain rule split over threads.
    #[allow(clippy::too_many_arguments)]
    fn loss_and_grad_sum(
        &self,
        loss: &Loss,
        u: MatRef<'_, F>,
        ut: Option<MatRef<'_, F>>,
        inv_n: F,
        split: bool,
        ws: &mut Workspace<F>,
        grad: &mut [F],
    ) -> F {
        assert_eq!(u.cols(), self.d_in, "layer input width");
        assert_eq!(grad.len(), self.params.len());
        let n = u.rows() / 2;
        if n == 0 {
            grad.fill(F::zero());
            return F::zero();
        }
        // z^T = W U^T + b (d_out x 2n, feature-major): the goodness then runs across samples.
        ws.z.resize(self.d_out, 2 * n);
        for (c, &b) in self.bias().iter().enumerate() {
            ws.z.row_mut(c).fill(b);
        }
        match ut {
            Some(ut) => gemm(F::one(), self.weights(), Op::N, ut, Op::N, F::one(), &mut ws.z.view_mut()),
            None => gemm(F::one(), self.weights(), Op::N, u, Op::T, F::one(), &mut ws.z.view_mut()),
        }
        // One pass gives every goodness and dg/dz, which overwrites z^T in place.
        ws.g.clear();
        self.goodness.eval_columns_impl(ws.z.data_mut(), 2 * n, &self.prototype, &mut ws.g, &mut ws.columns, split);
        ws.dg.resize(2 * n, F::zero());
        let (dgp, dgn) = ws.dg.split_at_mut(n);
        let value = loss.eval_sum(&ws.g[..n], &ws.g[n..], dgp, dgn, inv_n);
        // Chain rule dL/dz = dL/dg * dg/dz in place, and db: each output's derivatives summed
        // over the samples in order. Outputs are independent rows: large batches split them
        // over threads.
        let (gw, gb) = grad.split_at_mut(self.d_out * self.d_in);
        let dg = &ws.dg;
        let chain = |(row, b): (&mut [F], &mut F)| {
            let mut s = F::zero();
            for (zv, &dgi) in row.iter_mut().zip(dg) {
                *zv *= dgi;
                s += *zv;
            }
            *b = s;
        };
        if split && 2 * n * self.d_out >= 1 << 12 && rayon::current_num_threads() > 1 {
            ws.z.data_mut().par_chunks_exact_mut(2 * n).zip(gb.par_iter_mut()).for_each(chain);
        } else {
            ws.z.data_mut().chunks_exact_mut(2 * n).zip(gb.iter_mut()).for_each(chain);
        }
        let mut gw = crate::matrix::MatMut::new(self.d_out, self.d_in, gw).expect("consistent");
        gemm(F::one(), ws.z.view(), Op::N, u, Op::N, F::zero(), &mut gw);
        value
    }

    /// Digital FLOPs of one [`LocalLayer::loss_and_grad`] call on `n` pairs (forward and
    /// backward GEMMs dominate: `2 x 2 n d_in d_out` each way, plus goodness and loss).
    pub fn flops_loss_and_grad(&self, n: usize) -> u64 {
        let (n, i, o) = (n as u64, self.d_in as u64, self.d_out as u64);
        2 * (2 * n * i * o + n * o) + 2 * (2 * n * i * o + n * o) + 2 * 12 * n * o
    }

    /// Digital FLOPs of [`LocalLayer::forward`] plus goodness on `n` samples.
    pub fn flops_forward(&self, n: usize) -> u64 {
        let (n, i, o) = (n as u64, self.d_in as u64, self.d_out as u64);
        2 * n * i * o + n * o + 6 * n * o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::rng::rng_for;
    use proptest::prelude::*;

    fn numeric_grad(layer: &LocalLayer<f64>, loss: &Loss, up: &Matrix<f64>, un: &Matrix<f64>) -> Vec<f64> {
        let mut ws = Workspace::default();
        let mut scratch = vec![0.0; layer.num_params()];
        let h = 1e-6;
        (0..layer.num_params())
            .map(|p| {
                let mut l1 = layer.clone();
                l1.params_mut()[p] += h;
                let mut l2 = layer.clone();
                l2.params_mut()[p] -= h;
                let f1 = l1.loss_and_grad(loss, up.view(), un.view(), &mut ws, &mut scratch);
                let f2 = l2.loss_and_grad(loss, up.view(), un.view(), &mut ws, &mut scratch);
                (f1 - f2) / (2.0 * h)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The closed-form gradient agrees with central finite differences: for every
        /// parameter, |fd - analytic| <= 1e-5 * (1 + |analytic|) (f64, step 1e-6).
        #[test]
        fn closed_form_gradient_matches_finite_differences(
            n in 1usize..5, d_in in 1usize..6, d_out in 1usize..6, seed in 0u64..10_000, kind in 0usize..4,
        ) {
            let (goodness, loss) = match kind {
                0 => (Goodness::Cosine { activation: Activation::Abs }, Loss::Symba { alpha: 4.0 }),
                1 => (Goodness::Cosine { activation: Activation::Gelu }, Loss::Symba { alpha: 5.0 }),
                2 => (Goodness::MeanSquares { activation: Activation::Relu }, Loss::Hinton { theta: 0.5 }),
                _ => (Goodness::SumSquares { activation: Activation::Gelu }, Loss::Hinton { theta: 2.0 }),
            };
            let mut r1 = rng_for(seed, "init");
            let mut r2 = rng_for(seed, "proto");
            let layer = LocalLayer::<f64>::new(d_in, d_out, goodness, &mut r1, &mut r2).unwrap();
            let mut r3 = rng_for(seed, "data");
            let up = Matrix::from_fn(n, d_in, |_, _| r3.random_range(-1.0..1.0));
            let un = Matrix::from_fn(n, d_in, |_, _| r3.random_range(-1.0..1.0));
            // Keep away from the kinks of abs/relu where the derivative is one-sided.
            let mut z = Matrix::zeros(0, 0);
            for u in [&up, &un] {
                layer.forward(u.view(), &mut z);
                prop_assume!(z.data().iter().all(|v| v.abs() > 1e-3));
            }
            let mut grad = vec![0.0; layer.num_params()];
            let mut ws = Workspace::default();
            layer.loss_and_grad(&loss, up.view(), un.view(), &mut ws, &mut grad);
            let fd = numeric_grad(&layer, &loss, &up, &un);
            for (p, (a, f)) in grad.iter().zip(&fd).enumerate() {
                prop_assert!((a - f).abs() <= 1e-5 * (1.0 + a.abs()), "param {p}: analytic {a} vs fd {f}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Giving the transpose changes nothing, bit for bit (f32, sizes on both sides of the
        /// parallel split).
        #[test]
        fn the_transposed_input_gives_the_same_bits(n in 1usize..300, d_in in 1usize..50, d_out in 1usize..30, seed in 0u64..1000) {
            let layer = LocalLayer::<f32>::new(d_in, d_out, Goodness::default(), &mut rng_for(seed, "i"), &mut rng_for(seed, "p")).unwrap();
            let mut r = rng_for(seed, "data");
            let u = Matrix::from_fn(2 * n, d_in, |_, _| r.random_range(-1.0f32..1.0));
            let mut ut = Matrix::zeros(0, 0);
            transpose_into(u.view(), &mut ut);
            prop_assert_eq!(ut.get(d_in - 1, 2 * n - 1), u.get(2 * n - 1, d_in - 1));
            let loss = Loss::Symba { alpha: 4.0 };
            let (mut g1, mut g2) = (vec![0.0; layer.num_params()], vec![0.0; layer.num_params()]);
            let l1 = layer.loss_and_grad_stacked(&loss, u.view(), &mut Workspace::default(), &mut g1);
            let l2 = layer.loss_and_grad_stacked_with_transpose(&loss, u.view(), ut.view(), &mut Workspace::default(), &mut g2);
            prop_assert_eq!(l1.to_bits(), l2.to_bits());
            prop_assert_eq!(g1, g2);
        }
    }

    #[test]
    fn prototype_is_unit_and_seeded() {
        let mk =
            |s| LocalLayer::<f32>::new(4, 9, Goodness::default(), &mut rng_for(s, "i"), &mut rng_for(s, "p")).unwrap();
        let (a, b, c) = (mk(1), mk(1), mk(2));
        assert_eq!(a, b);
        assert_ne!(a.prototype(), c.prototype());
        let n: f32 = a.prototype().iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-5);
        assert!(LocalLayer::<f32>::new(0, 3, Goodness::default(), &mut rng_for(1, "i"), &mut rng_for(1, "p")).is_err());
    }

    #[test]
    fn a_saved_layer_whose_sizes_do_not_fit_is_refused() {
        let layer =
            LocalLayer::<f32>::new(3, 2, Goodness::default(), &mut rng_for(1, "i"), &mut rng_for(1, "p")).unwrap();
        let json = serde_json::to_string(&layer).unwrap();
        assert_eq!(serde_json::from_str::<LocalLayer<f32>>(&json).unwrap(), layer);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let load =
            |v: &serde_json::Value| serde_json::from_value::<LocalLayer<f32>>(v.clone()).unwrap_err().to_string();
        // One changed digit of d_out: the parameters no longer fit.
        v["d_out"] = 3.into();
        let e = load(&v);
        assert!(e.contains("layer params") && e.contains("12 values for a 3 -> 3 layer") && e.contains("got 8"), "{e}");
        v["d_out"] = 2.into();
        v["prototype"].as_array_mut().unwrap().pop();
        let e = load(&v);
        assert!(e.contains("layer prototype") && e.contains("2 values") && e.contains("got 1 values"), "{e}");
        v["d_in"] = 0.into();
        assert!(load(&v).contains("dimensions must be positive, got 0 -> 2"));
        // Sizes whose product wraps around must not match a short vector.
        v["d_in"] = (1u64 << 32).into();
        v["d_out"] = (1u64 << 32).into();
        assert!(load(&v).contains("fits in memory"), "{}", load(&v));
        // A weight that overflows f32.
        let bad = json.replacen("\"params\":[", "\"params\":[1e39,", 1);
        let e = serde_json::from_str::<LocalLayer<f32>>(&bad).unwrap_err().to_string();
        assert!(e.contains("entry 0: value 1e39 overflows f32"), "{e}");
    }
}

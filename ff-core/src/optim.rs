//! Optimisers acting on a flat parameter vector.

use crate::error::{CoreError, Result};
use crate::real::Real;
use serde::{Deserialize, Serialize};

/// Optimiser hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// Adam (Kingma & Ba) with bias correction and decoupled weight decay, as PyTorch's
    /// `AdamW` (and its `Adam` when `weight_decay = 0`): `p -= lr wd p` first, then
    /// `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
    /// `p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`, where `lr` includes the
    /// schedule's factor ([`Optimizer::set_lr_scale`]).
    Adam {
        /// Learning rate (> 0).
        lr: f64,
        /// First-moment decay (PhyLL: 0.9).
        beta1: f64,
        /// Second-moment decay (PhyLL: 0.999).
        beta2: f64,
        /// Denominator floor (PhyLL: 1e-8).
        eps: f64,
        /// Decoupled weight decay `wd` per unit learning rate (>= 0; PhyLL: 0). Every step
        /// shrinks each parameter by the factor `1 - lr wd`, the biases included; Hinton's FF
        /// code shrinks by `1e-5` per step (weight cost 0.001 at learning rate 0.01), which is
        /// `wd = 0.01` at `lr = 1e-3`. Absent from files written before it existed: 0.
        #[serde(default)]
        weight_decay: f64,
    },
    /// Stochastic gradient descent with optional heavy-ball momentum: `v = mu v + g`, `p -= lr v`.
    Sgd {
        /// Learning rate (> 0).
        lr: f64,
        /// Momentum `mu` in `[0, 1)`.
        momentum: f64,
    },
}

impl OptimizerConfig {
    /// Adam with the paper's betas and epsilon.
    pub fn adam(lr: f64) -> Self {
        OptimizerConfig::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }

    /// Adam with the paper's betas and epsilon and decoupled weight decay `weight_decay`
    /// (AdamW; see [`OptimizerConfig::Adam`]).
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        OptimizerConfig::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Adam { lr, .. } | OptimizerConfig::Sgd { lr, .. } => lr,
        }
    }

    /// Checks the hyper-parameters.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the offending value.
    pub fn validate(&self) -> Result<()> {
        let lr = self.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(CoreError::config("lr", format!("learning rate must be a positive number, got {lr}")));
        }
        match *self {
            OptimizerConfig::Adam { beta1, beta2, eps, weight_decay, .. } => {
                for (name, b) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return Err(CoreError::config(name, format!("must be in [0, 1), got {b}")));
                    }
                }
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(CoreError::config("eps", format!("must be positive, got {eps}")));
                }
                if !(weight_decay.is_finite() && weight_decay >= 0.0) {
                    return Err(CoreError::config(
                        "weight_decay",
                        format!("must be a number >= 0 (0 = none; Hinton's code: 0.01 at lr 1e-3), got {weight_decay}"),
                    ));
                }
                if lr * weight_decay >= 1.0 {
                    return Err(CoreError::config(
                        "weight_decay",
                        format!(
                            "lr x weight_decay must be below 1 (each step multiplies the parameters by 1 - lr x weight_decay), got {lr} x {weight_decay}"
                        ),
                    ));
                }
            }
            OptimizerConfig::Sgd { momentum, .. } => {
                if !(0.0..1.0).contains(&momentum) {
                    return Err(CoreError::config("momentum", format!("must be in [0, 1), got {momentum}")));
                }
            }
        }
        Ok(())
    }

    /// Digital floating-point operations of one step on `n` parameters (for accounting).
    pub fn flops_per_step(&self, n: usize) -> u64 {
        let per = match self {
            OptimizerConfig::Adam { weight_decay, .. } if *weight_decay != 0.0 => 13,
            OptimizerConfig::Adam { .. } => 12,
            OptimizerConfig::Sgd { .. } => 4,
        };
        per * n as u64
    }
}

/// How the learning rate changes over the epochs of a run: the optimiser's `lr` is multiplied
/// by [`LrSchedule::factor`] during each epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The same learning rate in every epoch (factor 1).
    #[default]
    Constant,
    /// Hinton's forward-forward code: factor 1 for epochs `e <= E/2`, then
    /// `(1 + 2 (E - e)) / E`, falling linearly to `1/E` in the last epoch `e = E`
    /// (epochs counted from 1).
    LinearDecay,
}

impl LrSchedule {
    /// The learning-rate factor of epoch `epoch` (from 1) of `epochs`.
    pub fn factor(self, epoch: usize, epochs: usize) -> f64 {
        match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::LinearDecay => {
                let (e, n) = (epoch as f64, epochs.max(1) as f64);
                if e <= n / 2.0 {
                    1.0
                } else {
                    (1.0 + 2.0 * (n - e).max(0.0)) / n
                }
            }
        }
    }

    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::LinearDecay => "linear-decay",
        }
    }
}

/// Optimiser state for one parameter vector.
///
/// Deserialising checks the state (valid hyper-parameters; Adam: `m` and `v` of one length,
/// `v >= 0`; SGD: no `v`) and reads the numbers in the precision `F`
/// ([`crate::serde_real`]); that the length matches the parameters is checked with the layer
/// ([`crate::NetworkState::validate`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Real", try_from = "OptimizerFile<F>")]
pub struct Optimizer<F> {
    config: OptimizerConfig,
    m: Vec<F>,
    v: Vec<F>,
    t: u64,
    /// Multiplier of the configured learning rate (set per epoch by a schedule; not saved:
    /// the trainer sets it again before every epoch, also after a resume; 1 when read).
    #[serde(skip)]
    lr_scale: f64,
}

/// An [`Optimizer`] as stored in a file, before it is checked.
#[derive(Deserialize)]
#[serde(bound = "F: Real")]
struct OptimizerFile<F> {
    config: OptimizerConfig,
    #[serde(deserialize_with = "crate::serde_real::vec")]
    m: Vec<F>,
    #[serde(deserialize_with = "crate::serde_real::vec")]
    v: Vec<F>,
    t: u64,
}

impl<F: Real> TryFrom<OptimizerFile<F>> for Optimizer<F> {
    type Error = CoreError;

    fn try_from(f: OptimizerFile<F>) -> Result<Self> {
        f.config.validate()?;
        match f.config {
            OptimizerConfig::Adam { .. } => {
                if f.v.len() != f.m.len() {
                    return Err(CoreError::Shape {
                        context: "Adam state m, v".into(),
                        expected: format!("as many second moments v as first moments m ({})", f.m.len()),
                        got: format!("{} in v", f.v.len()),
                    });
                }
                if let Some((i, x)) = f.v.iter().enumerate().find(|(_, x)| x.is_nan() || **x < F::zero()) {
                    return Err(CoreError::config(
                        "v",
                        format!("Adam's second moments are squares (>= 0), entry {i} is {x}"),
                    ));
                }
            }
            OptimizerConfig::Sgd { .. } => {
                if !f.v.is_empty() {
                    return Err(CoreError::Shape {
                        context: "SGD state v".into(),
                        expected: "no second moments (SGD keeps only m)".into(),
                        got: format!("{} values", f.v.len()),
                    });
                }
            }
        }
        Ok(Optimizer { config: f.config, m: f.m, v: f.v, t: f.t, lr_scale: 1.0 })
    }
}

impl<F: Real> Optimizer<F> {
    /// Fresh state for `n` parameters.
    pub fn new(config: OptimizerConfig, n: usize) -> Self {
        let v = match config {
            OptimizerConfig::Adam { .. } => vec![F::zero(); n],
            OptimizerConfig::Sgd { .. } => Vec::new(),
        };
        Optimizer { config, m: vec![F::zero(); n], v, t: 0, lr_scale: 1.0 }
    }

    /// Multiplies the configured learning rate by `scale` in the following steps (a
    /// [`LrSchedule`] factor; 1 restores it). The state (moments, step count) is kept.
    ///
    /// # Errors
    /// [`CoreError::Config`] unless `scale` is finite and positive.
    pub fn set_lr_scale(&mut self, scale: f64) -> Result<()> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(CoreError::config("lr scale", format!("must be a positive number, got {scale}")));
        }
        self.lr_scale = scale;
        Ok(())
    }

    /// The current learning-rate multiplier.
    pub fn lr_scale(&self) -> f64 {
        self.lr_scale
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Length of the parameter vector this state is for.
    pub fn num_params(&self) -> usize {
        self.m.len()
    }

    /// One update `params <- params - lr * direction(grad)`.
    ///
    /// # Panics
    /// If `params`, `grad` and the state have different lengths (a caller bug).
    pub fn step(&mut self, params: &mut [F], grad: &[F]) {
        assert!(params.len() == grad.len() && grad.len() == self.m.len(), "optimizer length mismatch");
        // Saturating: a step count read from a file may be anything.
        self.t = self.t.saturating_add(1);
        match self.config {
            OptimizerConfig::Adam { lr, beta1, beta2, eps, weight_decay } => {
                let lr = lr * self.lr_scale;
                if weight_decay != 0.0 {
                    let keep = F::c(1.0 - lr * weight_decay);
                    params.iter_mut().for_each(|p| *p *= keep);
                }
                let (b1, b2) = (F::c(beta1), F::c(beta2));
                // Past 2^31 steps the bias corrections are 1 to the last bit anyway.
                let t = i32::try_from(self.t).unwrap_or(i32::MAX);
                let bc1 = F::one() - F::c(beta1.powi(t));
                let bc2 = F::one() - F::c(beta2.powi(t));
                let step = F::c(lr) / bc1;
                let bc2_sqrt = bc2.sqrt();
                let eps = F::c(eps);
                for i in 0..params.len() {
                    let g = grad[i];
                    let m = b1 * self.m[i] + (F::one() - b1) * g;
                    let v = b2 * self.v[i] + (F::one() - b2) * g * g;
                    self.m[i] = m;
                    self.v[i] = v;
                    params[i] -= step * m / (v.sqrt() / bc2_sqrt + eps);
                }
            }
            OptimizerConfig::Sgd { lr, momentum } => {
                let (lr, mu) = (F::c(lr * self.lr_scale), F::c(momentum));
                for i in 0..params.len() {
                    let v = mu * self.m[i] + grad[i];
                    self.m[i] = v;
                    params[i] -= lr * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction, the first Adam step is lr * sign(g) (up to eps).
        let mut p = vec![1.0f64, -2.0];
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.1), 2);
        opt.step(&mut p, &[3.0, -0.5]);
        assert!((p[0] - 0.9).abs() < 1e-6 && (p[1] + 1.9).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn adamw_decays_before_the_adam_step_and_checks_its_value() {
        // First step: p (1 - lr wd) - lr sign(g), as PyTorch's AdamW.
        let mut p = vec![2.0f64, -1.0];
        let mut opt = Optimizer::new(OptimizerConfig::adamw(0.1, 0.5), 2);
        opt.step(&mut p, &[3.0, -0.5]);
        assert!((p[0] - (2.0 * 0.95 - 0.1)).abs() < 1e-6 && (p[1] - (-0.95 + 0.1)).abs() < 1e-6, "{p:?}");
        // With zero gradients only the decay acts, scaled by the schedule: (1 - lr s wd)^n.
        let mut q = vec![1.0f64];
        let mut opt = Optimizer::new(OptimizerConfig::adamw(0.01, 2.0), 1);
        opt.set_lr_scale(0.5).unwrap();
        for _ in 0..10 {
            opt.step(&mut q, &[0.0]);
        }
        assert!((q[0] - 0.99f64.powi(10)).abs() < 1e-12, "{}", q[0]);
        // weight_decay 0 is Adam bit for bit.
        let (mut a, mut b) = (vec![0.3f64, -0.7], vec![0.3f64, -0.7]);
        let (mut oa, mut ob) =
            (Optimizer::new(OptimizerConfig::adam(0.01), 2), Optimizer::new(OptimizerConfig::adamw(0.01, 0.0), 2));
        for g in [[1.0, -2.0], [0.5, 0.25], [-3.0, 1.0]] {
            oa.step(&mut a, &g);
            ob.step(&mut b, &g);
        }
        assert_eq!(a, b);
        for bad in [-0.1, f64::NAN, f64::INFINITY, 200.0] {
            let e = OptimizerConfig::adamw(0.01, bad).validate().unwrap_err().to_string();
            assert!(e.contains("weight_decay"), "{e}");
        }
    }

    #[test]
    fn adam_matches_hand_computed_second_step() {
        let mut p = vec![0.0f64];
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.01), 1);
        opt.step(&mut p, &[1.0]);
        opt.step(&mut p, &[2.0]);
        // m2 = 0.9*0.1 + 0.1*2 = 0.29, v2 = 0.999*0.001 + 0.001*4 = 0.004999
        let m_hat: f64 = 0.29 / (1.0 - 0.81);
        let v_hat: f64 = 0.004999 / (1.0 - 0.998001);
        let p1 = -0.01 / (1.0 + 1e-8);
        let expected = p1 - 0.01 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!((p[0] - expected).abs() < 1e-12, "{} vs {expected}", p[0]);
    }

    #[test]
    fn both_minimise_a_quadratic_and_configs_are_checked() {
        for cfg in [OptimizerConfig::adam(0.05), OptimizerConfig::Sgd { lr: 0.1, momentum: 0.5 }] {
            let mut p = vec![3.0f64, -4.0];
            let mut opt = Optimizer::new(cfg, 2);
            for _ in 0..500 {
                let g = vec![2.0 * p[0], 2.0 * p[1]];
                opt.step(&mut p, &g);
            }
            assert!(p[0].abs() < 1e-2 && p[1].abs() < 1e-2, "{cfg:?}: {p:?}");
        }
        let err = OptimizerConfig::adam(-0.1).validate().unwrap_err().to_string();
        assert!(err.contains("-0.1"), "{err}");
    }

    #[test]
    fn a_saved_state_that_does_not_fit_is_refused() {
        let mut opt = Optimizer::<f32>::new(OptimizerConfig::adam(0.1), 3);
        let mut p = vec![1.0f32, 2.0, 3.0];
        opt.step(&mut p, &[0.5, -0.5, 1.0]);
        let json = serde_json::to_string(&opt).unwrap();
        assert_eq!(serde_json::from_str::<Optimizer<f32>>(&json).unwrap(), opt);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let load = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut w = v.clone();
            edit(&mut w);
            serde_json::from_value::<Optimizer<f32>>(w).map(|_| ()).map_err(|e| e.to_string())
        };
        let e = load(&|w| {
            w["v"].as_array_mut().unwrap().pop();
        })
        .unwrap_err();
        assert!(e.contains("Adam state m, v") && e.contains("(3)") && e.contains("got 2 in v"), "{e}");
        let e = load(&|w| w["v"][1] = (-0.5).into()).unwrap_err();
        assert!(e.contains("entry 1 is -0.5"), "{e}");
        let e = load(&|w| w["config"]["lr"] = (-1.0).into()).unwrap_err();
        assert!(e.contains("lr") && e.contains("-1"), "{e}");
        let e = load(&|w| w["m"][0] = 1e39.into()).unwrap_err();
        assert!(e.contains("entry 0: value 1e39 overflows f32"), "{e}");
        let e = load(&|w| w["config"] = serde_json::json!({"kind": "sgd", "lr": 0.1, "momentum": 0.5})).unwrap_err();
        assert!(e.contains("SGD state v") && e.contains("3 values"), "{e}");
        // A step count near the end of u64 (or past i32) steps without overflow or garbage.
        let mut far: Optimizer<f32> = serde_json::from_value({
            let mut w = v.clone();
            w["t"] = u64::MAX.into();
            w
        })
        .unwrap();
        far.step(&mut p, &[0.1, 0.1, 0.1]);
        assert_eq!(far.steps(), u64::MAX);
        assert!(p.iter().all(|x| x.is_finite()), "{p:?}");
        assert_eq!(far.num_params(), 3);
    }

    #[test]
    fn linear_decay_follows_hintons_gain() {
        // Hinton's code, maxepoch 60: gain 1 up to epoch 30, then (1 + 2 (60 - e)) / 60.
        let s = LrSchedule::LinearDecay;
        assert_eq!(s.factor(1, 60), 1.0);
        assert_eq!(s.factor(30, 60), 1.0);
        assert!((s.factor(31, 60) - 59.0 / 60.0).abs() < 1e-15);
        assert!((s.factor(45, 60) - 31.0 / 60.0).abs() < 1e-15);
        assert!((s.factor(60, 60) - 1.0 / 60.0).abs() < 1e-15);
        // Odd epoch counts: 1 through e <= E/2 and (by the formula) at e = (E + 1) / 2, then
        // strictly decreasing and positive.
        let f: Vec<f64> = (1..=7).map(|e| s.factor(e, 7)).collect();
        assert_eq!(&f[..4], &[1.0; 4]);
        assert!(f.windows(2).skip(3).all(|w| w[1] < w[0]) && f[6] > 0.0, "{f:?}");
        assert!((1..=9).all(|e| LrSchedule::Constant.factor(e, 9) == 1.0));
    }

    #[test]
    fn a_scaled_step_equals_a_step_with_the_scaled_rate() {
        for (cfg, scaled) in [
            (OptimizerConfig::adam(0.1), OptimizerConfig::adam(0.025)),
            (OptimizerConfig::Sgd { lr: 0.1, momentum: 0.5 }, OptimizerConfig::Sgd { lr: 0.025, momentum: 0.5 }),
        ] {
            let (mut a, mut b) = (Optimizer::<f64>::new(cfg, 2), Optimizer::<f64>::new(scaled, 2));
            let (mut pa, mut pb) = (vec![1.0, -2.0], vec![1.0, -2.0]);
            a.step(&mut pa, &[0.3, 0.7]);
            b.set_lr_scale(4.0).unwrap();
            b.step(&mut pb, &[0.3, 0.7]);
            // Step 2: a at a quarter of its rate, b at four times its quarter-rate.
            a.set_lr_scale(0.25).unwrap();
            b.set_lr_scale(1.0).unwrap();
            a.step(&mut pa, &[-0.2, 0.5]);
            b.step(&mut pb, &[-0.2, 0.5]);
            for (x, y) in pa.iter().zip(&pb) {
                assert!((x - y).abs() < 1e-12, "{cfg:?}: {pa:?} vs {pb:?}");
            }
        }
        let mut o = Optimizer::<f32>::new(OptimizerConfig::adam(0.1), 1);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = o.set_lr_scale(bad).unwrap_err().to_string();
            assert!(err.contains("lr scale"), "{err}");
        }
        assert_eq!(o.lr_scale(), 1.0);
    }
}

//! Local losses built from the goodness of positive and negative samples.

use crate::error::{CoreError, Result};
use crate::real::Real;
use serde::{Deserialize, Serialize};

/// A block's local loss over a batch of positive and negative goodness values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Loss {
    /// SymBa (PhyLL): `L = mean_i softplus(-alpha (g_pos_i - g_neg_i))`. Positive and negative
    /// samples are paired (same input, true vs wrong label). alpha = 4 (5 for optics).
    Symba {
        /// Sharpness `alpha > 0`.
        alpha: f64,
    },
    /// Hinton: `L = mean_i [softplus(theta - g_pos_i) + softplus(g_neg_i - theta)]`.
    Hinton {
        /// Threshold `theta` on the goodness.
        theta: f64,
    },
}

impl Default for Loss {
    fn default() -> Self {
        Loss::Symba { alpha: 4.0 }
    }
}

/// `ln(1 + e^x)`, stable for all `x`.
#[inline]
pub fn softplus<F: Real>(x: F) -> F {
    x.max(F::zero()) + (-x.abs()).exp().ln_1p()
}

/// `1 / (1 + e^-x)`, stable for all `x`.
#[inline]
pub fn sigmoid<F: Real>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}

impl Loss {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`CoreError::Config`] for a non-positive or non-finite alpha, or a non-finite theta.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Loss::Symba { alpha } if !(alpha.is_finite() && alpha > 0.0) => Err(CoreError::config(
                "alpha",
                format!("must be a positive number, got {alpha}; the paper uses 4 (5 for optics)"),
            )),
            Loss::Hinton { theta } if !theta.is_finite() => {
                Err(CoreError::config("theta", format!("must be finite, got {theta}")))
            }
            _ => Ok(()),
        }
    }

    /// Mean loss over the batch; writes `dL/dg_pos` and `dL/dg_neg` (same lengths as the inputs).
    ///
    /// # Panics
    /// If the slices have different lengths (a caller bug; the network pairs them by construction).
    pub fn eval<F: Real>(&self, g_pos: &[F], g_neg: &[F], d_pos: &mut [F], d_neg: &mut [F]) -> F {
        let n = g_pos.len();
        if n == 0 {
            assert!(g_neg.is_empty() && d_pos.is_empty() && d_neg.is_empty(), "loss: length mismatch");
            return F::zero();
        }
        let inv_n = F::one() / F::from_usize(n).unwrap();
        self.eval_sum(g_pos, g_neg, d_pos, d_neg, inv_n) * inv_n
    }

    /// The loss terms of some pairs of a larger batch: returns their *sum* (not the mean) and
    /// writes `dL/dg` of the batch mean, `inv_n` being one over the whole batch's pair count.
    /// Summing the returned values over the pieces of a batch and multiplying by `inv_n` gives
    /// [`Loss::eval`] of the whole batch (up to the order of the additions); the derivatives
    /// are the same bits whatever the pieces.
    ///
    /// # Panics
    /// If the slices have different lengths.
    pub fn eval_sum<F: Real>(&self, g_pos: &[F], g_neg: &[F], d_pos: &mut [F], d_neg: &mut [F], inv_n: F) -> F {
        let n = g_pos.len();
        assert!(g_neg.len() == n && d_pos.len() == n && d_neg.len() == n, "loss: length mismatch");
        let mut total = F::zero();
        match *self {
            Loss::Symba { alpha } => {
                let a = F::c(alpha);
                for i in 0..n {
                    let x = -a * (g_pos[i] - g_neg[i]);
                    total += softplus(x);
                    let s = sigmoid(x) * a * inv_n;
                    d_pos[i] = -s;
                    d_neg[i] = s;
                }
            }
            Loss::Hinton { theta } => {
                let t = F::c(theta);
                for i in 0..n {
                    let xp = t - g_pos[i];
                    let xn = g_neg[i] - t;
                    total += softplus(xp) + softplus(xn);
                    d_pos[i] = -sigmoid(xp) * inv_n;
                    d_neg[i] = sigmoid(xn) * inv_n;
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn loss_gradients_match_finite_differences(
            gp in proptest::collection::vec(-2.0f64..2.0, 1..8),
            shift in -1.0f64..1.0,
            hinton: bool,
        ) {
            let gn: Vec<f64> = gp.iter().map(|g| g * 0.5 + shift).collect();
            let loss = if hinton { Loss::Hinton { theta: 0.7 } } else { Loss::Symba { alpha: 4.0 } };
            let n = gp.len();
            let (mut dp, mut dn) = (vec![0.0; n], vec![0.0; n]);
            loss.eval(&gp, &gn, &mut dp, &mut dn);
            let h = 1e-6;
            let f = |p: &[f64], q: &[f64]| { let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]); loss.eval(p, q, &mut a, &mut b) };
            for i in 0..n {
                let (mut p1, mut p2) = (gp.clone(), gp.clone());
                p1[i] += h; p2[i] -= h;
                let fd = (f(&p1, &gn) - f(&p2, &gn)) / (2.0 * h);
                prop_assert!((fd - dp[i]).abs() < 1e-6 * (1.0 + dp[i].abs()));
                let (mut q1, mut q2) = (gn.clone(), gn.clone());
                q1[i] += h; q2[i] -= h;
                let fd = (f(&gp, &q1) - f(&gp, &q2)) / (2.0 * h);
                prop_assert!((fd - dn[i]).abs() < 1e-6 * (1.0 + dn[i].abs()));
            }
        }
    }

    proptest! {
        /// The pieces of a batch give the whole batch's derivatives bit for bit, and their summed
        /// terms times 1/n give its mean loss up to rounding.
        #[test]
        fn pieces_sum_to_the_whole_batch(
            gp in proptest::collection::vec(-1.0f64..1.0, 1..12),
            cut in 0usize..12,
            hinton: bool,
        ) {
            let n = gp.len();
            let cut = cut.min(n);
            let gn: Vec<f64> = gp.iter().map(|g| 0.3 - g).collect();
            let loss = if hinton { Loss::Hinton { theta: 0.5 } } else { Loss::Symba { alpha: 5.0 } };
            let (mut dp, mut dn) = (vec![0.0; n], vec![0.0; n]);
            let whole = loss.eval(&gp, &gn, &mut dp, &mut dn);
            let inv_n = 1.0 / n as f64;
            let (mut ep, mut en) = (vec![0.0; n], vec![0.0; n]);
            let (ep1, ep2) = ep.split_at_mut(cut);
            let (en1, en2) = en.split_at_mut(cut);
            let s1 = loss.eval_sum(&gp[..cut], &gn[..cut], ep1, en1, inv_n);
            let s2 = loss.eval_sum(&gp[cut..], &gn[cut..], ep2, en2, inv_n);
            prop_assert!(((s1 + s2) * inv_n - whole).abs() <= 1e-12 * (1.0 + whole.abs()));
            prop_assert_eq!(ep, dp);
            prop_assert_eq!(en, dn);
        }
    }

    #[test]
    fn softplus_is_stable() {
        assert_eq!(softplus(1000.0f64), 1000.0);
        assert!(softplus(-1000.0f64) >= 0.0 && softplus(-1000.0f64) < 1e-300);
        assert!((softplus(0.0f64) - 2f64.ln()).abs() < 1e-15);
        assert!(Loss::Symba { alpha: -1.0 }.validate().is_err());
    }
}

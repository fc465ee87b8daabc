//! Imperfections of real hardware as wrappers around any [`PhysicalSystem`]: detector noise
//! ([`Noisy`]), ADC quantisation ([`Quantized`]) and drift of the system's internal parameters
//! ([`Drift`], which needs the wrapped system to be [`Perturbable`]).
//!
//! Each wrapper is itself a `PhysicalSystem` with the wrapped system's input and output lengths,
//! so they stack (`Drift<Noisy<Quantized<S>>>`...) and a trainer cannot tell them from hardware.
//! All randomness comes from explicit seeds: two wrappers built from the same configuration answer
//! the same query sequence with the same bits. Noise and drift advance internal state with every
//! query, so those wrappers are not stateless. Drift runs on a [`DriftClock`], which several
//! wrappers may share (one device used by several blocks) and which can be paused (evaluation
//! queries that must not age the device).

use crate::adapt::Resampled;
use ff_core::rng::{rng_for, Rng};
use ff_core::{check_batch, CoreError, MatMut, MatRef, PhysicalSystem, Real, SystemError};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A system whose internal physical parameters can be disturbed: the hook used by [`Drift`].
///
/// Implementations document what moves and the unit of `strength` (for the cavity simulators:
/// a standard deviation in the simulator's length unit and a relative resonance jitter).
/// Perturbations accumulate (each call moves the system from its current state), and must be
/// deterministic given the generator state: same `rng` state, same perturbation.
pub trait Perturbable {
    /// Applies one random perturbation of size `strength` (>= 0; 0 leaves the system unchanged
    /// in distribution) drawing from `rng`.
    fn perturb(&mut self, strength: f64, rng: &mut Rng);
}

impl<S: Perturbable + ?Sized> Perturbable for Box<S> {
    fn perturb(&mut self, strength: f64, rng: &mut Rng) {
        (**self).perturb(strength, rng)
    }
}

fn check_finite_non_negative(field: &str, v: f64) -> Result<(), CoreError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(CoreError::config(field, format!("must be >= 0 and finite, got {v}")))
    }
}

// ---------------------------------------------------------------------------------------------
// Detector noise
// ---------------------------------------------------------------------------------------------

/// Detector noise added to every output value `y`: `y + sqrt(sigma^2 + shot_gain |y|) n`,
/// `n ~ N(0, 1)` independent per value.
///
/// - additive Gaussian noise with standard deviation `gaussian_sigma` (in output units);
/// - shot-like noise with variance `shot_gain |y|` (`shot_gain` in output units: for a photon
///   counter whose output is `y = g N` with `N` Poisson counts, `shot_gain = g`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NoiseConfig {
    /// Standard deviation of the additive Gaussian noise, in output units (>= 0). Default 0.01.
    pub gaussian_sigma: f64,
    /// Shot-noise gain: variance `shot_gain |y|`, in output units (>= 0). Default 0.
    pub shot_gain: f64,
    /// Seed of the noise stream.
    pub seed: u64,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig { gaussian_sigma: 0.01, shot_gain: 0.0, seed: 0 }
    }
}

impl NoiseConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming a negative or non-finite field.
    pub fn validate(&self) -> Result<(), CoreError> {
        check_finite_non_negative("gaussian_sigma", self.gaussian_sigma)?;
        check_finite_non_negative("shot_gain", self.shot_gain)
    }
}

/// A system with detector noise on its outputs (see [`NoiseConfig`]). Values are drawn in
/// row-major output order from one seeded stream, so the noise depends on the query sequence
/// (not stateless) but is reproducible.
#[derive(Clone, Debug)]
pub struct Noisy<S> {
    inner: S,
    config: NoiseConfig,
    rng: Rng,
}

impl<S> Noisy<S> {
    /// Wraps `inner`.
    ///
    /// # Errors
    /// [`CoreError::Config`] if the configuration is invalid.
    pub fn new(inner: S, config: NoiseConfig) -> Result<Self, CoreError> {
        config.validate()?;
        let rng = rng_for(config.seed, "detector noise");
        Ok(Noisy { inner, config, rng })
    }

    /// The wrapped system.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped system, mutably.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<F: Real, S: PhysicalSystem<F>> PhysicalSystem<F> for Noisy<S> {
    fn name(&self) -> String {
        format!("{} + noise(sigma {}, shot {})", self.inner.name(), self.config.gaussian_sigma, self.config.shot_gain)
    }
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn output_len(&self) -> usize {
        self.inner.output_len()
    }
    fn is_physical(&self) -> bool {
        self.inner.is_physical()
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        let name = PhysicalSystem::<F>::name(self);
        check_batch(&name, self.input_len(), self.output_len(), &input, &output)?;
        self.inner.forward_batch(input, output.reborrow())?;
        let (s2, g) = (self.config.gaussian_sigma.powi(2), self.config.shot_gain);
        for y in output.data_mut() {
            let v = y.to_f64().unwrap_or(f64::NAN);
            let n: f64 = StandardNormal.sample(&mut self.rng);
            *y = F::c(v + (s2 + g * v.abs()).sqrt() * n);
        }
        Ok(())
    }
}

impl<S: Perturbable> Perturbable for Noisy<S> {
    fn perturb(&mut self, strength: f64, rng: &mut Rng) {
        self.inner.perturb(strength, rng)
    }
}

// ---------------------------------------------------------------------------------------------
// ADC quantisation
// ---------------------------------------------------------------------------------------------

/// An analogue-to-digital converter with `bits` bits over `[full_scale_min, full_scale_max]`
/// (output units).
///
/// The `2^bits` levels are `full_scale_min + c * step`, `c = 0..2^bits - 1`, with
/// `step = (full_scale_max - full_scale_min) / (2^bits - 1)`, so both ends of the range are
/// levels. A value is clipped to the range (values below read `full_scale_min`, above read
/// `full_scale_max`, like a saturating converter), then rounded to the nearest level, ties away
/// from `full_scale_min`. Quantising twice is the same as quantising once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdcConfig {
    /// Resolution in bits, 1..=24. Default 8.
    pub bits: u32,
    /// Lowest representable value (output units). Default 0.
    pub full_scale_min: f64,
    /// Highest representable value (output units), > `full_scale_min`. Default 1.
    pub full_scale_max: f64,
}

impl Default for AdcConfig {
    fn default() -> Self {
        AdcConfig { bits: 8, full_scale_min: 0.0, full_scale_max: 1.0 }
    }
}

impl AdcConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<(), CoreError> {
        if !(1..=24).contains(&self.bits) {
            return Err(CoreError::config(
                "bits",
                format!("must be in 1..=24 (f32 outputs hold 24-bit levels exactly), got {}", self.bits),
            ));
        }
        if !self.full_scale_min.is_finite() {
            return Err(CoreError::config("full_scale_min", format!("must be finite, got {}", self.full_scale_min)));
        }
        if !(self.full_scale_max.is_finite() && self.full_scale_max > self.full_scale_min) {
            return Err(CoreError::config(
                "full_scale_max",
                format!(
                    "must be finite and exceed full_scale_min = {}, got {}",
                    self.full_scale_min, self.full_scale_max
                ),
            ));
        }
        Ok(())
    }

    /// Distance between neighbouring levels (output units).
    pub fn step(&self) -> f64 {
        (self.full_scale_max - self.full_scale_min) / ((1u64 << self.bits) - 1) as f64
    }

    /// The integer code of `y`, `0..2^bits` (clipped; NaN reads as code 0).
    pub fn code(&self, y: f64) -> u32 {
        let max_code = ((1u64 << self.bits) - 1) as f64;
        let c = ((y - self.full_scale_min) / self.step()).round();
        if c.is_nan() {
            0
        } else {
            c.clamp(0.0, max_code) as u32
        }
    }

    /// The level `y` reads as: `full_scale_min + code(y) * step`.
    pub fn quantize(&self, y: f64) -> f64 {
        self.full_scale_min + f64::from(self.code(y)) * self.step()
    }
}

/// A system read through an ADC (see [`AdcConfig`]). Stateless if the wrapped system is.
#[derive(Clone, Debug)]
pub struct Quantized<S> {
    inner: S,
    config: AdcConfig,
}

impl<S> Quantized<S> {
    /// Wraps `inner`.
    ///
    /// # Errors
    /// [`CoreError::Config`] if the configuration is invalid.
    pub fn new(inner: S, config: AdcConfig) -> Result<Self, CoreError> {
        config.validate()?;
        Ok(Quantized { inner, config })
    }

    /// The wrapped system.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<F: Real, S: PhysicalSystem<F>> PhysicalSystem<F> for Quantized<S> {
    fn name(&self) -> String {
        format!(
            "{} + adc({} bits over [{}, {}])",
            self.inner.name(),
            self.config.bits,
            self.config.full_scale_min,
            self.config.full_scale_max
        )
    }
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn output_len(&self) -> usize {
        self.inner.output_len()
    }
    fn is_physical(&self) -> bool {
        self.inner.is_physical()
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        let name = PhysicalSystem::<F>::name(self);
        check_batch(&name, self.input_len(), self.output_len(), &input, &output)?;
        self.inner.forward_batch(input, output.reborrow())?;
        for y in output.data_mut() {
            *y = F::c(self.config.quantize(y.to_f64().unwrap_or(f64::NAN)));
        }
        Ok(())
    }
}

impl<S: Perturbable> Perturbable for Quantized<S> {
    fn perturb(&mut self, strength: f64, rng: &mut Rng) {
        self.inner.perturb(strength, rng)
    }
}

// ---------------------------------------------------------------------------------------------
// Drift
// ---------------------------------------------------------------------------------------------

/// Drift of the wrapped system's parameters as a function of the query count: the number of
/// samples (batch rows) counted by the wrapper's [`DriftClock`]. By default every wrapper has
/// its own clock, which counts every query made through it; wrappers built with
/// [`Drift::with_clock`] share one (see [`DriftClock`] for what it counts).
///
/// - Slow drift: if `period > 0`, `perturb(slow_strength)` is applied each time the count
///   reaches a positive multiple of `period`: samples `0..period` see the original system,
///   samples `period..2 period` the once-perturbed one, and so on.
/// - Sudden perturbation: if `sudden_at` is `Some(n)`, `perturb(sudden_strength)` is applied once
///   when the count reaches `n`: sample `n` (0-based) is the first to see it.
///
/// When both fall on the same count the slow step comes first. Events take effect between two
/// samples even inside a batch (the batch is split there), so the answer does not depend on how
/// queries are batched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftConfig {
    /// Samples between two slow-drift steps; 0 disables slow drift. Default 100.
    pub period: u64,
    /// Strength of each slow-drift step (unit set by the wrapped system's `perturb`). Default 1e-3.
    pub slow_strength: f64,
    /// Query count at which the sudden perturbation happens; `None` disables it. Default `None`.
    pub sudden_at: Option<u64>,
    /// Strength of the sudden perturbation. Default 0.05.
    pub sudden_strength: f64,
    /// Seed of the perturbation stream.
    pub seed: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig { period: 100, slow_strength: 1e-3, sudden_at: None, sudden_strength: 0.05, seed: 0 }
    }
}

impl DriftConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming a negative or non-finite strength.
    pub fn validate(&self) -> Result<(), CoreError> {
        check_finite_non_negative("slow_strength", self.slow_strength)?;
        check_finite_non_negative("sudden_strength", self.sudden_strength)
    }

    /// The first count after `q` at which an event happens (`u64::MAX` if none).
    fn next_event_after(&self, q: u64) -> u64 {
        let slow = q.checked_div(self.period).map_or(u64::MAX, |n| (n + 1).saturating_mul(self.period));
        let sudden = self.sudden_at.filter(|&n| n > q).unwrap_or(u64::MAX);
        slow.min(sudden)
    }

    /// The first count (from 0) at which an event happens (`u64::MAX` if none).
    fn first_event(&self) -> u64 {
        if self.sudden_at == Some(0) {
            0
        } else {
            self.next_event_after(0)
        }
    }
}

/// The clock that drives [`Drift`]: a count of samples, shared by every wrapper built on it
/// (clones share the count), and a pause switch.
///
/// A physical device used by several blocks of a network ages with the total use, whichever
/// block queries it: give every block's [`Drift`] wrapper the same clock (and the same
/// [`DriftConfig`], so the same seed) and the device moves the same way in every block's view,
/// on the total count. While the clock is paused (see [`DriftClock::pause`]), queries are not
/// counted and no new event falls due: an evaluation then sees the system in the state the next
/// counted sample will see (every event due at the current count applied) and leaves the drift
/// schedule where it was, so the schedule is a function of the counted (training) queries
/// alone. Events that fell due while a wrapper was not queried (other wrappers advanced
/// the shared count) are applied, in order, before its next query.
#[derive(Clone, Debug, Default)]
pub struct DriftClock {
    inner: Arc<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    count: AtomicU64,
    /// Number of live [`ClockPause`] guards.
    pauses: AtomicU64,
}

impl DriftClock {
    /// A running clock at count 0.
    pub fn new() -> Self {
        DriftClock::default()
    }

    /// Samples counted so far.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// Whether queries are being counted (no [`ClockPause`] guard is alive).
    pub fn is_running(&self) -> bool {
        self.inner.pauses.load(Ordering::SeqCst) == 0
    }

    /// Pauses the clock until the returned guard (and every other live guard) is dropped.
    #[must_use = "the clock runs again as soon as the guard is dropped"]
    pub fn pause(&self) -> ClockPause {
        self.inner.pauses.fetch_add(1, Ordering::SeqCst);
        ClockPause { clock: self.clone() }
    }

    fn advance(&self, samples: u64) {
        self.inner.count.fetch_add(samples, Ordering::SeqCst);
    }
}

/// Keeps a [`DriftClock`] paused while alive (see [`DriftClock::pause`]).
#[derive(Debug)]
pub struct ClockPause {
    clock: DriftClock,
}

impl Drop for ClockPause {
    fn drop(&mut self) {
        self.clock.inner.pauses.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A drifting system (see [`DriftConfig`] and [`DriftClock`]).
#[derive(Clone, Debug)]
pub struct Drift<S> {
    inner: S,
    config: DriftConfig,
    rng: Rng,
    clock: DriftClock,
    /// Every event at a count `<=` this has been applied (`None`: none yet), so an interrupted
    /// query never applies an event twice.
    applied_through: Option<u64>,
}

impl<S: Perturbable> Drift<S> {
    /// Wraps `inner` with a clock of its own, at count 0.
    ///
    /// # Errors
    /// [`CoreError::Config`] if the configuration is invalid.
    pub fn new(inner: S, config: DriftConfig) -> Result<Self, CoreError> {
        Drift::with_clock(inner, config, DriftClock::new())
    }

    /// Wraps `inner` on a shared `clock` (see [`DriftClock`]): events fall due at counts of
    /// that clock. Events already due at the clock's current count are applied before the first
    /// query.
    ///
    /// # Errors
    /// [`CoreError::Config`] if the configuration is invalid.
    pub fn with_clock(inner: S, config: DriftConfig, clock: DriftClock) -> Result<Self, CoreError> {
        config.validate()?;
        let rng = rng_for(config.seed, "drift");
        Ok(Drift { inner, config, rng, clock, applied_through: None })
    }

    /// Samples counted so far by the clock (with a shared clock: through every wrapper on it,
    /// pauses excluded).
    pub fn queried(&self) -> u64 {
        self.clock.count()
    }

    /// The clock this wrapper runs on.
    pub fn clock(&self) -> &DriftClock {
        &self.clock
    }

    /// The wrapped system in the state of its last query (events that fell due since, on a
    /// shared clock, are applied at the next query).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Applies, in order, every event at a count up to the clock's that has not been applied.
    fn catch_up(&mut self) {
        let q = self.clock.count();
        let mut t = match self.applied_through {
            None => self.config.first_event(),
            Some(a) => self.config.next_event_after(a),
        };
        while t <= q {
            let c = &self.config;
            if c.period > 0 && t > 0 && t % c.period == 0 {
                self.inner.perturb(c.slow_strength, &mut self.rng);
            }
            if c.sudden_at == Some(t) {
                self.inner.perturb(c.sudden_strength, &mut self.rng);
            }
            t = self.config.next_event_after(t);
        }
        self.applied_through = Some(q);
    }
}

impl<F: Real, S: PhysicalSystem<F> + Perturbable> PhysicalSystem<F> for Drift<S> {
    fn name(&self) -> String {
        format!("{} + drift", self.inner.name())
    }
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn output_len(&self) -> usize {
        self.inner.output_len()
    }
    fn is_physical(&self) -> bool {
        self.inner.is_physical()
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        let name = PhysicalSystem::<F>::name(self);
        let (n_in, n_out) = (self.input_len(), self.output_len());
        check_batch(&name, n_in, n_out, &input, &output)?;
        let rows = input.rows();
        let mut row = 0;
        while row < rows {
            self.catch_up();
            let running = self.clock.is_running();
            let len = if running {
                let q = self.clock.count();
                let until = self.config.next_event_after(q) - q;
                (rows - row).min(usize::try_from(until).unwrap_or(usize::MAX))
            } else {
                rows - row
            };
            let x = input.slice_rows(row, row + len);
            let y = MatMut::new(len, n_out, &mut output.data_mut()[row * n_out..(row + len) * n_out])
                .expect("row range of a checked buffer");
            self.inner.forward_batch(x, y)?;
            row += len;
            if running {
                self.clock.advance(len as u64);
            }
        }
        Ok(())
    }
}

impl<S: Perturbable> Perturbable for Drift<S> {
    fn perturb(&mut self, strength: f64, rng: &mut Rng) {
        self.inner.perturb(strength, rng)
    }
}

impl<S: Perturbable> Perturbable for Resampled<S> {
    /// Perturbs the system behind the resampling (the resampling map itself never changes).
    fn perturb(&mut self, strength: f64, rng: &mut Rng) {
        self.inner_mut().perturb(strength, rng)
    }
}

/// A [`PhysicalSystem`] that is also [`Perturbable`], as one trait so that it can be boxed
/// (`Box<dyn PerturbableSystem<F>>`) and wrapped in [`Drift`] whatever its concrete type.
pub trait PerturbableSystem<F: Real>: PhysicalSystem<F> + Perturbable {}

impl<F: Real, S: PhysicalSystem<F> + Perturbable + ?Sized> PerturbableSystem<F> for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::microwave::{MicrowaveCavity, MicrowaveConfig};
    use ff_core::conformance::{check_conformance, Conformance};
    use ff_core::Matrix;

    /// A perturbable toy system: `y_j = sum_i w_ji x_i + offset`, whose weights `perturb` jitters.
    #[derive(Clone, Debug)]
    struct Toy {
        w: Vec<f64>,
        n_in: usize,
        n_out: usize,
        offset: f64,
    }

    impl Toy {
        fn new(n_in: usize, n_out: usize, offset: f64) -> Self {
            let w = (0..n_in * n_out).map(|k| ((k * 37 % 11) as f64 - 5.0) / 10.0).collect();
            Toy { w, n_in, n_out, offset }
        }
    }

    impl<F: Real> PhysicalSystem<F> for Toy {
        fn name(&self) -> String {
            "toy".into()
        }
        fn input_len(&self) -> usize {
            self.n_in
        }
        fn output_len(&self) -> usize {
            self.n_out
        }
        fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
            check_batch("toy", self.n_in, self.n_out, &input, &output)?;
            for r in 0..input.rows() {
                let x = input.row(r);
                let out = output.row_mut(r);
                for (j, o) in out.iter_mut().enumerate() {
                    let s: f64 = (0..self.n_in).map(|i| self.w[j * self.n_in + i] * x[i].to_f64().unwrap()).sum();
                    *o = F::c(s + self.offset);
                }
            }
            Ok(())
        }
    }

    impl Perturbable for Toy {
        fn perturb(&mut self, strength: f64, rng: &mut Rng) {
            for w in &mut self.w {
                let n: f64 = StandardNormal.sample(rng);
                *w += strength * n;
            }
        }
    }

    fn mean_var(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0))
    }

    /// Outputs of a constant system (all-zero weights) under noise, many samples.
    fn noisy_constant(level: f64, cfg: NoiseConfig, rows: usize) -> Vec<f64> {
        let mut toy = Toy::new(1, 4, level);
        toy.w.fill(0.0);
        let mut sys = Noisy::new(toy, cfg).unwrap();
        let x = Matrix::<f64>::zeros(rows, 1);
        sys.forward(x.view()).unwrap().into_vec()
    }

    #[test]
    fn gaussian_noise_statistics() {
        // 40 000 draws: the mean is within 5 sigma/sqrt(n) = 0.0125 and the variance within
        // 5 * sqrt(2/n) = 3.5 % of the truth.
        let cfg = NoiseConfig { gaussian_sigma: 0.5, shot_gain: 0.0, seed: 3 };
        let v = noisy_constant(2.0, cfg, 10_000);
        let (m, var) = mean_var(&v);
        assert!((m - 2.0).abs() < 0.0125, "mean {m}");
        assert!((var / 0.25 - 1.0).abs() < 0.035, "variance {var}");
    }

    #[test]
    fn shot_noise_variance_is_proportional_to_the_signal() {
        for level in [4.0, -9.0] {
            let cfg = NoiseConfig { gaussian_sigma: 0.0, shot_gain: 0.1, seed: 5 };
            let v = noisy_constant(level, cfg, 10_000);
            let (m, var) = mean_var(&v);
            let expected = 0.1 * f64::abs(level);
            assert!((m - level).abs() < 5.0 * (expected / 40_000.0).sqrt(), "mean {m}");
            assert!((var / expected - 1.0).abs() < 0.035, "variance {var} vs {expected}");
        }
        // A zero signal has no shot noise at all.
        let v = noisy_constant(0.0, NoiseConfig { gaussian_sigma: 0.0, shot_gain: 0.1, seed: 5 }, 10);
        assert!(v.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn noise_is_seeded() {
        let cfg = |seed| NoiseConfig { gaussian_sigma: 0.1, shot_gain: 0.0, seed };
        assert_eq!(noisy_constant(1.0, cfg(1), 50), noisy_constant(1.0, cfg(1), 50));
        assert_ne!(noisy_constant(1.0, cfg(1), 50), noisy_constant(1.0, cfg(2), 50));
    }

    #[test]
    fn quantiser_hand_worked_levels() {
        // 2 bits over [0, 3]: levels 0, 1, 2, 3 (step 1); clipping at both ends; ties round up.
        let adc = AdcConfig { bits: 2, full_scale_min: 0.0, full_scale_max: 3.0 };
        let cases = [(-1.0, 0.0), (0.0, 0.0), (0.49, 0.0), (0.5, 1.0), (1.4, 1.0), (2.5, 3.0), (3.0, 3.0), (7.0, 3.0)];
        for (y, q) in cases {
            assert_eq!(adc.quantize(y), q, "Q({y})");
        }
        assert_eq!(adc.code(f64::NAN), 0);
        // 3 bits over [-1, 1]: step 2/7; 0.1 -> 3.85 steps above -1 -> code 4 -> -1 + 8/7.
        let adc = AdcConfig { bits: 3, full_scale_min: -1.0, full_scale_max: 1.0 };
        assert_eq!(adc.code(0.1), 4);
        assert!((adc.quantize(0.1) - 1.0 / 7.0).abs() < 1e-15);
        assert_eq!(adc.code(-0.999), 0);
        assert_eq!(adc.code(1.5), 7);
    }

    #[test]
    fn quantiser_is_idempotent_through_the_wrapper() {
        let adc = AdcConfig { bits: 12, full_scale_min: -2.0, full_scale_max: 2.0 };
        let mut once = Quantized::new(Toy::new(3, 5, 0.3), adc.clone()).unwrap();
        let x = Matrix::<f32>::from_fn(40, 3, |i, j| ((i * 13 + j * 7) % 17) as f32 / 4.0 - 2.0);
        let y1 = once.forward(x.view()).unwrap();
        let mut levels = 0;
        for &v in y1.data() {
            let v = f64::from(v);
            assert!((-2.0..=2.0).contains(&v));
            assert_eq!(f64::from(adc.quantize(v) as f32), v, "not idempotent at {v}");
            levels += usize::from(v.abs() < 2.0);
        }
        assert!(levels > 0, "every output clipped: the test would prove nothing");
    }

    #[test]
    fn drift_changes_the_output_at_the_stated_counts_only() {
        let cfg = DriftConfig { period: 10, slow_strength: 0.01, sudden_at: Some(25), sudden_strength: 1.0, seed: 9 };
        let x = Matrix::<f64>::from_fn(32, 3, |_, j| 1.0 + j as f64);
        let baseline = PhysicalSystem::<f64>::forward(&mut Toy::new(3, 2, 0.0), x.slice_rows(0, 1).view()).unwrap();
        let mut d = Drift::new(Toy::new(3, 2, 0.0), cfg.clone()).unwrap();
        let y = d.forward(x.view()).unwrap();
        assert_eq!(d.queried(), 32);
        let diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum::<f64>();
        for r in 0..10 {
            assert_eq!(y.row(r), baseline.row(0), "sample {r} changed before the first drift step");
        }
        let step = |r: usize| diff(y.row(r), y.row(r - 1));
        for r in 1..32 {
            let changed = step(r) > 0.0;
            let expected = r % 10 == 0 || r == 25;
            assert_eq!(changed, expected, "sample {r}: change {}", step(r));
        }
        assert!(step(25) > 10.0 * step(20), "sudden {} vs slow {}", step(25), step(20));

        // Same answers when the same sequence is queried in other batch sizes.
        let mut d2 = Drift::new(Toy::new(3, 2, 0.0), cfg).unwrap();
        let mut rows = Vec::new();
        for (a, b) in [(0, 1), (1, 8), (8, 21), (21, 32)] {
            rows.extend(d2.forward(x.slice_rows(a, b).view()).unwrap().into_vec());
        }
        assert_eq!(rows, y.into_vec());
    }

    #[test]
    fn drift_on_the_microwave_cavity() {
        let mw = MicrowaveConfig {
            n_inputs: 4,
            n_freqs: 5,
            cavity_width: 2.5,
            cavity_height: 2.5,
            wall_spacing: 0.25,
            n_scatterers: 2,
            ..MicrowaveConfig::default()
        };
        let cfg = DriftConfig { period: 0, sudden_at: Some(3), sudden_strength: 0.02, ..DriftConfig::default() };
        let mut d = Drift::new(MicrowaveCavity::new(mw).unwrap(), cfg).unwrap();
        let x = Matrix::<f64>::from_fn(5, 4, |_, j| j as f64);
        let y = d.forward(x.view()).unwrap();
        assert_eq!(y.row(0), y.row(2));
        assert_ne!(y.row(2), y.row(3));
        assert_eq!(y.row(3), y.row(4));
    }

    #[test]
    fn a_shared_clock_counts_every_wrapper_and_pauses() {
        // Two wrappers (two blocks using one device) on one clock: the sudden change at count 6
        // hits whichever wrapper is queried at or after that count, and both see the same device.
        let cfg =
            DriftConfig { period: 0, sudden_at: Some(6), sudden_strength: 1.0, seed: 4, ..DriftConfig::default() };
        let clock = DriftClock::new();
        let mut a = Drift::with_clock(Toy::new(3, 2, 0.0), cfg.clone(), clock.clone()).unwrap();
        let mut b = Drift::with_clock(Toy::new(3, 2, 0.0), cfg.clone(), clock.clone()).unwrap();
        let x = Matrix::<f64>::from_fn(4, 3, |r, j| 1.0 + (r + j) as f64);
        let ya0 = a.forward(x.view()).unwrap(); // counts 0..4
        assert_eq!(clock.count(), 4);
        let yb = b.forward(x.view()).unwrap(); // counts 4..8: rows 2 and 3 see the change
        assert_eq!(clock.count(), 8);
        assert_eq!(yb.row(0), ya0.row(0));
        assert_eq!(yb.row(1), ya0.row(1));
        assert_ne!(yb.row(2), ya0.row(2));

        // Paused: nothing is counted, and `a` (which missed the change) catches up first.
        let pause = clock.pause();
        assert!(!clock.is_running());
        let ya_eval = a.forward(x.view()).unwrap();
        let yb_eval = b.forward(x.view()).unwrap();
        assert_eq!(clock.count(), 8, "evaluation queries must not be counted");
        assert_eq!(ya_eval, yb_eval, "both wrappers show the same perturbed device");
        assert_eq!(ya_eval.row(2), yb.row(2));
        drop(pause);
        assert!(clock.is_running());
        a.forward(x.view()).unwrap();
        assert_eq!(a.queried(), 12);
        assert_eq!(b.queried(), 12);
    }

    #[test]
    fn paused_queries_leave_the_schedule_unchanged() {
        // The same counted query sequence with and without paused queries in between gives the
        // same bits: evaluation neither advances the drift nor consumes its generator.
        let cfg = DriftConfig { period: 5, slow_strength: 0.3, sudden_at: Some(12), sudden_strength: 1.0, seed: 2 };
        let x = Matrix::<f64>::from_fn(7, 3, |r, j| 0.5 + (r * 3 + j) as f64 / 7.0);
        let run = |evaluate: bool| {
            let mut d = Drift::new(Toy::new(3, 2, 0.1), cfg.clone()).unwrap();
            let mut counted = Vec::new();
            for _ in 0..4 {
                counted.extend(d.forward(x.view()).unwrap().into_vec());
                if evaluate {
                    let _p = d.clock().pause();
                    d.forward(x.view()).unwrap();
                    d.forward(x.view()).unwrap();
                }
            }
            (counted, d.queried())
        };
        let (plain, n) = run(false);
        assert_eq!(n, 28);
        assert_eq!(run(true), (plain.clone(), 28));
        // The schedule did move the system (otherwise the comparison proves nothing).
        assert_ne!(plain[..6], plain[plain.len() - 6..]);
    }

    #[test]
    fn a_wrapper_built_late_on_a_running_clock_applies_the_past_events() {
        let cfg = DriftConfig { period: 3, slow_strength: 0.2, sudden_at: None, ..DriftConfig::default() };
        let clock = DriftClock::new();
        let mut early = Drift::with_clock(Toy::new(2, 2, 0.0), cfg.clone(), clock.clone()).unwrap();
        let x = Matrix::<f64>::from_fn(10, 2, |r, j| (r + 2 * j) as f64);
        early.forward(x.view()).unwrap(); // count 10: events at 3, 6, 9 applied
        let mut late = Drift::with_clock(Toy::new(2, 2, 0.0), cfg, clock.clone()).unwrap();
        let _p = clock.pause();
        let probe = x.slice_rows(0, 2);
        assert_eq!(late.forward(probe.view()).unwrap(), early.forward(probe.view()).unwrap());
    }

    #[test]
    fn wrappers_conform() {
        let noisy =
            || Noisy::new(Toy::new(4, 3, 0.1), NoiseConfig { gaussian_sigma: 0.1, shot_gain: 0.01, seed: 1 }).unwrap();
        let stateful = Conformance { stateless: false, ..Conformance::default() };
        check_conformance::<f32, _, _>(noisy, &stateful);
        check_conformance::<f64, _, _>(noisy, &stateful);
        let adc = || Quantized::new(Toy::new(4, 3, 0.1), AdcConfig::default()).unwrap();
        check_conformance::<f32, _, _>(adc, &Conformance::default());
        check_conformance::<f64, _, _>(adc, &Conformance::default());
        let drift = || Drift::new(Toy::new(4, 3, 0.1), DriftConfig { period: 3, ..DriftConfig::default() }).unwrap();
        check_conformance::<f32, _, _>(drift, &stateful);
        check_conformance::<f64, _, _>(drift, &stateful);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let err = Noisy::new(Toy::new(1, 1, 0.0), NoiseConfig { gaussian_sigma: -1.0, ..NoiseConfig::default() })
            .unwrap_err();
        assert!(matches!(err, CoreError::Config { ref field, .. } if field == "gaussian_sigma"));
        for (adc, field) in [
            (AdcConfig { bits: 0, ..AdcConfig::default() }, "bits"),
            (AdcConfig { full_scale_max: 0.0, ..AdcConfig::default() }, "full_scale_max"),
        ] {
            let err = Quantized::new(Toy::new(1, 1, 0.0), adc).unwrap_err();
            assert!(matches!(err, CoreError::Config { field: ref f, .. } if f == field), "{err}");
        }
        let err = Drift::new(Toy::new(1, 1, 0.0), DriftConfig { slow_strength: f64::NAN, ..DriftConfig::default() })
            .unwrap_err();
        assert!(err.to_string().contains("slow_strength"));
    }
}

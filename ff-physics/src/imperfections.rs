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
mod tests;

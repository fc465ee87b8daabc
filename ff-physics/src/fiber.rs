//! Nonlinear fibre: the nonlinear Schrödinger equation solved by the symmetric split-step
//! Fourier method, and a fibre system with spectral encoding (docs/science.md; Oguz et al. 2023).
//!
//! # Equation, units and conventions
//! The slowly varying envelope `A(z, T)` (`sqrt(W)`, so `|A|^2` is the power in W) in the
//! frame moving with the group velocity obeys
//!
//! `dA/dz = -(alpha/2) A - i (beta2/2) d^2A/dT^2 + i gamma |A|^2 A`
//!
//! with `T` in ps, `z` in km, `beta2` in ps^2/km (negative: anomalous dispersion, solitons),
//! `gamma` in 1/(W km) and the power loss `alpha` in 1/km. This is Agrawal's form for an
//! optical field `E ~ A exp(i(beta0 z - omega0 t))`.
//!
//! Samples `T_j = (j - n/2) dt`, `dt = window_ps / n`, on a periodic window. The spectrum is
//! the FFT of [`crate::fft`] (`A~_k = sum_j A_j exp(-2 pi i jk/n)`), with angular frequency
//! `omega_k = 2 pi freq_index(k) / window_ps` (rad/ps). In that convention `d/dT -> i omega`,
//! so dispersion is `A~ -> A~ exp(i (beta2/2) omega^2 h)` over a step `h`; it only depends
//! on `omega^2`, so the solution does not depend on the sign convention. The sign does decide
//! which side of the spectrum is blue: FFT bin `k` holds the optical frequency offset
//! `-omega_k` (a component `exp(+i omega T)` of `A` is `omega0 - omega` in the field). The
//! system therefore places its spectral pixels by optical frequency offset ([`optical_offset`];
//! [`optical_frequency_order`] lists the bins from the lowest optical frequency up), with the
//! encoded and the read-out bands centred on the carrier (bin 0).
//!
//! # Scheme
//! Symmetric split step, second order in `h = length / steps`: half a dispersion step (in the
//! frequency domain), a full Kerr-and-loss step (in the time domain, exact:
//! `A <- A exp(-alpha h/2) exp(i gamma |A|^2 L_eff)` with `L_eff = (1 - exp(-alpha h))/alpha`,
//! `= h` without loss, since `|A|` only decays during the step), half a dispersion step.
//! Consecutive half dispersion steps are merged, so a propagation costs `steps` FFT pairs.
//!
//! # Grid
//! The window `window_ps` is the period of the simulated field: the spectrum is a comb of
//! lines `1 / window_ps` apart, and the shaper and the spectrometer act on those lines (their
//! pixel widths are counted in lines). It is part of the model (a pulse train, shaped line by
//! line), not a discretisation to refine: a larger window with the same pixel widths in THz
//! is a different, finer shaper. The discretisation is the number of points, i.e. `dt` and
//! the band `+-1 / (2 dt)`: the Kerr step multiplies samples, so any energy that the nonlinear
//! broadening pushes past the band's edge folds back into it (aliasing). [`FiberConfig::validate`]
//! propagates the unshaped pulse once and refuses a grid on which, anywhere along the fibre,
//! more than [`MAX_EDGE_ENERGY_FRACTION`] of the energy lies in the outer tenth of the band.

use crate::fft::{freq_index, Direction, Fft1d, FftReal};
use ff_core::{check_batch, CoreError, MatMut, MatRef, PhysicalSystem, SystemError};
use num_complex::Complex;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Linear and nonlinear constants of the fibre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiberParams {
    /// Group-velocity dispersion `beta2`, in ps^2/km (negative = anomalous, e.g. -20 for
    /// standard single-mode fibre at 1550 nm).
    pub beta2_ps2_per_km: f64,
    /// Kerr coefficient `gamma`, in 1/(W km) (about 1.3 for standard fibre).
    pub gamma_per_w_km: f64,
    /// Power attenuation `alpha`, in 1/km (0.2 dB/km is 0.046/km); at least 0.
    pub alpha_per_km: f64,
}

/// A periodic time window sampled at `points` instants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeGrid {
    /// Number of samples `n` (at least 2; powers of two are fastest).
    pub points: usize,
    /// Window length, in ps (`dt = window_ps / points`).
    pub window_ps: f64,
}

impl TimeGrid {
    /// Sample spacing `dt`, in ps.
    pub fn dt_ps(&self) -> f64 {
        self.window_ps / self.points as f64
    }

    /// Sample instants `T_j = (j - n/2) dt`, in ps (the pulse centre is sample `n/2`).
    pub fn times_ps(&self) -> Vec<f64> {
        let dt = self.dt_ps();
        (0..self.points).map(|j| (j as f64 - (self.points / 2) as f64) * dt).collect()
    }

    /// Angular frequency `omega_k` of FFT bin `k`, in rad/ps (see the module conventions).
    pub fn omegas_rad_per_ps(&self) -> Vec<f64> {
        (0..self.points).map(|k| 2.0 * PI * freq_index(k, self.points) as f64 / self.window_ps).collect()
    }

    fn validate(&self, field: &str) -> Result<(), CoreError> {
        if self.points < 2 {
            return Err(CoreError::config(
                format!("{field}.points"),
                format!("needs at least 2 samples, got {}", self.points),
            ));
        }
        if !(self.window_ps.is_finite() && self.window_ps > 0.0) {
            return Err(CoreError::config(
                format!("{field}.window_ps"),
                format!("must be a positive duration in ps, got {}", self.window_ps),
            ));
        }
        Ok(())
    }
}

/// Optical frequency offset of FFT bin `k` of an `n`-point spectrum, in bin spacings
/// (`1 / window_ps`, THz): `-freq_index(k)` (see the module conventions), so the carrier (bin 0)
/// is 0. For even `n` the Nyquist bin (`freq_index = -n/2`) is both `+n/2` and `-n/2`; this
/// returns `+n/2`.
pub fn optical_offset(k: usize, n: usize) -> i64 {
    -freq_index(k, n)
}

/// FFT bins of an `n`-point spectrum in order of increasing optical frequency offset
/// ([`optical_offset`]): position `n/2` holds the carrier (bin 0), position `n/2 + o` the bin
/// of offset `o`. For even `n` the Nyquist bin, whose offset is `-n/2` as much as `+n/2`, comes
/// first (offset `-n/2`), so that both halves around the carrier are the same for odd and even
/// `n`.
pub fn optical_frequency_order(n: usize) -> Vec<usize> {
    let half = (n / 2) as i64;
    // Position n/2 + o holds offset o for o in -n/2 ..= (n-1)/2; offset -n/2 (even n) is the
    // Nyquist bin, which optical_offset reports as +n/2.
    (0..n as i64)
        .map(|pos| {
            // Offset o is freq_index -o, which is FFT bin -o mod n.
            (half - pos).rem_euclid(n as i64) as usize
        })
        .collect()
}

/// One bin's share of a pixel (input group or output group) of a spectral band.
#[derive(Clone, Copy, Debug, PartialEq)]
struct BandShare {
    /// FFT bin.
    bin: usize,
    /// Group (pixel) index.
    group: usize,
    /// Fraction of the bin that the group covers: 1, or 1/2 for a bin centred on a boundary.
    weight: f64,
}

/// The pixels of a band of `bins` bin spacings centred on the carrier of an `n`-point spectrum,
/// split into `groups` pixels of equal width `bins / groups`: the optical-frequency interval
/// `[-bins/2, bins/2]` (in bin spacings, carrier at 0), pixel `g` covering
/// `[-bins/2 + g bins/groups, -bins/2 + (g + 1) bins/groups]`, the lowest frequency first.
///
/// A bin belongs to the pixel that holds its centre frequency. A bin centred exactly on a
/// boundary between two pixels is shared half and half; one centred on the band's edge is half
/// inside. The band is therefore mirror-symmetric about the carrier for every `bins` and
/// `groups`: for an even number of groups the carrier itself sits on the middle boundary and is
/// shared by the two middle pixels; for an even `bins` the two outermost bins are half inside.
/// For even `n` the Nyquist bin sits at both ends (offset `+-n/2`) and counts half at each
/// when the band spans the whole spectrum, so `bins = n` covers every bin exactly once.
///
/// Requires `1 <= groups` and `bins <= n`.
fn band_groups(n: usize, bins: usize, groups: usize) -> Vec<BandShare> {
    let (b, g) = (bins as i64, groups as i64);
    let mut shares = Vec::new();
    for bin in 0..n {
        let o = optical_offset(bin, n);
        // The Nyquist bin of even n also sits at -n/2.
        let images: &[i64] = if 2 * o == n as i64 { &[-o, o] } else { &[o] };
        for &o in images {
            // The bin centre lies at (2o + b) / (2b) of the band, i.e. at pixel coordinate
            // u / d with u = (2o + b) g, d = 2b; exact in integers.
            let (u, d) = ((2 * o + b) * g, 2 * b);
            if u < 0 || u > g * d {
                continue;
            }
            let mut push = |group: i64, weight: f64| {
                if (0..g).contains(&group) {
                    shares.push(BandShare { bin, group: group as usize, weight });
                }
            };
            if u % d == 0 {
                push(u / d - 1, 0.5);
                push(u / d, 0.5);
            } else {
                push(u / d, 1.0);
            }
        }
    }
    shares
}

/// A split-step propagator over a fixed length with a fixed number of steps.
#[derive(Clone, Debug)]
pub struct SplitStep<F: FftReal> {
    fft: Fft1d<F>,
    /// `exp(i (beta2/2) omega^2 h/2)` per bin.
    half: Vec<Complex<F>>,
    /// `exp(i (beta2/2) omega^2 h)` per bin.
    full: Vec<Complex<F>>,
    steps: usize,
    /// `gamma L_eff`, in 1/W.
    kerr: F,
    /// `exp(-alpha h/2)`, the amplitude factor of one step.
    loss: F,
    dt_ps: f64,
}

impl<F: FftReal> SplitStep<F> {
    /// Prepares propagation over `length_km` in `steps` equal steps.
    ///
    /// # Errors
    /// [`CoreError::Config`] for non-finite constants, negative loss or length, zero steps or
    /// an invalid grid.
    pub fn new(params: &FiberParams, grid: &TimeGrid, length_km: f64, steps: usize) -> Result<Self, CoreError> {
        grid.validate("fiber.grid")?;
        for (name, v) in [
            ("fiber.params.beta2_ps2_per_km", params.beta2_ps2_per_km),
            ("fiber.params.gamma_per_w_km", params.gamma_per_w_km),
        ] {
            if !v.is_finite() {
                return Err(CoreError::config(name, format!("must be finite, got {v}")));
            }
        }
        if !(params.alpha_per_km.is_finite() && params.alpha_per_km >= 0.0) {
            return Err(CoreError::config(
                "fiber.params.alpha_per_km",
                format!("loss must be finite and >= 0 per km, got {}", params.alpha_per_km),
            ));
        }
        if !(length_km.is_finite() && length_km >= 0.0) {
            return Err(CoreError::config("fiber.length_km", format!("must be finite and >= 0 km, got {length_km}")));
        }
        if steps == 0 {
            return Err(CoreError::config("fiber.steps", "needs at least 1 step, got 0"));
        }
        let h = length_km / steps as f64;
        let phase = |omega: f64, dz: f64| {
            let c = Complex::from_polar(1.0, 0.5 * params.beta2_ps2_per_km * omega * omega * dz);
            Complex::new(F::c(c.re), F::c(c.im))
        };
        let omegas = grid.omegas_rad_per_ps();
        let a = params.alpha_per_km;
        let l_eff = if a * h > 1e-12 { -(-a * h).exp_m1() / a } else { h };
        Ok(SplitStep {
            fft: Fft1d::new(grid.points),
            half: omegas.iter().map(|&w| phase(w, 0.5 * h)).collect(),
            full: omegas.iter().map(|&w| phase(w, h)).collect(),
            steps,
            kerr: F::c(params.gamma_per_w_km * l_eff),
            loss: F::c((-0.5 * a * h).exp()),
            dt_ps: grid.dt_ps(),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.fft.len()
    }

    /// Always `false`; present for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Sample spacing, in ps.
    pub fn dt_ps(&self) -> f64 {
        self.dt_ps
    }

    /// Length of the scratch buffer of the `*_with_scratch` methods.
    pub fn scratch_len(&self) -> usize {
        self.fft.scratch_len()
    }

    /// A zeroed scratch buffer of length [`SplitStep::scratch_len`].
    pub fn make_scratch(&self) -> Vec<Complex<F>> {
        self.fft.make_scratch()
    }

    /// Propagates a spectrum `A~(0)` (FFT of the envelope, `sqrt(W)` x samples) to `A~(L)` in
    /// place, without allocating.
    ///
    /// # Panics
    /// If `spectrum.len()` differs from the grid or `scratch` is too short.
    pub fn propagate_spectrum_with_scratch(&self, spectrum: &mut [Complex<F>], scratch: &mut [Complex<F>]) {
        self.propagate_spectrum_observed(spectrum, scratch, |_| {});
    }

    /// [`SplitStep::propagate_spectrum_with_scratch`], calling `observe` with the spectrum at
    /// `z = 0` and after every step (`z = h, 2h, ..., L`). The power spectrum `|A~_k|^2` it sees
    /// is that of those planes (the half dispersion step still to apply is a pure phase); the
    /// phases are not.
    ///
    /// # Panics
    /// If `spectrum.len()` differs from the grid or `scratch` is too short.
    pub fn propagate_spectrum_observed(
        &self,
        spectrum: &mut [Complex<F>],
        scratch: &mut [Complex<F>],
        mut observe: impl FnMut(&[Complex<F>]),
    ) {
        assert_eq!(spectrum.len(), self.len(), "spectrum length");
        observe(spectrum);
        for step in 0..self.steps {
            let disp = if step == 0 { &self.half } else { &self.full };
            for (a, d) in spectrum.iter_mut().zip(disp) {
                *a = *a * *d;
            }
            self.fft.process_with_scratch(spectrum, scratch, Direction::Inverse);
            for a in spectrum.iter_mut() {
                let rot = Complex::from_polar(self.loss, self.kerr * a.norm_sqr());
                *a = *a * rot;
            }
            self.fft.process_with_scratch(spectrum, scratch, Direction::Forward);
            observe(spectrum);
        }
        for (a, d) in spectrum.iter_mut().zip(&self.half) {
            *a = *a * *d;
        }
    }

    /// Propagates an envelope `A(0, T)` (`sqrt(W)`, samples of the grid) to `A(L, T)` in place
    /// (allocates its scratch).
    pub fn propagate(&self, envelope: &mut [Complex<F>]) {
        let mut scratch = self.make_scratch();
        self.fft.process_with_scratch(envelope, &mut scratch, Direction::Forward);
        self.propagate_spectrum_with_scratch(envelope, &mut scratch);
        self.fft.process_with_scratch(envelope, &mut scratch, Direction::Inverse);
    }
}

/// Temporal shape of the launched pulse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PulseShape {
    /// `A = sqrt(P0) sech(T / T0)` (the soliton shape).
    Sech,
    /// `A = sqrt(P0) exp(-T^2 / (2 T0^2))`.
    Gaussian,
}

/// The launched pulse, centred in the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pulse {
    /// Temporal shape.
    pub shape: PulseShape,
    /// Width parameter `T0`, in ps.
    pub t0_ps: f64,
    /// Peak power `P0`, in W.
    pub peak_power_w: f64,
}

impl Pulse {
    /// The envelope sampled on `grid` (`sqrt(W)`).
    pub fn envelope(&self, grid: &TimeGrid) -> Vec<Complex<f64>> {
        let a0 = self.peak_power_w.sqrt();
        grid.times_ps()
            .iter()
            .map(|&t| {
                let x = t / self.t0_ps;
                let v = match self.shape {
                    PulseShape::Sech => 1.0 / x.cosh(),
                    PulseShape::Gaussian => (-0.5 * x * x).exp(),
                };
                Complex::new(a0 * v, 0.0)
            })
            .collect()
    }
}

/// How the input vector shapes the launched spectrum (a pulse shaper).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpectralEncoding {
    /// Value `v` of group `g` adds a spectral phase `pi v` to every bin of the group.
    Phase,
    /// Value `v` of group `g` multiplies the spectral amplitude of the group's bins by `v`.
    Amplitude,
}

/// Configuration of a [`FiberSystem`]. Plain data; checked by [`FiberConfig::validate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FiberConfig {
    /// Fibre constants.
    pub params: FiberParams,
    /// Fibre length, in km.
    pub length_km: f64,
    /// Split-step steps over the length (the error falls as `1/steps^2`).
    pub steps: usize,
    /// Time window and sampling.
    pub grid: TimeGrid,
    /// The launched pulse before encoding.
    pub pulse: Pulse,
    /// Number of input values; each drives one group of spectral bins.
    pub input_len: usize,
    /// Input encoding.
    pub encoding: SpectralEncoding,
    /// Width of the encoded band, in bin spacings (`1 / window_ps`, THz), centred on the
    /// carrier and split into `input_len` pixels of equal width, the lowest optical frequency
    /// first. A bin belongs to the pixel holding its centre; a bin centred on a pixel boundary
    /// is shared half and half (for an even `input_len` that is the carrier), one centred on
    /// the band edge (even `encoded_bins`) is half inside. Bins outside pass unchanged.
    /// `input_len <= encoded_bins <= points`; with an odd value coprime to `input_len` no bin
    /// but the carrier is shared.
    pub encoded_bins: usize,
    /// Number of output values.
    pub output_len: usize,
    /// Width of the band read by the spectrometer, in bin spacings, centred on the carrier and
    /// split into `output_len` pixels like the encoded band (a shared bin gives half its energy
    /// to each pixel). `output_len <= output_bins <= points`; `points` reads every bin.
    pub output_bins: usize,
    /// Output the square root of each group's energy (`sqrt(pJ)`) instead of the energy (pJ).
    pub output_sqrt: bool,
}

impl Default for FiberConfig {
    /// A 100 fs (T0) sech pulse of 6154 W (soliton order N = 2) in 0.8 m of anomalous fibre
    /// (beta2 = -20 ps^2/km, gamma = 1.3 /(W km), no loss; one soliton period), 200 steps, a
    /// 12.8 ps window of 1024 samples (dt = 12.5 fs = T0/8, a band of +-40 THz: mid-fibre the
    /// soliton's spectrum holds 2e-7 of its energy in the outer tenth, and 4x the points change
    /// the outputs by 7e-6; 256 samples, the former default, aliased: 11 %); 20 inputs phase-encoded on a band of 41 bin spacings
    /// centred on the carrier (3.2 THz, about 1.8 times the launched spectral FWHM of
    /// 1.79 THz); 20 outputs binning a band of 161 bin spacings (12.6 THz) of the output
    /// spectrum. Both widths are odd and coprime with 20, so the carrier is the only bin shared
    /// by two pixels.
    fn default() -> Self {
        let (beta2, gamma, t0) = (-20.0, 1.3, 0.1);
        FiberConfig {
            params: FiberParams { beta2_ps2_per_km: beta2, gamma_per_w_km: gamma, alpha_per_km: 0.0 },
            length_km: 0.8e-3,
            steps: 200,
            grid: TimeGrid { points: 1024, window_ps: 12.8 },
            pulse: Pulse {
                shape: PulseShape::Sech,
                t0_ps: t0,
                // N^2 = gamma P0 T0^2 / |beta2| = 4.
                peak_power_w: 4.0 * f64::abs(beta2) / (gamma * t0 * t0),
            },
            input_len: 20,
            encoding: SpectralEncoding::Phase,
            encoded_bins: 41,
            output_len: 20,
            output_bins: 161,
            output_sqrt: false,
        }
    }
}

impl FiberConfig {
    /// Checks every field, naming the first bad one, its value and the fix.
    ///
    /// # Errors
    /// [`CoreError::Config`] with the field path (e.g. `fiber.encoded_bins`).
    pub fn validate(&self) -> Result<(), CoreError> {
        SplitStep::<f64>::new(&self.params, &self.grid, self.length_km, self.steps)?;
        let (n, dt) = (self.grid.points, self.grid.dt_ps());
        let p = &self.pulse;
        if !(p.t0_ps.is_finite() && p.t0_ps >= 2.0 * dt) {
            return Err(CoreError::config(
                "fiber.pulse.t0_ps",
                format!("pulse width {} ps is not resolved by dt = {dt} ps; use t0_ps >= 2 dt or more points", p.t0_ps),
            ));
        }
        if self.grid.window_ps < 10.0 * p.t0_ps {
            return Err(CoreError::config(
                "fiber.grid.window_ps",
                format!("window {} ps must be at least 10 t0 = {} ps", self.grid.window_ps, 10.0 * p.t0_ps),
            ));
        }
        if !(p.peak_power_w.is_finite() && p.peak_power_w >= 0.0) {
            return Err(CoreError::config(
                "fiber.pulse.peak_power_w",
                format!("must be finite and >= 0 W, got {}", p.peak_power_w),
            ));
        }
        for (len_name, len, bins_name, bins) in [
            ("fiber.input_len", self.input_len, "fiber.encoded_bins", self.encoded_bins),
            ("fiber.output_len", self.output_len, "fiber.output_bins", self.output_bins),
        ] {
            if len == 0 {
                return Err(CoreError::config(len_name, "must be at least 1, got 0"));
            }
            if bins < len || bins > n {
                return Err(CoreError::config(
                    bins_name,
                    format!("must be between {len_name} = {len} and grid.points = {n}, got {bins}"),
                ));
            }
        }
        let edge = self.max_edge_energy_fraction()?;
        if edge.is_nan() || edge > MAX_EDGE_ENERGY_FRACTION {
            let g = &self.grid;
            return Err(CoreError::config(
                "fiber.grid.points",
                format!(
                    "the spectrum outgrows the grid: with points = {n} over window_ps = {} (dt = {dt} ps, \
                     a band of +-{:.2} THz), the unshaped launch (the strongest pulse, {:.0} W peak) holds \
                     up to {edge:.1e} of its energy in the outer tenth of the band (beyond +-{:.2} THz) along \
                     the fibre, above the limit {MAX_EDGE_ENERGY_FRACTION:e}, and the Kerr step folds it \
                     back into the band (aliasing); use more points over the same window_ps (e.g. \
                     points = {}, which halves dt) or a lower peak power",
                    g.window_ps,
                    0.5 / dt,
                    p.peak_power_w,
                    0.45 / dt,
                    2 * n
                ),
            ));
        }
        Ok(())
    }

    /// The largest fraction, over the planes `z = 0, h, 2h, ..., L` of the propagation, of the
    /// energy of the unshaped launched pulse that lies in the outer tenth of the grid's
    /// frequency band (the bins whose optical offset exceeds `0.45 points` bin spacings, i.e.
    /// `0.45 / dt`, in either direction). Computed in `f64` by one propagation.
    ///
    /// The unshaped launch is the strongest admissible pulse for phase encoding (the shaper
    /// then only redistributes the spectral phase, and the transform-limited pulse has the
    /// highest peak power); amplitude-encoded inputs above 1 strengthen it and are not covered.
    /// The maximum is taken along the fibre, not only at its end, because a higher-order
    /// soliton broadens most mid-fibre and recompresses: on the former 256-point default grid
    /// the output spectrum held 2e-5 at the edge, the mid-fibre one 2e-2.
    ///
    /// # Errors
    /// [`CoreError::Config`] if the fibre constants, length, steps or grid are invalid.
    pub fn max_edge_energy_fraction(&self) -> Result<f64, CoreError> {
        let solver = SplitStep::<f64>::new(&self.params, &self.grid, self.length_km, self.steps)?;
        let n = self.grid.points;
        let mut spectrum = self.pulse.envelope(&self.grid);
        Fft1d::<f64>::new(n).forward(&mut spectrum);
        let mut scratch = solver.make_scratch();
        // |offset| > 0.45 n, in integers.
        let edge: Vec<bool> = (0..n).map(|k| 20 * optical_offset(k, n).unsigned_abs() > 9 * n as u64).collect();
        let mut worst: f64 = 0.0;
        solver.propagate_spectrum_observed(&mut spectrum, &mut scratch, |spec| {
            let (mut outer, mut total) = (0.0, 0.0);
            for (a, &e) in spec.iter().zip(&edge) {
                let p = a.norm_sqr();
                total += p;
                if e {
                    outer += p;
                }
            }
            // A zero pulse has no spectrum to alias; a NaN one is reported as NaN.
            let f = if total > 0.0 {
                outer / total
            } else if total == 0.0 {
                0.0
            } else {
                f64::NAN
            };
            worst = if f.is_nan() || worst.is_nan() { f64::NAN } else { worst.max(f) };
        });
        Ok(worst)
    }
}

/// The largest admissible [`FiberConfig::max_edge_energy_fraction`]: 1e-5 of the energy in the
/// outer tenth of the frequency band, anywhere along the fibre. On the default system that
/// level corresponds to about 3e-4 relative change of the outputs against a grid with 4x the
/// points (measured: 768 points, 1.4e-5 at the edge, 3.5e-4 change; 640 points, 1.2e-4 and
/// 2.4e-3; the 1024-point default, 2e-7 and 7e-6).
pub const MAX_EDGE_ENERGY_FRACTION: f64 = 1e-5;

/// A pulse shaper -> nonlinear fibre -> spectrometer system.
///
/// Each input row shapes the spectrum of the launched pulse ([`SpectralEncoding`]), the pulse
/// propagates through the fibre ([`SplitStep`]), and the output is the energy spectrum
/// `S_k = |A~_k|^2 dt / n` (pJ per bin; `sum_k S_k` is the pulse energy `sum_j |A_j|^2 dt`)
/// summed over the groups of the read-out band (optionally square-rooted).
#[derive(Debug)]
pub struct FiberSystem<F: FftReal> {
    config: FiberConfig,
    solver: SplitStep<F>,
    /// The unshaped launched spectrum.
    launch: Vec<Complex<F>>,
    /// The launched spectrum with the encoded band's bins scaled by the fraction of them that
    /// lies outside every input pixel (0 inside the band, 1/2 at a half-covered edge).
    launch_outside: Vec<Complex<F>>,
    /// Input pixels: (bin, group, `launch[bin] x weight`).
    input_shares: Vec<(usize, usize, Complex<F>)>,
    /// Read-out pixels: (bin, group, weight x `dt / n`).
    output_shares: Vec<(usize, usize, F)>,
    scratch: Vec<Complex<F>>,
}

/// Rows per rayon job (fixed; rows are independent, so this only affects speed).
const ROWS_PER_JOB: usize = 4;

impl<F: FftReal> FiberSystem<F> {
    /// Builds the system: validates `config`, samples the pulse and precomputes the steps.
    ///
    /// # Errors
    /// [`CoreError::Config`] from [`FiberConfig::validate`].
    pub fn new(config: FiberConfig) -> Result<Self, CoreError> {
        config.validate()?;
        let solver = SplitStep::new(&config.params, &config.grid, config.length_km, config.steps)?;
        let mut launch: Vec<Complex<F>> =
            config.pulse.envelope(&config.grid).iter().map(|z| Complex::new(F::c(z.re), F::c(z.im))).collect();
        Fft1d::new(config.grid.points).forward(&mut launch);
        let n = config.grid.points;
        let mut launch_outside = launch.clone();
        let mut input_shares = Vec::new();
        for s in band_groups(n, config.encoded_bins, config.input_len) {
            launch_outside[s.bin] = launch_outside[s.bin] - launch[s.bin].scale(F::c(s.weight));
            input_shares.push((s.bin, s.group, launch[s.bin].scale(F::c(s.weight))));
        }
        let norm = config.grid.dt_ps() / n as f64;
        let output_shares = band_groups(n, config.output_bins, config.output_len)
            .into_iter()
            .map(|s| (s.bin, s.group, F::c(s.weight * norm)))
            .collect();
        let scratch = solver.make_scratch();
        Ok(FiberSystem { config, solver, launch, launch_outside, input_shares, output_shares, scratch })
    }

    /// The configuration this system was built from.
    pub fn config(&self) -> &FiberConfig {
        &self.config
    }

    /// The output spectrum `A~(L)` (FFT of the envelope, unshifted bins) for one input row;
    /// `spec` must have `grid.points` elements.
    fn output_spectrum(&self, input: &[F], spec: &mut [Complex<F>], scratch: &mut [Complex<F>]) {
        self.shape_spectrum(input, spec);
        self.solver.propagate_spectrum_with_scratch(spec, scratch);
    }

    /// The pulse shaper: the launched spectrum with the input applied to its groups. A bin
    /// shared by two pixels (or half outside the band) passes half its field through each, so
    /// its transfer factor is the mean of the two pixels' factors.
    fn shape_spectrum(&self, input: &[F], spec: &mut [Complex<F>]) {
        spec.copy_from_slice(&self.launch_outside);
        let pi = F::c(PI);
        for &(k, g, a) in &self.input_shares {
            spec[k] = spec[k]
                + match self.config.encoding {
                    SpectralEncoding::Phase => a * Complex::from_polar(F::one(), pi * input[g]),
                    SpectralEncoding::Amplitude => a.scale(input[g]),
                };
        }
    }

    /// The launched envelope `A(0, T)` (`sqrt(W)`) for one input vector, after the shaper.
    ///
    /// # Panics
    /// If `input.len() != input_len`.
    pub fn launched_envelope(&self, input: &[F]) -> Vec<Complex<F>> {
        assert_eq!(input.len(), self.config.input_len, "input length");
        let mut spec = vec![Complex::new(F::zero(), F::zero()); self.launch.len()];
        self.shape_spectrum(input, &mut spec);
        Fft1d::new(spec.len()).inverse(&mut spec);
        spec
    }

    fn forward_row(&self, input: &[F], out: &mut [F], spec: &mut [Complex<F>], scratch: &mut [Complex<F>]) {
        self.output_spectrum(input, spec, scratch);
        out.fill(F::zero());
        for &(k, g, w) in &self.output_shares {
            out[g] += spec[k].norm_sqr() * w;
        }
        if self.config.output_sqrt {
            for o in out.iter_mut() {
                *o = o.sqrt();
            }
        }
    }

    fn name_(&self) -> String {
        format!(
            "fibre {} m, {} steps ({} -> {})",
            self.config.length_km * 1e3,
            self.config.steps,
            self.config.input_len,
            self.config.output_len
        )
    }
}

impl<F: FftReal> PhysicalSystem<F> for FiberSystem<F> {
    fn name(&self) -> String {
        self.name_()
    }

    fn input_len(&self) -> usize {
        self.config.input_len
    }

    fn output_len(&self) -> usize {
        self.config.output_len
    }

    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        check_batch(&self.name_(), self.config.input_len, self.config.output_len, &input, &output)?;
        let n = self.config.grid.points;
        let zero = Complex::new(F::zero(), F::zero());
        if input.rows() <= ROWS_PER_JOB {
            let mut scratch = std::mem::take(&mut self.scratch);
            let mut spec = vec![zero; n];
            for r in 0..input.rows() {
                self.forward_row(input.row(r), output.row_mut(r), &mut spec, &mut scratch);
            }
            self.scratch = scratch;
            return Ok(());
        }
        let this = &*self;
        output.into_row_chunks(ROWS_PER_JOB).into_par_iter().enumerate().for_each_init(
            || (vec![zero; n], this.solver.make_scratch()),
            |(spec, scratch), (c, mut out)| {
                for r in 0..out.rows() {
                    this.forward_row(input.row(c * ROWS_PER_JOB + r), out.row_mut(r), spec, scratch);
                }
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;

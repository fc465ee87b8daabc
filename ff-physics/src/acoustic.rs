//! Acoustics: a chaotic 2-D cavity of rigid scatterers with nonlinear membrane scatterers,
//! driven by a multi-tone loudspeaker and read by a microphone.
//!
//! # Units and conventions
//! - Normalised units: sound speed 1, so a tone of frequency `f` has `omega = k = 2 pi f`; all
//!   lengths are in units of the wavelength at `f = 1`.
//! - Time dependence `exp(-i omega t)`; the 2-D Green's function of the Helmholtz equation
//!   `(Laplacian + k^2) G = -delta` is `G(r) = (i/4) H0^(1)(k r)` (outgoing waves).
//! - Pressure fields are complex amplitudes per tone, in units of the loudspeaker's source
//!   strength (a source of strength `q` alone radiates `q G(r)`).
//!
//! # The model
//! Every scatterer `j` is a point (monopole) scatterer at `r_j` with polarisability `alpha_j`:
//! it re-radiates `p_j G(r - r_j)` with `p_j = alpha_j u_j`, `u_j` the field arriving at it
//! (the loudspeaker's plus every other scatterer's). This is the Foldy-Lax multiple-scattering
//! system, one per tone `t`:
//! `(diag(1/alpha) - G_off) p = q_t g_s`, `G_off = [G(r_i - r_j)]_{i != j}`, `g_s = [G(r_i - r_s)]`,
//! and the microphone reads `u_t(r_m) = q_t G(r_m - r_s) + sum_j p_j G(r_m - r_j)`.
//!
//! - Rigid scatterers (the cavity walls, `wall_spacing` apart along a rectangle, and `n_rigid`
//!   interior scatterers at seeded positions that make the cavity chaotic, like a Sinai
//!   billiard): `1/alpha = rigid_reactance - i/4 - i rigid_absorption`. The `-i/4` is the
//!   radiation damping every point scatterer must have (`Im G(0) = 1/4`); with
//!   `rigid_absorption = 0` the scatterer is lossless.
//! - Membranes (`n_membranes`, seeded positions, resonances `f_j` drawn uniformly in the tone
//!   band): driven Duffing oscillators `x'' + Gamma x' + omega_j^2 x + beta x^3 = drive`,
//!   solved by harmonic balance on the tones (next section), so the stiffness seen by tone `t`
//!   is `omega_j^2 (1 + nonlinearity I_jt)`, `I_jt = |p_jt|^2 + 2 sum_{s != t} |p_js|^2`, with
//!   the membrane's monopole strength `p` standing for its excursion. Hence, with
//!   `b = membrane_strength` and `Gamma = membrane_damping`,
//!   `1/alpha_jt = (omega_j^2 (1 + nonlinearity I_jt) - omega_t^2) / b - i/4 - i omega_t Gamma / b`.
//!
//! # Which harmonic balance, and why the other products may be dropped
//! For a multi-tone excursion `x = Re sum_t X_t exp(-i omega_t t)`, the cubic term `x^3` holds
//! the frequencies `+-omega_a +- omega_b +- omega_c`. While `freq_max < 3 freq_min` (checked
//! for the Sidon spacing; default 1.2 < 2.4) the third harmonics and the sums of three tones
//! lie above the band, and only `omega_a + omega_b - omega_c` can fall on a tone. The
//! component of `x^3` at `omega_a + omega_b - omega_c` is `(3/4) beta X_a X_b X_c^*` (summed
//! over the orderings of `a, b`). The model keeps, for tone `t`, exactly the terms with
//! `{a, b} = {c, t}`: `(3/4) beta X_t (|X_t|^2 + 2 sum_{s != t} |X_s|^2)`, self- and
//! cross-modulation as in Kerr optics, solved self-consistently.
//!
//! That is the complete first-order harmonic balance on the tones when no other product
//! lands on a tone, i.e. when `f_a + f_b = f_c + f_t` only for `{a, b} = {c, t}`: the tone
//! frequencies form a Sidon set. The default [`ToneSpacing::Sidon`] places them so (affine
//! image of the Erdős–Turán set, [`sidon_marks`]); every other product then lies at least one
//! unit `(freq_max - freq_min) / m_max` (4.5e-4 for the default 20 tones, 1/31 of the closest
//! tone spacing) from every tone. The microphone reads only the tone amplitudes `u_t(r_m)`
//! (a read-out over more than a few `1 / 4.5e-4` periods, i.e. a few thousand periods of the
//! `f = 1` tone, separates the products from the tones), so the products are energy moved to
//! frequencies nobody reads, and dropping them from the output is exact. They are not fed back
//! either: a product re-mixing with two tones can land on a tone (`(omega_a + omega_b -
//! omega_c) + omega_c - omega_b = omega_a`), a term of second order in the nonlinear stiffness
//! shift (which changes the amplitudes by 5-10 % on average, below), and neglected.
//!
//! With evenly spaced tones ([`ToneSpacing::Uniform`]) every product with `a + b - c = t`
//! lands exactly on tone `t`; the model drops those too, and is then only the self- and
//! cross-modulation approximation, not a harmonic balance: for 20 tones each tone receives
//! 171-261 such products `(a, b, c)` (ordered) against 39 kept ones, and they are not small.
//!
//! The polarisabilities depend on the fields they produce, so the tones are solved
//! self-consistently: start from the linear solution, recompute `I` from `p`, relax
//! `I <- I + relaxation (I_new - I)`, repeat until `max |I_new - I| <= tolerance (1 + max I)`;
//! a query that does not converge within `max_iterations` (even when retried with the drive
//! ramped up from zero) is an error. Near the Duffing fold-over (strong drive, weak damping)
//! the response can be bistable and the iteration may fail; the defaults are chosen well
//! inside the convergent regime: with `input_power = 1` and `4`, every one-hot and 20 random
//! inputs converge, and the driven tones' amplitudes deviate from the linear cavity's by 4.7 %
//! and 10 % on average and up to 28 % and 44 % (measured on the default geometry and tones).
//!
//! # Encoding and detection
//! Input `x` (20 values) becomes the tone amplitudes `q_t = sqrt(input_power) |x_t| / ||x||_2`
//! (the public code's emulator is fed `|x| / ||x||`; `input_power` is the total source power
//! `sum_t q_t^2`; an all-zero `x` drives nothing). The output is the 20 spectral amplitudes
//! `|u_t(r_m)|` at the microphone.
//!
//! # Computation
//! The rigid cavity is linear and fixed: at construction, per tone, it is eliminated once
//! (Schur complement), leaving a `n_membranes x n_membranes` system per tone and iteration. A
//! query is then a few dozen tiny solves; samples run in parallel. Internally everything is `f64`.

use crate::check::{cfg_err as err, check_non_negative as non_negative, check_positive as positive};
use crate::geometry::{dist, min_pair_distance, place_point, rectangle_outline, Point};
use crate::imperfections::Perturbable;
use crate::linalg::solve_in_place;
use crate::microwave::linspace;
use crate::special::hankel1_0;
use ff_core::rng::{rng_for, Rng};
use ff_core::{check_batch, CoreError, MatMut, MatRef, PhysicalSystem, Real, SystemError};
use nalgebra::DMatrix;
use num_complex::Complex64;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Configuration of an [`AcousticCavity`]. Plain data; checked by [`AcousticConfig::validate`].
///
/// Lengths are in units of the wavelength at `f = 1`, frequencies are normalised (sound speed
/// 1), field amplitudes in units of the source strength (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcousticConfig {
    /// Number of tones = inputs = outputs. Default 20.
    pub n_tones: usize,
    /// Lowest tone frequency. Default 0.8.
    pub freq_min: f64,
    /// Highest tone frequency (both ends are tones). Default 1.2.
    pub freq_max: f64,
    /// How the tones are placed between `freq_min` and `freq_max`. Default
    /// [`ToneSpacing::Sidon`], on which the model is exact to first order in the mixing
    /// products (see the module docs).
    pub tone_spacing: ToneSpacing,
    /// Cavity extent along x. Default 4.
    pub cavity_width: f64,
    /// Cavity extent along y. Default 3.
    pub cavity_height: f64,
    /// Largest distance between neighbouring wall scatterers. Default 0.2.
    pub wall_spacing: f64,
    /// Number of interior rigid scatterers. Default 12.
    pub n_rigid: usize,
    /// Real part of a rigid scatterer's inverse polarisability (dimensionless). Default 0.1.
    pub rigid_reactance: f64,
    /// Extra loss of a rigid scatterer: `-Im(1/alpha) - 1/4` (>= 0). Default 0.05.
    pub rigid_absorption: f64,
    /// Number of membrane scatterers. Default 6.
    pub n_membranes: usize,
    /// Membrane oscillator strength (units of `omega^2`); larger is a broader, stronger
    /// resonance (radiative half-width `~ membrane_strength / (16 pi^2 f)` in frequency). Default 10.
    pub membrane_strength: f64,
    /// Membrane damping rate `Gamma` (units of `omega`, >= 0). Default 1.
    pub membrane_damping: f64,
    /// Duffing nonlinearity: relative stiffness increase per unit `I` (units `1/|p|^2`, >= 0);
    /// 0 makes the cavity linear. Default 3.
    pub nonlinearity: f64,
    /// Total source power `sum_t q_t^2` of one sample (> 0). Default 1.
    pub input_power: f64,
    /// Fixed-point relaxation factor in `(0, 1]`. Default 0.5.
    pub relaxation: f64,
    /// Relative convergence tolerance of the intensities (> 0). Default 1e-10.
    pub tolerance: f64,
    /// Iteration limit of the self-consistent solve (>= 1). Default 500.
    pub max_iterations: usize,
    /// Seed of the geometry and membrane resonances.
    pub seed: u64,
}

impl Default for AcousticConfig {
    fn default() -> Self {
        AcousticConfig {
            n_tones: 20,
            freq_min: 0.8,
            freq_max: 1.2,
            tone_spacing: ToneSpacing::Sidon,
            cavity_width: 4.0,
            cavity_height: 3.0,
            wall_spacing: 0.2,
            n_rigid: 12,
            rigid_reactance: 0.1,
            rigid_absorption: 0.05,
            n_membranes: 6,
            membrane_strength: 10.0,
            membrane_damping: 1.0,
            nonlinearity: 3.0,
            input_power: 1.0,
            relaxation: 0.5,
            tolerance: 1e-10,
            max_iterations: 500,
            seed: 0,
        }
    }
}

/// Distance kept between the speaker/microphone and the walls, and between the two.
const TRANSDUCER_MARGIN: f64 = 0.5;
/// Minimum distance of interior scatterers and membranes from everything else.
const SCATTERER_MARGIN: f64 = 0.3;
/// Floor of the adaptive relaxation factor.
const MIN_RELAXATION: f64 = 1e-3;
/// Steps of the drive ramp used when direct iteration fails.
const RAMP_STEPS: usize = 16;
/// Largest number of rigid scatterers the constructor accepts.
const MAX_RIGID: usize = 3000;

impl AcousticConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the first offending field, its value and what is accepted.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.n_tones == 0 {
            return Err(err("n_tones", "must be at least 1, got 0".into()));
        }
        positive("freq_min", self.freq_min)?;
        positive("freq_max", self.freq_max)?;
        if self.freq_max < self.freq_min || (self.n_tones > 1 && self.freq_max == self.freq_min) {
            return Err(err(
                "freq_max",
                format!("must exceed freq_min = {} when n_tones > 1, got {}", self.freq_min, self.freq_max),
            ));
        }
        if self.tone_spacing == ToneSpacing::Sidon && self.n_tones > 1 && self.freq_max >= 3.0 * self.freq_min {
            return Err(err(
                "freq_max",
                format!(
                    "must be below 3 freq_min = {} with tone_spacing = \"sidon\", got {}: in a wider band a \
                     sum of three tones can land on a tone, which the model does not keep; narrow the band",
                    3.0 * self.freq_min,
                    self.freq_max
                ),
            ));
        }
        positive("cavity_width", self.cavity_width)?;
        positive("cavity_height", self.cavity_height)?;
        for (name, v) in [("cavity_width", self.cavity_width), ("cavity_height", self.cavity_height)] {
            if v <= 2.0 * TRANSDUCER_MARGIN + 0.1 {
                return Err(err(
                    name,
                    format!("must exceed {} to fit the speaker and microphone, got {v}", 2.0 * TRANSDUCER_MARGIN + 0.1),
                ));
            }
        }
        positive("wall_spacing", self.wall_spacing)?;
        if !self.rigid_reactance.is_finite() {
            return Err(err("rigid_reactance", format!("must be finite, got {}", self.rigid_reactance)));
        }
        non_negative("rigid_absorption", self.rigid_absorption)?;
        positive("membrane_strength", self.membrane_strength)?;
        non_negative("membrane_damping", self.membrane_damping)?;
        non_negative("nonlinearity", self.nonlinearity)?;
        positive("input_power", self.input_power)?;
        if !(self.relaxation > 0.0 && self.relaxation <= 1.0) {
            return Err(err("relaxation", format!("must be in (0, 1], got {}", self.relaxation)));
        }
        positive("tolerance", self.tolerance)?;
        if self.max_iterations == 0 {
            return Err(err("max_iterations", "must be at least 1, got 0".into()));
        }
        let n_walls = rectangle_outline(self.cavity_width, self.cavity_height, self.wall_spacing).len();
        if n_walls + self.n_rigid > MAX_RIGID {
            return Err(err(
                "wall_spacing",
                format!(
                    "gives {} rigid scatterers (limit {MAX_RIGID}); increase wall_spacing ({}) or shrink the cavity",
                    n_walls + self.n_rigid,
                    self.wall_spacing
                ),
            ));
        }
        Ok(())
    }

    /// The tone frequencies, ascending from `freq_min` to `freq_max` (both included), placed
    /// as [`AcousticConfig::tone_spacing`] says.
    pub fn frequencies(&self) -> Vec<f64> {
        match self.tone_spacing {
            ToneSpacing::Uniform => linspace(self.freq_min, self.freq_max, self.n_tones),
            ToneSpacing::Sidon => {
                let marks = sidon_marks(self.n_tones);
                let span = marks.last().copied().unwrap_or(0);
                if span == 0 {
                    return vec![self.freq_min; self.n_tones];
                }
                let unit = (self.freq_max - self.freq_min) / span as f64;
                marks.iter().map(|&m| if m == span { self.freq_max } else { self.freq_min + m as f64 * unit }).collect()
            }
        }
    }
}

/// Placement of the tones in `[freq_min, freq_max]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToneSpacing {
    /// Tones at `freq_min + m_k (freq_max - freq_min) / m_max` on the Sidon set of
    /// [`sidon_marks`] (`m_k = 2pk + (k^2 mod p)`): all pairwise sums `f_a + f_b` differ, so
    /// no mixing product `f_a + f_b - f_c` lands on a tone except the self- and
    /// cross-modulation terms the model keeps, and every other one misses every tone by at
    /// least one unit `(freq_max - freq_min) / m_max` (4.5e-4 for the default 20 tones on
    /// `[0.8, 1.2]`; the closest tones are 31 units apart).
    #[default]
    Sidon,
    /// Evenly spaced tones. Every product `f_a + f_b - f_c` with `a + b - c = t` then lands
    /// exactly on tone `t`, and the model, which drops all products, is only the self- and
    /// cross-modulation approximation of the harmonic balance, with dropped terms that are
    /// not small. Kept to reproduce runs made before the Sidon default.
    Uniform,
}

/// The first `n` marks of the Erdős–Turán Sidon set, `m_k = 2pk + (k^2 mod p)` for
/// `k = 0..n` with `p` the smallest prime `>= n`: ascending integers from 0 whose pairwise
/// sums `m_a + m_b` (`a <= b`) are all distinct. (From `m_a + m_b = m_c + m_d`, the quotients by
/// `2p` give `a + b = c + d` and the remainders `a^2 + b^2 = c^2 + d^2 (mod p)`, hence
/// `{a, b} = {c, d}` since `p` is prime and `a, b, c, d < p`.) The largest mark is below
/// `2p n`; for `n = 20`, `p = 23` and it is 890.
pub fn sidon_marks(n: usize) -> Vec<u64> {
    let is_prime = |q: u64| q >= 2 && (2..).take_while(|d| d * d <= q).all(|d| !q.is_multiple_of(d));
    let p = (n.max(2) as u64..).find(|&q| is_prime(q)).expect("there is always a larger prime");
    (0..n as u64).map(|k| 2 * p * k + (k * k) % p).collect()
}

/// `G(r) = (i/4) H0^(1)(k r)`.
fn green(k: f64, r: f64) -> Complex64 {
    Complex64::new(0.0, 0.25) * hankel1_0(k * r)
}

/// Per-tone precomputation with the rigid cavity eliminated (row-major `n_m x n_m` matrices).
#[derive(Clone, Debug)]
struct ToneCache {
    /// Angular frequency `omega_t`.
    omega: f64,
    /// Effective membrane-membrane coupling through the cavity, `G_MM + G_MR Z_RR^-1 G_RM`.
    coupling: Vec<Complex64>,
    /// Field arriving at the membranes per unit source strength (direct plus via the cavity).
    drive: Vec<Complex64>,
    /// Field at the microphone per unit source strength, membranes removed.
    direct: Complex64,
    /// Field at the microphone per unit membrane monopole strength.
    readout: Vec<Complex64>,
}

/// Scratch buffers of one query thread.
#[derive(Default)]
struct Scratch {
    intensity: Vec<f64>,
    fresh: Vec<f64>,
    p: Vec<Complex64>,
    mat: Vec<Complex64>,
}

/// A chaotic acoustic cavity with nonlinear membranes (see the module docs), as a
/// [`PhysicalSystem`]: `n_tones` real values in, `n_tones` spectral amplitudes out.
///
/// Stateless and deterministic: the same configuration gives the same geometry and the same
/// answers bit for bit, independent of the batch size and the number of threads.
#[derive(Clone, Debug)]
pub struct AcousticCavity {
    config: AcousticConfig,
    /// Wall scatterer positions (fixed).
    walls: Vec<Point>,
    /// Interior rigid scatterer positions (move under `perturb`).
    rigid: Vec<Point>,
    /// Membrane positions (move under `perturb`).
    membranes: Vec<Point>,
    /// Membrane resonance angular frequencies `omega_j`.
    membrane_omega: Vec<f64>,
    speaker: Point,
    mic: Point,
    freqs: Vec<f64>,
    cache: Vec<ToneCache>,
    fault: Option<String>,
}

impl AcousticCavity {
    /// Builds the seeded geometry and eliminates the rigid cavity per tone.
    ///
    /// # Errors
    /// [`CoreError::Config`] if the configuration is invalid or the objects do not fit.
    pub fn new(config: AcousticConfig) -> Result<Self, CoreError> {
        config.validate()?;
        let c = &config;
        let mut rng = rng_for(c.seed, "acoustic geometry");
        let walls = rectangle_outline(c.cavity_width, c.cavity_height, c.wall_spacing);
        let inner = |m: f64| [m, c.cavity_width - m, m, c.cavity_height - m];
        let speaker = place_point(&mut rng, inner(TRANSDUCER_MARGIN), 2.0 * TRANSDUCER_MARGIN, &[], "speaker")
            .map_err(|e| err("cavity_width", e))?;
        let mic = place_point(&mut rng, inner(TRANSDUCER_MARGIN), 2.0 * TRANSDUCER_MARGIN, &[speaker], "microphone")
            .map_err(|e| err("cavity_width", e))?;
        let mut taken: Vec<Point> = walls.clone();
        taken.extend([speaker, mic]);
        let mut rigid = Vec::with_capacity(c.n_rigid);
        for _ in 0..c.n_rigid {
            let p = place_point(&mut rng, inner(SCATTERER_MARGIN), SCATTERER_MARGIN, &taken, "rigid scatterer")
                .map_err(|e| err("n_rigid", e))?;
            taken.push(p);
            rigid.push(p);
        }
        let mut membranes = Vec::with_capacity(c.n_membranes);
        let mut membrane_omega = Vec::with_capacity(c.n_membranes);
        for _ in 0..c.n_membranes {
            let p = place_point(&mut rng, inner(SCATTERER_MARGIN), SCATTERER_MARGIN, &taken, "membrane")
                .map_err(|e| err("n_membranes", e))?;
            taken.push(p);
            membranes.push(p);
            let f = if c.freq_max > c.freq_min { rng.random_range(c.freq_min..c.freq_max) } else { c.freq_min };
            membrane_omega.push(2.0 * PI * f);
        }
        let mut sys = AcousticCavity {
            freqs: c.frequencies(),
            walls,
            rigid,
            membranes,
            membrane_omega,
            speaker,
            mic,
            cache: Vec::new(),
            fault: None,
            config,
        };
        sys.cache = sys.build_cache().map_err(|e| err("seed", e))?;
        Ok(sys)
    }

    /// The configuration this system was built from.
    pub fn config(&self) -> &AcousticConfig {
        &self.config
    }

    /// The tone frequencies, in output order.
    pub fn frequencies(&self) -> &[f64] {
        &self.freqs
    }

    fn rigid_positions(&self) -> Vec<Point> {
        self.walls.iter().chain(&self.rigid).copied().collect()
    }

    fn rigid_inv_alpha(&self) -> Complex64 {
        Complex64::new(self.config.rigid_reactance, -0.25 - self.config.rigid_absorption)
    }

    /// Inverse polarisability of membrane `j` at angular frequency `omega` and intensity `i`.
    fn membrane_inv_alpha(&self, j: usize, omega: f64, intensity: f64) -> Complex64 {
        let c = &self.config;
        let w0 = self.membrane_omega[j];
        Complex64::new(
            (w0 * w0 * (1.0 + c.nonlinearity * intensity) - omega * omega) / c.membrane_strength,
            -0.25 - omega * c.membrane_damping / c.membrane_strength,
        )
    }

    fn build_cache(&self) -> Result<Vec<ToneCache>, String> {
        let rig = self.rigid_positions();
        let mut all = rig.clone();
        all.extend(&self.membranes);
        all.extend([self.speaker, self.mic]);
        let dmin = min_pair_distance(&all);
        if dmin < 1e-6 {
            return Err(format!("two objects coincide (distance {dmin:e}); the coupling is singular"));
        }
        let (nr, nm) = (rig.len(), self.membranes.len());
        let inv_r = self.rigid_inv_alpha();
        self.freqs
            .par_iter()
            .map(|&f| {
                let k = 2.0 * PI * f;
                let z = DMatrix::from_fn(nr, nr, |i, j| if i == j { inv_r } else { -green(k, dist(rig[i], rig[j])) });
                // Right-hand sides: G_RM (membranes) and g_Rs (speaker).
                let rhs = DMatrix::from_fn(nr, nm + 1, |i, j| {
                    let src = if j < nm { self.membranes[j] } else { self.speaker };
                    green(k, dist(rig[i], src))
                });
                let x = z.lu().solve(&rhs).ok_or_else(|| format!("the rigid cavity is singular at f = {f}"))?;
                let g_mr = |a: Point, col: usize| -> Complex64 {
                    (0..nr).map(|i| green(k, dist(a, rig[i])) * x[(i, col)]).sum()
                };
                let mut coupling = Vec::with_capacity(nm * nm);
                for a in 0..nm {
                    for b in 0..nm {
                        let direct = if a == b {
                            Complex64::new(0.0, 0.0)
                        } else {
                            green(k, dist(self.membranes[a], self.membranes[b]))
                        };
                        coupling.push(direct + g_mr(self.membranes[a], b));
                    }
                }
                let drive = (0..nm)
                    .map(|a| green(k, dist(self.membranes[a], self.speaker)) + g_mr(self.membranes[a], nm))
                    .collect();
                let readout =
                    (0..nm).map(|b| green(k, dist(self.mic, self.membranes[b])) + g_mr(self.mic, b)).collect();
                Ok(ToneCache {
                    omega: k,
                    coupling,
                    drive,
                    direct: green(k, dist(self.mic, self.speaker)) + g_mr(self.mic, nm),
                    readout,
                })
            })
            .collect()
    }

    /// The complex microphone field of every tone for complex source strengths `q`
    /// (`q.len() == n_tones`), solving the membranes' nonlinearity self-consistently.
    ///
    /// # Errors
    /// [`SystemError::Device`] if the self-consistent solve does not converge, a system is
    /// singular, or a perturbation broke the geometry.
    ///
    /// # Panics
    /// If `q` has the wrong length (a caller bug).
    pub fn tone_fields(&self, q: &[Complex64]) -> Result<Vec<Complex64>, SystemError> {
        let mut sc = Scratch::default();
        let mut out = vec![Complex64::new(0.0, 0.0); self.freqs.len()];
        self.solve(q, &mut sc, &mut out)?;
        Ok(out)
    }

    /// Membrane monopole strengths `p[t * n_m + j]` for tone `t` given intensities `I[t * n_m + j]`.
    fn membrane_response(
        &self,
        q: &[Complex64],
        intensity: &[f64],
        sc_mat: &mut Vec<Complex64>,
        p: &mut [Complex64],
    ) -> Result<(), String> {
        let nm = self.membranes.len();
        for (t, tone) in self.cache.iter().enumerate() {
            let pt = &mut p[t * nm..(t + 1) * nm];
            sc_mat.clear();
            for a in 0..nm {
                for b in 0..nm {
                    let mut v = -tone.coupling[a * nm + b];
                    if a == b {
                        v += self.membrane_inv_alpha(a, tone.omega, intensity[t * nm + a]);
                    }
                    sc_mat.push(v);
                }
            }
            for (pa, d) in pt.iter_mut().zip(&tone.drive) {
                *pa = q[t] * d;
            }
            if !solve_in_place(sc_mat, pt, nm) {
                return Err(format!("singular membrane system at f = {}", self.freqs[t]));
            }
        }
        Ok(())
    }

    /// `I_jt = |p_jt|^2 + 2 sum_{s != t} |p_js|^2 = 2 S_j - |p_jt|^2`.
    fn intensities(&self, p: &[Complex64], out: &mut [f64]) {
        let (nm, nt) = (self.membranes.len(), self.freqs.len());
        for j in 0..nm {
            let total: f64 = (0..nt).map(|t| p[t * nm + j].norm_sqr()).sum();
            for t in 0..nt {
                out[t * nm + j] = 2.0 * total - p[t * nm + j].norm_sqr();
            }
        }
    }

    /// Damped fixed-point iteration on the intensities, warm-started from `sc.intensity`.
    /// Leaves the membrane strengths in `sc.p`; returns whether it converged.
    fn iterate(&self, q: &[Complex64], sc: &mut Scratch) -> Result<bool, SystemError> {
        let c = &self.config;
        let mut relaxation = c.relaxation;
        let mut last_change = f64::INFINITY;
        for _ in 0..c.max_iterations {
            self.membrane_response(q, &sc.intensity, &mut sc.mat, &mut sc.p).map_err(|e| self.device_error(e))?;
            self.intensities(&sc.p, &mut sc.fresh);
            let scale = 1.0 + sc.fresh.iter().copied().fold(0.0, f64::max);
            let change = sc.intensity.iter().zip(&sc.fresh).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            if !change.is_finite() {
                return Ok(false);
            }
            if change <= c.tolerance * scale {
                return Ok(true);
            }
            if change > last_change {
                // Overshooting (the update oscillates): damp harder.
                relaxation = (0.5 * relaxation).max(MIN_RELAXATION);
            }
            last_change = change;
            for (i, f) in sc.intensity.iter_mut().zip(&sc.fresh) {
                *i += relaxation * (f - *i);
            }
        }
        Ok(false)
    }

    /// Solves one sample: the self-consistent membrane response, then the microphone fields.
    ///
    /// Strategy: iterate from the linear solution; if that fails (strong drive near the
    /// Duffing fold-over), ramp the drive up in `RAMP_STEPS` steps from zero, warm-starting
    /// each step from the previous one. The ramp is what a slowly increasing volume does, so
    /// where two stable states coexist the solver lands on the one reached from silence.
    fn solve(&self, q: &[Complex64], sc: &mut Scratch, out: &mut [Complex64]) -> Result<(), SystemError> {
        assert_eq!(q.len(), self.freqs.len(), "tone_fields: need one amplitude per tone");
        if let Some(fault) = &self.fault {
            return Err(self.device_error(fault.clone()));
        }
        let c = &self.config;
        let (nm, nt) = (self.membranes.len(), self.freqs.len());
        let reset = |sc: &mut Scratch| {
            sc.intensity.clear();
            sc.intensity.resize(nm * nt, 0.0);
            sc.fresh.clear();
            sc.fresh.resize(nm * nt, 0.0);
            sc.p.clear();
            sc.p.resize(nm * nt, Complex64::new(0.0, 0.0));
        };
        reset(sc);
        if c.nonlinearity == 0.0 || nm == 0 {
            self.membrane_response(q, &sc.intensity, &mut sc.mat, &mut sc.p).map_err(|e| self.device_error(e))?;
        } else if !self.iterate(q, sc)? {
            reset(sc);
            let mut qs = vec![Complex64::new(0.0, 0.0); nt];
            for step in 1..=RAMP_STEPS {
                let s = step as f64 / RAMP_STEPS as f64;
                for (a, b) in qs.iter_mut().zip(q) {
                    *a = s * b;
                }
                if !self.iterate(&qs, sc)? {
                    let power: f64 = q.iter().map(|v| v.norm_sqr()).sum();
                    return Err(self.device_error(format!(
                        "the membranes' self-consistent solve did not converge in {} iterations, even \
                         ramping the drive up (drive power {power}); lower nonlinearity or \
                         input_power, raise membrane_damping or max_iterations",
                        c.max_iterations
                    )));
                }
            }
        }
        for (t, tone) in self.cache.iter().enumerate() {
            let pt = &sc.p[t * nm..(t + 1) * nm];
            out[t] = q[t] * tone.direct + pt.iter().zip(&tone.readout).map(|(p, r)| p * r).sum::<Complex64>();
        }
        Ok(())
    }

    /// Tone amplitudes of one input sample: `q_t = sqrt(input_power) |x_t| / ||x||_2` (all zero
    /// for an all-zero sample), written into `q`.
    ///
    /// # Panics
    /// If `q.len() != x.len()` (a caller bug).
    pub fn encode(&self, x: &[f64], q: &mut [Complex64]) {
        assert_eq!(q.len(), x.len(), "encode: one amplitude per input value");
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        let scale = if norm > 0.0 { self.config.input_power.sqrt() / norm } else { 0.0 };
        for (qt, v) in q.iter_mut().zip(x) {
            *qt = Complex64::new(scale * v.abs(), 0.0);
        }
    }

    fn device_error(&self, message: String) -> SystemError {
        SystemError::Device { system: self.label(), message }
    }

    fn label(&self) -> String {
        format!("acoustic cavity ({} tones, {} membranes)", self.config.n_tones, self.config.n_membranes)
    }
}

impl<F: Real> PhysicalSystem<F> for AcousticCavity {
    fn name(&self) -> String {
        self.label()
    }
    fn input_len(&self) -> usize {
        self.config.n_tones
    }
    fn output_len(&self) -> usize {
        self.config.n_tones
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        let n = self.config.n_tones;
        check_batch(&self.label(), n, n, &input, &output)?;
        if input.rows() == 0 {
            return Ok(());
        }
        let this = &*self;
        output.data_mut().par_chunks_mut(n).zip(input.data().par_chunks(n)).try_for_each_init(
            || (Scratch::default(), vec![Complex64::new(0.0, 0.0); n], vec![Complex64::new(0.0, 0.0); n]),
            |(sc, q, u), (out, x)| {
                let x: Vec<f64> = x.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).collect();
                this.encode(&x, q);
                this.solve(q, sc, u)?;
                for (o, u) in out.iter_mut().zip(u.iter()) {
                    *o = F::c(u.norm());
                }
                Ok(())
            },
        )
    }
}

impl Perturbable for AcousticCavity {
    /// Moves every interior rigid scatterer and membrane by `strength x N(0, 1)` per coordinate
    /// (lengths in wavelengths at `f = 1`), kept inside the cavity; walls, speaker and
    /// microphone stay put. Perturbations accumulate; the cavity elimination is then redone.
    fn perturb(&mut self, strength: f64, rng: &mut Rng) {
        let (w, h) = (self.config.cavity_width, self.config.cavity_height);
        let m = 0.5 * SCATTERER_MARGIN;
        for p in self.rigid.iter_mut().chain(self.membranes.iter_mut()) {
            let (a, b): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
            *p = [(p[0] + strength * a).clamp(m, w - m), (p[1] + strength * b).clamp(m, h - m)];
        }
        match self.build_cache() {
            Ok(cache) => {
                self.cache = cache;
                self.fault = None;
            }
            Err(e) => self.fault = Some(format!("after a perturbation: {e}")),
        }
    }
}

#[cfg(test)]
mod tests;

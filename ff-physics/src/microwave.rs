//! Microwave: a reverberating 2-D cavity with a programmable metasurface, in the coupled-dipole
//! model of PhysFad (Faqiri, Saigre-Tardif, Alexandropoulos, Shlezinger, Imani, del Hougne,
//! IEEE Trans. Wireless Commun. 2022).
//!
//! # Units and conventions
//! - Normalised units: the wave speed is 1, so a frequency `f` has wavenumber `k = 2 pi f` and
//!   wavelength `1/f`; all lengths are in units of the wavelength at `f = 1`.
//! - Time dependence `exp(+j 2 pi f t)`; outgoing cylindrical waves are `H0^(2)(k r)`.
//!
//! # The model
//! Every antenna, wall scatterer and metasurface element `i` is a 2-D dipole at `r_i` with
//! resonance `f_i`, coupling `chi_i` and loss `gamma_i`. Their dipole moments `p` answer an
//! external excitation `e` through `W(f) p = e`, with
//! - `W_ii = ((2 pi f_i)^2 - (2 pi f)^2) / chi_i^2 + j (k^2/4 + 2 pi f gamma_i / chi_i^2)`
//!   (the inverse polarisability; the `j k^2/4` term is radiation damping),
//! - `W_ij = j (k^2/4) H0^(2)(k |r_i - r_j|)` for `i != j`, i.e. minus the 2-D Green's function
//!   `G(r) = -j (k^2/4) H0^(2)(k r)`.
//!
//! The transmission from the transmitting antenna `t` to the receiving antenna `r` is
//! `H = [diag(W) W^-1]_{r,t} = W_rr (W^-1)_{r,t}`: the tx antenna is driven by a unit external
//! field (`e = e_t`), and since row `r` of `W p = e_t` reads `W_rr p_r = -sum_{j != r} W_rj p_j`,
//! `H` is the total field (direct plus all scattering paths) arriving at the receiving antenna.
//! In free space with only the two antennas this is
//! `H = G_rt alpha_t / (1 - alpha_t alpha_r G_rt^2)`, `alpha_i = 1 / W_ii`, which reduces to the
//! direct Green's function path `G_rt alpha_t` when the antennas are weakly coupled. The
//! reported output is `|S21| = |H|` (dimensionless: field at rx per unit field driving tx).
//!
//! `W` is symmetric (`W = W^T`, not Hermitian) so `W^-1` is too: the channel is reciprocal
//! whenever the two antennas are identical (then `W_rr = W_tt`).
//!
//! Energy: writing `W = R + j M` with real symmetric `R` and
//! `M = (k^2/4) [J0(k r_ij)] + diag(2 pi f gamma_i / chi_i^2)`, `M` is positive semi-definite
//! (`J0(k|r|)` is a positive-definite kernel in 2-D), so the system is passive: the power drawn
//! from the source, `-Im p_t`, equals the radiated power `(k^2/4) p^H [J0] p` plus the absorbed
//! power `sum_i 2 pi f gamma_i |p_i|^2 / chi_i^2`, both non-negative. `|S21|` itself is not
//! bounded by 1 in this normalisation (it compares local fields, not powers).
//!
//! # Geometry
//! A rectangle `[0, cavity_width] x [0, cavity_height]` outlined by wall dipoles at most
//! `wall_spacing` apart, `n_scatterers` interior scatterers of the same kind (seeded positions,
//! they make the cavity irregular), one tx and one rx antenna (seeded positions), and
//! `2 n_inputs` metasurface elements in a row parallel to the bottom wall (`y = 0`) at height
//! `meta_offset`, `meta_spacing` apart and centred.
//!
//! # Input encoding
//! See [`encode_2bit`]: each input value becomes two metasurface bits. A bit `1` ("on") tunes its
//! element's resonance to `meta_f_on` (default 1, inside the band: the element scatters
//! resonantly), a bit `0` ("off") to `meta_f_off` (default 5, far from the band).
//!
//! # Computation
//! Only the metasurface diagonal entries depend on the input. At construction, for each
//! frequency, the fixed part (walls, scatterers, antennas: `E`) is eliminated once by a Schur
//! complement, leaving an `M x M` system (`M = 2 n_inputs`):
//! `S = W_MM - W_ME W_EE^-1 W_EM`, and
//! `(W^-1)_rt = (W_EE^-1)_rt + (W_EE^-1 W_EM)_{r,:} S^-1 (W_ME W_EE^-1)_{:,t}`.
//! `S` differs from its all-off (or all-on) version `B` only on the diagonal entries of the
//! elements in the other state, so with `B^-1` also precomputed a query needs, per frequency,
//! one `K x K` complex solve (Woodbury identity), `K <= M/2` the number of elements in the
//! minority state, instead of a dense solve over all dipoles. The samples of a batch run in
//! parallel. Internally everything is `f64`.

use crate::check::{cfg_err, check_non_negative, check_positive};
use crate::geometry::{dist, min_pair_distance, place_point, rectangle_outline, Point};
use crate::imperfections::Perturbable;
use crate::linalg::solve_in_place;
use crate::special::hankel2_0;
use ff_core::rng::{rng_for, Rng};
use ff_core::{check_batch, CoreError, MatMut, MatRef, PhysicalSystem, Real, SystemError};
use nalgebra::{DMatrix, DVector};
use num_complex::Complex64;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Resonance, coupling and loss of one kind of dipole (normalised units, see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DipoleParams {
    /// Resonance frequency `f_i` (normalised frequency, > 0).
    pub f_res: f64,
    /// Coupling strength `chi_i` (> 0); larger means a stronger scatterer.
    pub chi: f64,
    /// Absorption loss `gamma_i` (>= 0); 0 is lossless (radiation damping only).
    pub gamma: f64,
}

/// Configuration of a [`MicrowaveCavity`]. Plain data; checked by [`MicrowaveConfig::validate`].
///
/// Lengths are in units of the wavelength at `f = 1`, frequencies are normalised (wave speed 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MicrowaveConfig {
    /// Number of real input values per sample; each drives two metasurface elements. Default 20.
    pub n_inputs: usize,
    /// Number of frequency points (outputs). Default 20.
    pub n_freqs: usize,
    /// Lowest frequency point. Default 0.9.
    pub freq_min: f64,
    /// Highest frequency point (points are evenly spaced, both ends included). Default 1.1.
    pub freq_max: f64,
    /// Cavity extent along x. Default 6.
    pub cavity_width: f64,
    /// Cavity extent along y. Default 5.
    pub cavity_height: f64,
    /// Largest distance between neighbouring wall dipoles. Default 0.25 (a quarter wavelength).
    pub wall_spacing: f64,
    /// Number of interior scatterers (same parameters as the walls). Default 8.
    pub n_scatterers: usize,
    /// Wall and interior scatterer dipoles. Default `f_res = 10, chi = 50, gamma = 100`.
    pub wall: DipoleParams,
    /// Both antennas (identical, so the channel is reciprocal). Default `f_res = 1, chi = 0.5, gamma = 0`.
    pub antenna: DipoleParams,
    /// Metasurface element coupling `chi`. Default 50 (the specification's value).
    ///
    /// With `chi = 50` both element states are strong, nearly unitary-limit scatterers (the
    /// resonance term `((2 pi f_i)^2 - (2 pi f)^2)/chi^2` is small next to `k^2/4`), so the
    /// configuration modulates `|S21|` weakly: measured relative spread over random
    /// configurations ~2 % on the default geometry, against ~27 % for `chi = 5`.
    pub meta_chi: f64,
    /// Metasurface element loss `gamma`. Default 0.
    pub meta_gamma: f64,
    /// Resonance of an element whose bit is 1 ("on"). Default 1.
    pub meta_f_on: f64,
    /// Resonance of an element whose bit is 0 ("off"). Default 5.
    pub meta_f_off: f64,
    /// Distance between neighbouring metasurface elements. Default 0.12.
    pub meta_spacing: f64,
    /// Distance of the metasurface row from the bottom wall. Default 0.15.
    pub meta_offset: f64,
    /// Seed of the geometry (antenna and scatterer positions).
    pub seed: u64,
}

impl Default for MicrowaveConfig {
    fn default() -> Self {
        MicrowaveConfig {
            n_inputs: 20,
            n_freqs: 20,
            freq_min: 0.9,
            freq_max: 1.1,
            cavity_width: 6.0,
            cavity_height: 5.0,
            wall_spacing: 0.25,
            n_scatterers: 8,
            wall: DipoleParams { f_res: 10.0, chi: 50.0, gamma: 100.0 },
            antenna: DipoleParams { f_res: 1.0, chi: 0.5, gamma: 0.0 },
            meta_chi: 50.0,
            meta_gamma: 0.0,
            meta_f_on: 1.0,
            meta_f_off: 5.0,
            meta_spacing: 0.12,
            meta_offset: 0.15,
            seed: 0,
        }
    }
}

/// Distance kept between antennas and walls/metasurface, and between the two antennas.
const ANTENNA_MARGIN: f64 = 0.5;
/// Minimum distance of interior scatterers from everything else.
const SCATTERER_MARGIN: f64 = 0.3;
/// Largest dense system the constructor accepts (memory and time guard).
const MAX_DIPOLES: usize = 3000;

impl MicrowaveConfig {
    /// Number of metasurface elements, `2 n_inputs`.
    pub fn n_elements(&self) -> usize {
        2 * self.n_inputs
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the first offending field, its value and what is accepted.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.n_inputs == 0 {
            return Err(cfg_err("n_inputs", "must be at least 1, got 0".into()));
        }
        if self.n_freqs == 0 {
            return Err(cfg_err("n_freqs", "must be at least 1, got 0".into()));
        }
        check_positive("freq_min", self.freq_min)?;
        check_positive("freq_max", self.freq_max)?;
        if self.freq_max < self.freq_min || (self.n_freqs > 1 && self.freq_max == self.freq_min) {
            return Err(cfg_err(
                "freq_max",
                format!("must exceed freq_min = {} when n_freqs > 1, got {}", self.freq_min, self.freq_max),
            ));
        }
        check_positive("cavity_width", self.cavity_width)?;
        check_positive("cavity_height", self.cavity_height)?;
        check_positive("wall_spacing", self.wall_spacing)?;
        for (name, p) in [("wall", &self.wall), ("antenna", &self.antenna)] {
            check_positive(&format!("{name}.f_res"), p.f_res)?;
            check_positive(&format!("{name}.chi"), p.chi)?;
            check_non_negative(&format!("{name}.gamma"), p.gamma)?;
        }
        check_positive("meta_chi", self.meta_chi)?;
        check_non_negative("meta_gamma", self.meta_gamma)?;
        check_positive("meta_f_on", self.meta_f_on)?;
        check_positive("meta_f_off", self.meta_f_off)?;
        if self.meta_f_on == self.meta_f_off {
            return Err(cfg_err(
                "meta_f_off",
                format!(
                    "equals meta_f_on ({}): the metasurface would ignore its input; pick two \
                     different resonances",
                    self.meta_f_on
                ),
            ));
        }
        check_positive("meta_spacing", self.meta_spacing)?;
        check_positive("meta_offset", self.meta_offset)?;
        let row = (self.n_elements() - 1) as f64 * self.meta_spacing;
        if row > self.cavity_width - 2.0 * self.meta_offset {
            return Err(cfg_err(
                "meta_spacing",
                format!(
                    "{} elements {} apart span {row}, which does not fit in cavity_width {} \
                     minus 2 x meta_offset; lower meta_spacing or n_inputs, or widen the cavity",
                    self.n_elements(),
                    self.meta_spacing,
                    self.cavity_width
                ),
            ));
        }
        if self.meta_offset + 2.0 * ANTENNA_MARGIN >= self.cavity_height - ANTENNA_MARGIN {
            return Err(cfg_err(
                "cavity_height",
                format!(
                    "{} leaves no room for the antennas above the metasurface (needs more than \
                     meta_offset + {})",
                    self.cavity_height,
                    3.0 * ANTENNA_MARGIN
                ),
            ));
        }
        if self.cavity_width <= 2.0 * ANTENNA_MARGIN {
            return Err(cfg_err(
                "cavity_width",
                format!("must exceed {}, got {}", 2.0 * ANTENNA_MARGIN, self.cavity_width),
            ));
        }
        let n_walls = rectangle_outline(self.cavity_width, self.cavity_height, self.wall_spacing).len();
        let total = n_walls + self.n_scatterers + 2 + self.n_elements();
        if total > MAX_DIPOLES {
            return Err(cfg_err(
                "wall_spacing",
                format!(
                    "gives {total} dipoles in total (limit {MAX_DIPOLES}); increase wall_spacing \
                     ({}) or shrink the cavity",
                    self.wall_spacing
                ),
            ));
        }
        Ok(())
    }

    /// The frequency points: `n_freqs` evenly spaced values from `freq_min` to `freq_max`
    /// (just `freq_min` when `n_freqs == 1`).
    pub fn frequencies(&self) -> Vec<f64> {
        linspace(self.freq_min, self.freq_max, self.n_freqs)
    }
}

pub(crate) fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lo];
    }
    (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect()
}

/// Maps one sample to metasurface bits: two bits per input value, written into `bits`
/// (`bits.len() == 2 x.len()`). Bit `2i` is the high bit of value `i`, bit `2i+1` the low bit.
///
/// Each value is min-max scaled within the sample, `s = (x - min) / (max - min)` in `[0, 1]`,
/// and quantised to a 2-bit code:
///
/// | scaled value `s` | code |
/// |---|---|
/// | `s = 0` (the sample's minimum) | `00` |
/// | `0 < s <= 0.25` | `01` |
/// | `0.25 < s <= 0.75` (the middle bin, half the range) | `10` |
/// | `0.75 < s <= 1` | `11` |
///
/// This reads the specification's "00 at the minimum, then bins of a quarter range, the
/// middle bin spanning half" literally: only the minimum itself maps to `00`. A constant
/// sample (`max == min`) maps to all zeros.
///
/// # Panics
/// If `bits.len() != 2 * x.len()` (a caller bug).
pub fn encode_2bit(x: &[f64], bits: &mut [bool]) {
    assert_eq!(bits.len(), 2 * x.len(), "encode_2bit: need two bits per value");
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = hi - lo;
    for (i, &v) in x.iter().enumerate() {
        let s = if range > 0.0 { (v - lo) / range } else { 0.0 };
        let code = if s <= 0.0 {
            0
        } else if s <= 0.25 {
            1
        } else if s <= 0.75 {
            2
        } else {
            3
        };
        bits[2 * i] = code & 2 != 0;
        bits[2 * i + 1] = code & 1 != 0;
    }
}

/// One dipole: position and parameters.
#[derive(Clone, Copy, Debug)]
struct Dipole {
    pos: Point,
    p: DipoleParams,
}

impl Dipole {
    /// Diagonal entry of `W` (inverse polarisability) at frequency `f`.
    fn w_diag(&self, f: f64) -> Complex64 {
        w_diag(self.p, f)
    }
}

fn w_diag(p: DipoleParams, f: f64) -> Complex64 {
    let (w0, w) = (2.0 * PI * p.f_res, 2.0 * PI * f);
    let k = w; // wave speed 1
    let chi2 = p.chi * p.chi;
    Complex64::new((w0 * w0 - w * w) / chi2, k * k / 4.0 + w * p.gamma / chi2)
}

/// Off-diagonal entry of `W`: `j (k^2/4) H0^(2)(k r)`.
fn w_offdiag(f: f64, r: f64) -> Complex64 {
    let k = 2.0 * PI * f;
    Complex64::new(0.0, k * k / 4.0) * hankel2_0(k * r)
}

/// The full interaction matrix, with `coupled(i, j)` deciding which off-diagonal entries are
/// kept (the reference implementation and the tests use it; the fast path does not).
fn interaction_matrix(d: &[Dipole], f: f64, coupled: &dyn Fn(usize, usize) -> bool) -> DMatrix<Complex64> {
    let n = d.len();
    let mut w = DMatrix::zeros(n, n);
    for i in 0..n {
        w[(i, i)] = d[i].w_diag(f);
        for j in 0..i {
            if coupled(i, j) {
                let v = w_offdiag(f, dist(d[i].pos, d[j].pos));
                w[(i, j)] = v;
                w[(j, i)] = v;
            }
        }
    }
    w
}

/// The metasurface block inverted around one reference state (all elements off, or all on).
#[derive(Clone, Debug)]
struct Reference {
    /// `B^-1`, `B = S0 + d_ref I`, row-major `M x M`.
    binv: Vec<Complex64>,
    /// `u^T B^-1 v`.
    beta: Complex64,
    /// `B^-T u`.
    a: Vec<Complex64>,
    /// `B^-1 v`.
    b: Vec<Complex64>,
}

impl Reference {
    fn new(s0: &DMatrix<Complex64>, d_ref: Complex64, u: &DVector<Complex64>, v: &DVector<Complex64>) -> Option<Self> {
        let m = s0.nrows();
        let bmat = s0 + DMatrix::from_diagonal_element(m, m, d_ref);
        let binv = bmat.try_inverse()?;
        let a = binv.transpose() * u;
        let b = &binv * v;
        Some(Reference {
            beta: u.dot(&b),
            binv: (0..m * m).map(|k| binv[(k / m, k % m)]).collect(),
            a: a.iter().copied().collect(),
            b: b.iter().copied().collect(),
        })
    }
}

/// Per-frequency precomputation (everything that does not depend on the metasurface bits).
///
/// With the environment eliminated, the metasurface block is `S = S0 + diag(d_i)`, `d_i` being
/// `d_on` or `d_off`. Around a reference state `B = S0 + d_ref I` only the `K` elements in the
/// other state differ, by `delta = d_other - d_ref`, and Woodbury's identity gives
/// `u^T S^-1 v = u^T B^-1 v - delta a_K^T (I + delta B^-1_KK)^-1 b_K` with `a = B^-T u`,
/// `b = B^-1 v`: a `|K| x |K|` solve, `|K| <= M/2` when the closer reference is used.
#[derive(Clone, Debug)]
struct FreqCache {
    /// `W_rr`.
    w_rr: Complex64,
    /// `(W_EE^-1)_rt`.
    a_rt: Complex64,
    /// `W_ii` of an element in the on state.
    d_on: Complex64,
    /// `W_ii` of an element in the off state.
    d_off: Complex64,
    /// Inverse around the all-off state.
    off: Reference,
    /// Inverse around the all-on state.
    on: Reference,
}

/// Scratch buffers of one query thread.
#[derive(Default)]
struct Scratch {
    idx: Vec<usize>,
    mat: Vec<Complex64>,
    rhs: Vec<Complex64>,
}

impl FreqCache {
    /// `(W^-1)_rt W_rr` for a configuration.
    fn channel(&self, bits: &[bool], sc: &mut Scratch) -> Option<Complex64> {
        let n_on = bits.iter().filter(|&&b| b).count();
        // Reference = the majority state; K = the elements in the minority state.
        let (reference, minority, delta) = if 2 * n_on <= bits.len() {
            (&self.off, true, self.d_on - self.d_off)
        } else {
            (&self.on, false, self.d_off - self.d_on)
        };
        sc.idx.clear();
        sc.idx.extend(bits.iter().enumerate().filter(|(_, &b)| b == minority).map(|(i, _)| i));
        let k = sc.idx.len();
        let m = bits.len();
        let mut corr = Complex64::new(0.0, 0.0);
        if k > 0 && delta != Complex64::new(0.0, 0.0) {
            sc.mat.clear();
            for &i in &sc.idx {
                for &j in &sc.idx {
                    let id = if i == j { 1.0 } else { 0.0 };
                    sc.mat.push(id + delta * reference.binv[i * m + j]);
                }
            }
            sc.rhs.clear();
            sc.rhs.extend(sc.idx.iter().map(|&i| reference.b[i]));
            if !solve_in_place(&mut sc.mat, &mut sc.rhs, k) {
                return None;
            }
            corr = delta * sc.idx.iter().zip(&sc.rhs).map(|(&i, y)| reference.a[i] * y).sum::<Complex64>();
        }
        Some(self.w_rr * (self.a_rt + reference.beta - corr))
    }
}

/// A reverberating cavity with a programmable metasurface (see the module docs), as a
/// [`PhysicalSystem`]: `n_inputs` real values in, `|S21|` at `n_freqs` frequencies out.
///
/// Stateless and deterministic: the same configuration gives the same geometry and the same
/// answers bit for bit, independent of the batch size and the number of threads.
#[derive(Clone, Debug)]
pub struct MicrowaveCavity {
    config: MicrowaveConfig,
    /// Wall and interior scatterer dipoles (positions and resonances drift under `perturb`).
    env: Vec<Dipole>,
    tx: Dipole,
    rx: Dipole,
    meta: Vec<Point>,
    freqs: Vec<f64>,
    cache: Vec<FreqCache>,
    /// Set when a perturbation produced an unusable geometry; every query then fails with it.
    fault: Option<String>,
}

impl MicrowaveCavity {
    /// Builds the seeded geometry and precomputes the per-frequency Schur complements.
    ///
    /// # Errors
    /// [`CoreError::Config`] if the configuration is invalid or the objects do not fit, and
    /// [`CoreError::Config`] naming `seed` in the (unlikely) case of a singular system.
    pub fn new(config: MicrowaveConfig) -> Result<Self, CoreError> {
        config.validate()?;
        let c = &config;
        let mut rng = rng_for(c.seed, "microwave geometry");
        let walls = rectangle_outline(c.cavity_width, c.cavity_height, c.wall_spacing);
        let m = c.n_elements();
        let row = (m - 1) as f64 * c.meta_spacing;
        let x0 = 0.5 * (c.cavity_width - row);
        let meta: Vec<Point> = (0..m).map(|i| [x0 + i as f64 * c.meta_spacing, c.meta_offset]).collect();
        let ant_region = [
            ANTENNA_MARGIN,
            c.cavity_width - ANTENNA_MARGIN,
            c.meta_offset + ANTENNA_MARGIN,
            c.cavity_height - ANTENNA_MARGIN,
        ];
        let tx_pos = place_point(&mut rng, ant_region, 2.0 * ANTENNA_MARGIN, &[], "tx antenna")
            .map_err(|e| cfg_err("cavity_width", e))?;
        let rx_pos = place_point(&mut rng, ant_region, 2.0 * ANTENNA_MARGIN, &[tx_pos], "rx antenna")
            .map_err(|e| cfg_err("cavity_width", e))?;
        let mut taken: Vec<Point> = walls.iter().chain(&meta).copied().collect();
        taken.push(tx_pos);
        taken.push(rx_pos);
        let sc_region = [
            SCATTERER_MARGIN,
            c.cavity_width - SCATTERER_MARGIN,
            c.meta_offset + SCATTERER_MARGIN,
            c.cavity_height - SCATTERER_MARGIN,
        ];
        let mut env: Vec<Dipole> = walls.iter().map(|&pos| Dipole { pos, p: c.wall }).collect();
        for _ in 0..c.n_scatterers {
            let pos = place_point(&mut rng, sc_region, SCATTERER_MARGIN, &taken, "interior scatterer")
                .map_err(|e| cfg_err("n_scatterers", e))?;
            taken.push(pos);
            env.push(Dipole { pos, p: c.wall });
        }
        let mut sys = MicrowaveCavity {
            freqs: c.frequencies(),
            tx: Dipole { pos: tx_pos, p: c.antenna },
            rx: Dipole { pos: rx_pos, p: c.antenna },
            env,
            meta,
            cache: Vec::new(),
            fault: None,
            config,
        };
        sys.cache = sys.build_cache().map_err(|e| cfg_err("seed", e))?;
        Ok(sys)
    }

    /// The configuration this system was built from.
    pub fn config(&self) -> &MicrowaveConfig {
        &self.config
    }

    /// The frequency points of the outputs, in order.
    pub fn frequencies(&self) -> &[f64] {
        &self.freqs
    }

    /// All dipoles in the solver's order: environment (walls, then interior scatterers), tx,
    /// rx, metasurface elements with resonances set by `bits`.
    fn dipoles(&self, bits: &[bool]) -> Vec<Dipole> {
        let c = &self.config;
        let mut d = self.env.clone();
        d.push(self.tx);
        d.push(self.rx);
        for (i, &pos) in self.meta.iter().enumerate() {
            let f_res = if bits[i] { c.meta_f_on } else { c.meta_f_off };
            d.push(Dipole { pos, p: DipoleParams { f_res, chi: c.meta_chi, gamma: c.meta_gamma } });
        }
        d
    }

    fn build_cache(&self) -> Result<Vec<FreqCache>, String> {
        let all = self.dipoles(&vec![false; self.meta.len()]);
        let positions: Vec<Point> = all.iter().map(|d| d.pos).collect();
        let dmin = min_pair_distance(&positions);
        if dmin < 1e-6 {
            return Err(format!("two dipoles coincide (distance {dmin:e}); the coupling is singular"));
        }
        let (n_e, m) = (self.env.len() + 2, self.meta.len());
        let (t, r) = (n_e - 2, n_e - 1);
        let c = &self.config;
        let meta_p = |f_res| DipoleParams { f_res, chi: c.meta_chi, gamma: c.meta_gamma };
        self.freqs
            .par_iter()
            .map(|&f| {
                // Hankel couplings between all dipoles at this frequency (the only costly part).
                let w = interaction_matrix(&all, f, &|_, _| true);
                let w_ee = w.view((0, 0), (n_e, n_e)).into_owned();
                let mut rhs = DMatrix::zeros(n_e, m + 1);
                rhs.view_mut((0, 0), (n_e, m)).copy_from(&w.view((0, n_e), (n_e, m)));
                rhs[(t, m)] = Complex64::new(1.0, 0.0);
                let x = w_ee
                    .lu()
                    .solve(&rhs)
                    .ok_or_else(|| format!("the environment's interaction matrix is singular at f = {f}"))?;
                let a_em = x.view((0, 0), (n_e, m));
                let mut s0 = w.view((n_e, n_e), (m, m)).into_owned();
                s0 -= w.view((n_e, 0), (m, n_e)) * a_em;
                for i in 0..m {
                    // Remove the placeholder (all-off) diagonal; the query adds the real one.
                    s0[(i, i)] -= w[(n_e + i, n_e + i)];
                }
                let u: DVector<Complex64> = a_em.row(r).transpose();
                let v: DVector<Complex64> = a_em.row(t).transpose();
                let (d_on, d_off) = (w_diag(meta_p(c.meta_f_on), f), w_diag(meta_p(c.meta_f_off), f));
                let singular = || format!("the metasurface block is singular at f = {f}");
                Ok(FreqCache {
                    w_rr: w[(r, r)],
                    a_rt: x[(r, m)],
                    d_on,
                    d_off,
                    off: Reference::new(&s0, d_off, &u, &v).ok_or_else(singular)?,
                    on: Reference::new(&s0, d_on, &u, &v).ok_or_else(singular)?,
                })
            })
            .collect()
    }

    /// The complex channel `H(f) = W_rr (W^-1)_rt` at every frequency point for a metasurface
    /// configuration (`bits.len() == 2 n_inputs`, `true` = on).
    ///
    /// # Errors
    /// [`SystemError::Device`] if the system is singular or a perturbation broke the geometry.
    ///
    /// # Panics
    /// If `bits` has the wrong length (a caller bug).
    pub fn channel(&self, bits: &[bool]) -> Result<Vec<Complex64>, SystemError> {
        assert_eq!(bits.len(), self.meta.len(), "channel: need one bit per metasurface element");
        let mut sc = Scratch::default();
        self.channel_with(bits, &mut sc)
    }

    fn channel_with(&self, bits: &[bool], sc: &mut Scratch) -> Result<Vec<Complex64>, SystemError> {
        if let Some(fault) = &self.fault {
            return Err(self.device_error(fault.clone()));
        }
        self.cache
            .iter()
            .zip(&self.freqs)
            .map(|(c, &f)| {
                c.channel(bits, sc).ok_or_else(|| self.device_error(format!("singular metasurface system at f = {f}")))
            })
            .collect()
    }

    fn device_error(&self, message: String) -> SystemError {
        SystemError::Device { system: self.label(), message }
    }

    fn label(&self) -> String {
        format!("microwave cavity ({} -> {})", self.config.n_inputs, self.config.n_freqs)
    }
}

impl<F: Real> PhysicalSystem<F> for MicrowaveCavity {
    fn name(&self) -> String {
        self.label()
    }
    fn input_len(&self) -> usize {
        self.config.n_inputs
    }
    fn output_len(&self) -> usize {
        self.config.n_freqs
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        let (n_in, n_out) = (self.config.n_inputs, self.config.n_freqs);
        check_batch(&self.label(), n_in, n_out, &input, &output)?;
        if input.rows() == 0 {
            return Ok(());
        }
        let this = &*self;
        output.data_mut().par_chunks_mut(n_out).zip(input.data().par_chunks(n_in)).try_for_each_init(
            Scratch::default,
            |sc, (out, x)| {
                let x: Vec<f64> = x.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).collect();
                let mut bits = vec![false; 2 * n_in];
                encode_2bit(&x, &mut bits);
                let h = this.channel_with(&bits, sc)?;
                for (o, h) in out.iter_mut().zip(h) {
                    *o = F::c(h.norm());
                }
                Ok(())
            },
        )
    }
}

impl Perturbable for MicrowaveCavity {
    /// Jitters every wall and interior scatterer dipole: each position coordinate moves by
    /// `strength x N(0, 1)` (lengths in wavelengths at `f = 1`) and each resonance is scaled by
    /// `1 + strength x N(0, 1)` (kept above 1 % of its value). Antennas and the metasurface stay
    /// put. Perturbations accumulate (a random walk), then the precomputation is redone.
    fn perturb(&mut self, strength: f64, rng: &mut Rng) {
        for d in &mut self.env {
            let (a, b, c): (f64, f64, f64) =
                (StandardNormal.sample(rng), StandardNormal.sample(rng), StandardNormal.sample(rng));
            d.pos = [d.pos[0] + strength * a, d.pos[1] + strength * b];
            d.p.f_res *= (1.0 + strength * c).max(0.01);
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

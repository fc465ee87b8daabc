//! Free-space optics: angular-spectrum propagation and a diffractive system of phase planes.
//!
//! # Propagation
//! A scalar monochromatic field `E(x, y)` sampled on an `n x n` grid of pitch `dx_m` is
//! propagated over a distance `z >= 0` along the optical axis by the angular-spectrum method:
//! `E(z) = IFFT[ FFT[E(0)] H ]` with, for spatial angular frequencies `kx = 2 pi fx`,
//! `ky = 2 pi fy` (`fx` from [`crate::fft::fftfreq`] in cycles per metre) and `k = 2 pi / lambda`,
//! - `H = exp(+i z sqrt(k^2 - kx^2 - ky^2))` for propagating components (`kx^2 + ky^2 <= k^2`),
//! - `H = exp(-z sqrt(kx^2 + ky^2 - k^2))` for evanescent ones, which decay.
//!
//! The sign follows the `exp(-i omega t)` time convention with the inverse FFT carrying
//! `exp(+i kx x)`: a plane wave `exp(i(kx x + kz z))` travels towards `+z`. The field is
//! zero-padded (centred) to `padding_factor * n` pixels before the FFT and cropped back
//! afterwards, so light does not wrap around the periodic FFT window; light leaving the
//! `n x n` window is lost, like at a finite aperture. With `padding_factor = 1` the
//! propagation is periodic and exactly composable (`H(z1) H(z2) = H(z1 + z2)`).
//!
//! `H` itself is sampled without aliasing for `z` up to
//! [`OpticalGrid::max_alias_free_distance_m`]; farther, the method stays accurate only for
//! fields whose spectrum is narrow (such as the Gaussian beam of the tests).
//!
//! # The system
//! [`FreeSpaceSystem`]: SLM (phase encoding `exp(i pi v)` by default) -> distance ->
//! phase plane 1 -> distance -> ... -> phase plane D -> distance -> camera (intensity by
//! default), binned to the output grid.

use crate::camera::{bin_sum, Detection};
use crate::fft::{freq_index, Direction, Fft2d, FftReal};
use crate::slm::{Encoding, Placement, SlmMap};
use ff_core::{check_batch, rng::rng_for, CoreError, MatMut, MatRef, PhysicalSystem, SystemError};
use num_complex::Complex;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// The sampling of a free-space field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpticalGrid {
    /// Pixels per side of the square field (`n`).
    pub n: usize,
    /// Pixel pitch, in metres.
    pub dx_m: f64,
    /// Vacuum wavelength of the light, in metres.
    pub wavelength_m: f64,
    /// The FFT window is `padding_factor * n` pixels per side (1 = periodic, no padding;
    /// 2 = the usual choice against wrap-around).
    pub padding_factor: usize,
}

impl OpticalGrid {
    /// Checks the sampling; `field` names the configuration section in errors.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the bad value.
    pub fn validate(&self, field: &str) -> Result<(), CoreError> {
        if self.n == 0 {
            return Err(CoreError::config(format!("{field}.n"), "must be at least 1 pixel, got 0"));
        }
        for (name, v) in [("dx_m", self.dx_m), ("wavelength_m", self.wavelength_m)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(CoreError::config(
                    format!("{field}.{name}"),
                    format!("must be a positive length in metres, got {v}"),
                ));
            }
        }
        if self.padding_factor == 0 {
            return Err(CoreError::config(
                format!("{field}.padding_factor"),
                "must be at least 1 (1 = periodic, 2 = usual), got 0",
            ));
        }
        Ok(())
    }

    /// Side of the padded FFT window, in pixels.
    pub fn padded(&self) -> usize {
        self.n * self.padding_factor
    }

    /// Largest distance (m) for which the transfer function is sampled without aliasing at
    /// every frequency of the window: `P dx^2 / lambda * sqrt(1 - (lambda / 2 dx)^2)` with
    /// `P` the padded side (Matsushima and Shimobaba 2009), from requiring the local
    /// frequency of `H` along `fx` to stay below `1 / (2 df)` up to the Nyquist frequency.
    ///
    /// `None` for sub-wavelength pixels (`lambda >= 2 dx`): the window then reaches the
    /// evanescent cut-off `1/lambda`, where the local frequency of `H` diverges, so no
    /// distance is alias-free at every frequency and the check does not apply.
    pub fn max_alias_free_distance_m(&self) -> Option<f64> {
        let s = self.wavelength_m / (2.0 * self.dx_m);
        (s < 1.0).then(|| self.padded() as f64 * self.dx_m * self.dx_m / self.wavelength_m * (1.0 - s * s).sqrt())
    }
}

/// Angular-spectrum propagation over a fixed distance on a fixed grid (transfer function and
/// FFT plan precomputed).
#[derive(Clone, Debug)]
pub struct AngularSpectrum<F: FftReal> {
    n: usize,
    padded: usize,
    z_m: f64,
    fft: Fft2d<F>,
    transfer: Vec<Complex<F>>,
}

impl<F: FftReal> AngularSpectrum<F> {
    /// Prepares propagation over `z_m` metres (`z_m >= 0`) on `grid`.
    ///
    /// # Errors
    /// [`CoreError::Config`] for an invalid grid or a negative or non-finite distance.
    pub fn new(grid: &OpticalGrid, z_m: f64) -> Result<Self, CoreError> {
        grid.validate("grid")?;
        if !(z_m.is_finite() && z_m >= 0.0) {
            return Err(CoreError::config("z_m", format!("propagation distance must be finite and >= 0 m, got {z_m}")));
        }
        let p = grid.padded();
        let k = 2.0 * PI / grid.wavelength_m;
        let df = 1.0 / (p as f64 * grid.dx_m);
        let kf: Vec<f64> = (0..p).map(|i| 2.0 * PI * df * freq_index(i, p) as f64).collect();
        let mut transfer = Vec::with_capacity(p * p);
        for &ky in &kf {
            for &kx in &kf {
                let d = k * k - kx * kx - ky * ky;
                let h = if d >= 0.0 {
                    Complex::from_polar(1.0, z_m * d.sqrt())
                } else {
                    Complex::new((-z_m * (-d).sqrt()).exp(), 0.0)
                };
                transfer.push(Complex::new(F::c(h.re), F::c(h.im)));
            }
        }
        Ok(AngularSpectrum { n: grid.n, padded: p, z_m, fft: Fft2d::new(p, p), transfer })
    }

    /// The propagation distance, in metres.
    pub fn distance_m(&self) -> f64 {
        self.z_m
    }

    /// Length of the work buffer of [`AngularSpectrum::propagate_with_work`].
    pub fn work_len(&self) -> usize {
        self.padded * self.padded + self.fft.scratch_len()
    }

    /// A zeroed work buffer of length [`AngularSpectrum::work_len`].
    pub fn make_work(&self) -> Vec<Complex<F>> {
        vec![Complex::new(F::zero(), F::zero()); self.work_len()]
    }

    /// Propagates one row-major `n x n` field in place, without allocating.
    ///
    /// # Panics
    /// If `field.len() != n * n` or `work` is shorter than [`AngularSpectrum::work_len`].
    pub fn propagate_with_work(&self, field: &mut [Complex<F>], work: &mut [Complex<F>]) {
        let (n, p) = (self.n, self.padded);
        assert_eq!(field.len(), n * n, "field is not {n} x {n}");
        let (buf, scratch) = work.split_at_mut(p * p);
        let off = (p - n) / 2;
        if p == n {
            buf.copy_from_slice(field);
        } else {
            buf.fill(Complex::new(F::zero(), F::zero()));
            for (r, row) in field.chunks_exact(n).enumerate() {
                buf[(off + r) * p + off..(off + r) * p + off + n].copy_from_slice(row);
            }
        }
        self.fft.process_with_scratch(buf, scratch, Direction::Forward);
        for (z, h) in buf.iter_mut().zip(&self.transfer) {
            *z = *z * *h;
        }
        self.fft.process_with_scratch(buf, scratch, Direction::Inverse);
        for (r, row) in field.chunks_exact_mut(n).enumerate() {
            row.copy_from_slice(&buf[(off + r) * p + off..(off + r) * p + off + n]);
        }
    }

    /// Propagates one `n x n` field in place (allocates its work buffer).
    pub fn propagate(&self, field: &mut [Complex<F>]) {
        self.propagate_with_work(field, &mut self.make_work());
    }
}

/// The modulation planes of a [`FreeSpaceSystem`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PhaseMasks {
    /// `planes` fixed random masks, phases uniform in `[0, 2 pi)`, constant over blocks of
    /// `feature_px x feature_px` pixels (the mask's own pixel size), drawn from the stream
    /// `"freespace masks"` of the system seed.
    Random {
        /// Number of planes `D`.
        planes: usize,
        /// Mask feature size, in grid pixels (at least 1).
        feature_px: usize,
    },
    /// Given masks: one row-major `n x n` vector of phases (radians) per plane.
    Custom {
        /// Phases in radians, `D` vectors of `n * n` values.
        phases_rad: Vec<Vec<f64>>,
    },
}

/// Configuration of a [`FreeSpaceSystem`]. Plain data; checked by [`FreeSpaceConfig::validate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FreeSpaceConfig {
    /// Sampling of the SLM, the planes and the camera (all `n x n`, same pitch).
    pub grid: OpticalGrid,
    /// Shape `(h, w)` of the input image; `input_len = h * w`, row-major.
    pub input_shape: (usize, usize),
    /// Layout of the image on the SLM.
    pub placement: Placement,
    /// SLM encoding (phase `exp(i pi v)` by default).
    pub encoding: Encoding,
    /// The modulation planes between SLM and camera.
    pub masks: PhaseMasks,
    /// Distances in metres: SLM -> plane 1, plane 1 -> plane 2, ..., plane D -> camera
    /// (`D + 1` values, each `>= 0` and within the alias-free distance of the grid).
    pub distances_m: Vec<f64>,
    /// What the camera detects.
    pub detection: Detection,
    /// Camera output grid `(rows, cols)`: the `n x n` detected image is binned (summed) in
    /// blocks of `n/rows x n/cols` pixels; both must divide `n`.
    pub output_shape: (usize, usize),
    /// Seed of the random masks.
    pub seed: u64,
}

impl Default for FreeSpaceConfig {
    /// A 64 x 64 grid of 8 um pixels at 800 nm (padding x2), a 16 x 16 input upsampled x4 and
    /// phase-encoded, two random phase planes 2 mm apart (2 mm from SLM and camera), intensity
    /// detection binned 4 x 4 to 16 x 16 = 256 outputs.
    fn default() -> Self {
        FreeSpaceConfig {
            grid: OpticalGrid { n: 64, dx_m: 8e-6, wavelength_m: 800e-9, padding_factor: 2 },
            input_shape: (16, 16),
            placement: Placement::Upsample { factor: 4 },
            encoding: Encoding::Phase,
            masks: PhaseMasks::Random { planes: 2, feature_px: 1 },
            distances_m: vec![2e-3, 2e-3, 2e-3],
            detection: Detection::Intensity,
            output_shape: (16, 16),
            seed: 0,
        }
    }
}

impl FreeSpaceConfig {
    /// Number of modulation planes `D`.
    pub fn planes(&self) -> usize {
        match &self.masks {
            PhaseMasks::Random { planes, .. } => *planes,
            PhaseMasks::Custom { phases_rad } => phases_rad.len(),
        }
    }

    /// Checks every field, naming the first bad one, its value and the fix.
    ///
    /// # Errors
    /// [`CoreError::Config`] with the field path (e.g. `freespace.distances_m`).
    pub fn validate(&self) -> Result<(), CoreError> {
        self.grid.validate("freespace.grid")?;
        let n = self.grid.n;
        SlmMap::new(self.placement, self.input_shape, (n, n), "freespace")?;
        match &self.masks {
            PhaseMasks::Random { feature_px: 0, .. } => {
                return Err(CoreError::config("freespace.masks.random.feature_px", "must be at least 1 pixel, got 0"));
            }
            PhaseMasks::Custom { phases_rad } => {
                for (d, m) in phases_rad.iter().enumerate() {
                    if m.len() != n * n {
                        return Err(CoreError::config(
                            "freespace.masks.custom.phases_rad",
                            format!("plane {d} has {} phases, expected n * n = {}", m.len(), n * n),
                        ));
                    }
                    if let Some(v) = m.iter().find(|v| !v.is_finite()) {
                        return Err(CoreError::config(
                            "freespace.masks.custom.phases_rad",
                            format!("plane {d} has a non-finite phase {v}"),
                        ));
                    }
                }
            }
            PhaseMasks::Random { .. } => {}
        }
        let want = self.planes() + 1;
        if self.distances_m.len() != want {
            return Err(CoreError::config(
                "freespace.distances_m",
                format!(
                    "needs planes + 1 = {want} distances (SLM -> plane 1 ... plane D -> camera), \
                     got {}",
                    self.distances_m.len()
                ),
            ));
        }
        let z_max = self.grid.max_alias_free_distance_m().unwrap_or(f64::INFINITY);
        for (i, &z) in self.distances_m.iter().enumerate() {
            if !(z.is_finite() && z >= 0.0) {
                return Err(CoreError::config(
                    "freespace.distances_m",
                    format!("distance {i} must be finite and >= 0 m, got {z}"),
                ));
            }
            if z > z_max {
                return Err(CoreError::config(
                    "freespace.distances_m",
                    format!(
                        "distance {i} = {z} m exceeds the alias-free limit {z_max:.3e} m of the \
                         grid; raise grid.padding_factor or dx_m, or shorten the distance"
                    ),
                ));
            }
        }
        let (orows, ocols) = self.output_shape;
        if orows == 0 || ocols == 0 || !n.is_multiple_of(orows) || !n.is_multiple_of(ocols) {
            return Err(CoreError::config(
                "freespace.output_shape",
                format!("{orows} x {ocols} must divide the {n} x {n} camera into whole bins"),
            ));
        }
        Ok(())
    }
}

/// SLM -> (propagation, phase plane) x D -> propagation -> camera, with binning.
#[derive(Debug)]
pub struct FreeSpaceSystem<F: FftReal> {
    config: FreeSpaceConfig,
    slm: SlmMap,
    props: Vec<AngularSpectrum<F>>,
    masks: Vec<Vec<Complex<F>>>,
    work: Vec<Complex<F>>,
}

/// Rows per rayon job (fixed; rows are independent, so this only affects speed).
const ROWS_PER_JOB: usize = 8;

impl<F: FftReal> FreeSpaceSystem<F> {
    /// Builds the system: validates `config`, draws or loads the masks and precomputes the
    /// propagators.
    ///
    /// # Errors
    /// [`CoreError::Config`] from [`FreeSpaceConfig::validate`].
    pub fn new(config: FreeSpaceConfig) -> Result<Self, CoreError> {
        config.validate()?;
        let n = config.grid.n;
        let slm = SlmMap::new(config.placement, config.input_shape, (n, n), "freespace")?;
        let props =
            config.distances_m.iter().map(|&z| AngularSpectrum::new(&config.grid, z)).collect::<Result<Vec<_>, _>>()?;
        let phases: Vec<Vec<f64>> = match &config.masks {
            PhaseMasks::Custom { phases_rad } => phases_rad.clone(),
            PhaseMasks::Random { planes, feature_px } => {
                let mut rng = rng_for(config.seed, "freespace masks");
                let cells = n.div_ceil(*feature_px);
                (0..*planes)
                    .map(|_| {
                        let cell: Vec<f64> = (0..cells * cells).map(|_| 2.0 * PI * rng.random::<f64>()).collect();
                        (0..n * n).map(|p| cell[(p / n / feature_px) * cells + (p % n) / feature_px]).collect()
                    })
                    .collect()
            }
        };
        let masks = phases
            .iter()
            .map(|m| m.iter().map(|&phi| Complex::new(F::c(phi.cos()), F::c(phi.sin()))).collect())
            .collect();
        let work = props.first().map(|p| p.make_work()).unwrap_or_default();
        Ok(FreeSpaceSystem { config, slm, props, masks, work })
    }

    /// The configuration this system was built from.
    pub fn config(&self) -> &FreeSpaceConfig {
        &self.config
    }

    /// The complex camera field (row-major `n x n`) of one input vector, before detection.
    ///
    /// # Panics
    /// If `input.len() != input_len` or `work` is shorter than the propagators' work length.
    fn camera_field_row(&self, input: &[F], field: &mut [Complex<F>], work: &mut [Complex<F>]) {
        self.slm.encode(input, self.config.encoding, field);
        for (prop, mask) in self.props.iter().zip(&self.masks) {
            prop.propagate_with_work(field, work);
            for (e, m) in field.iter_mut().zip(mask) {
                *e = *e * *m;
            }
        }
        self.props.last().expect("D + 1 >= 1 propagators").propagate_with_work(field, work);
    }

    /// The complex camera fields before detection, one row-major `n x n` field per input row
    /// (`batch x n^2` complex values, field units of the SLM encoding).
    ///
    /// # Errors
    /// [`SystemError`] for a wrong input width or non-finite input.
    pub fn camera_field(&self, input: MatRef<'_, F>) -> Result<Vec<Complex<F>>, SystemError> {
        if input.cols() != self.slm.input_len() {
            return Err(SystemError::Shape {
                system: self.name_(),
                what: "input",
                expected: self.slm.input_len(),
                got: input.cols(),
            });
        }
        if let Some((row, col, value)) = input.find_non_finite() {
            return Err(SystemError::NonFinite { system: self.name_(), what: "input", row, col, value });
        }
        let n2 = self.config.grid.n * self.config.grid.n;
        let mut out = vec![Complex::new(F::zero(), F::zero()); input.rows() * n2];
        let mut work = self.props[0].make_work();
        for (r, field) in out.chunks_exact_mut(n2).enumerate() {
            self.camera_field_row(input.row(r), field, &mut work);
        }
        Ok(out)
    }

    fn name_(&self) -> String {
        let n = self.config.grid.n;
        let (h, w) = self.config.input_shape;
        let (oh, ow) = self.config.output_shape;
        format!("free space {n}x{n}, {} planes ({h}x{w} -> {oh}x{ow})", self.masks.len())
    }

    fn forward_row(
        &self,
        input: &[F],
        out: &mut [F],
        field: &mut [Complex<F>],
        work: &mut [Complex<F>],
        det: &mut [F],
    ) {
        let n = self.config.grid.n;
        self.camera_field_row(input, field, work);
        for (d, &e) in det.iter_mut().zip(field.iter()) {
            *d = self.config.detection.apply(e);
        }
        let (oh, ow) = self.config.output_shape;
        bin_sum(det, n, n, oh, ow, out);
    }
}

impl<F: FftReal> PhysicalSystem<F> for FreeSpaceSystem<F> {
    fn name(&self) -> String {
        self.name_()
    }

    fn input_len(&self) -> usize {
        self.slm.input_len()
    }

    fn output_len(&self) -> usize {
        self.config.output_shape.0 * self.config.output_shape.1
    }

    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        let out_len = PhysicalSystem::<F>::output_len(self);
        check_batch(&self.name_(), self.slm.input_len(), out_len, &input, &output)?;
        let n2 = self.config.grid.n * self.config.grid.n;
        let zero = Complex::new(F::zero(), F::zero());
        if input.rows() <= ROWS_PER_JOB {
            let mut work = std::mem::take(&mut self.work);
            let (mut field, mut det) = (vec![zero; n2], vec![F::zero(); n2]);
            for r in 0..input.rows() {
                self.forward_row(input.row(r), output.row_mut(r), &mut field, &mut work, &mut det);
            }
            self.work = work;
            return Ok(());
        }
        let this = &*self;
        output.into_row_chunks(ROWS_PER_JOB).into_par_iter().enumerate().for_each_init(
            || (vec![zero; n2], this.props[0].make_work(), vec![F::zero(); n2]),
            |(field, work, det), (c, mut out)| {
                for r in 0..out.rows() {
                    let row = c * ROWS_PER_JOB + r;
                    this.forward_row(input.row(row), out.row_mut(r), field, work, det);
                }
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;

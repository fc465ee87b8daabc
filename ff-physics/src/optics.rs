//! The multimode optical system of PhyLL: SLM -> multimode medium -> camera (docs/science.md).
//!
//! # Model
//! For every input row (a row-major `h x w` image, `input_len = h w`):
//! 1. **SLM.** The image is laid out on the `N x N` field by a [`Placement`] and encoded by an
//!    [`Encoding`] (amplitude `E = v` by default, or phase `E = exp(i pi v)`); see [`crate::slm`].
//! 2. **Input pupil.** 2-D FFT of the field (unnormalised, [`crate::fft`] conventions), centred
//!    (zero frequency at pixel `(N/2, N/2)` after `fftshift`); the `m_in` pixels within
//!    `input_pupil_radius_px` of the centre (`di^2 + dj^2 <= r^2`) are the input modes, in
//!    row-major order of the centred spectrum.
//! 3. **Medium.** The mode vector is multiplied by the seeded transmission matrix `T`
//!    (`m_out x m_in`, see [`MediumKind`]).
//! 4. **Output pupil.** The `m_out` output modes are scattered into the pixels of the output
//!    pupil (zero elsewhere), `ifftshift`, inverse 2-D FFT (scaled by `1/N^2`).
//! 5. **Camera.** [`Detection`] (amplitude `|E|` by default) then average [`Pooling`].
//!
//! The shifts are folded into precomputed pupil index maps (centred pixel `(i, j)` lives at
//! unshifted index `((i - N/2) mod N, (j - N/2) mod N)`), so no shift is done per query.
//!
//! With a unitary `T`, both pupils covering all `N^2` pixels and no detection, the camera field
//! carries exactly the input power (Parseval): the model is lossless, and every loss comes
//! from the pupils, as in a real multimode fibre or scattering medium.
//!
//! # Batching and determinism
//! A small batch (up to [`CHUNK_ROWS`] rows) is processed in one go: encode and FFT every row,
//! three real GEMMs for the medium product ([`Medium::apply`]), inverse FFT and detect every
//! row. A large batch goes in blocks of up to [`BLOCK_ROWS`] rows: the per-row stages run in
//! chunks of [`CHUNK_ROWS`] rows over rayon's threads, and the medium product of the whole
//! block is one set of GEMMs (large enough for the GEMM's own threads to reach its peak rate).
//! Each output row depends only on its own input row, and the GEMM's result for a row does not
//! depend on how many rows it is given, so the same seed gives the same bits whatever the
//! thread count or the batch split (tested).

mod adjoint;
mod medium;

pub use medium::{draw_transmission, perturb_transmission, Medium, MediumKind, ModeBatch};

use crate::camera::{Detection, Pooling};
use crate::fft::{Direction, Fft2d, FftReal};
use crate::imperfections::Perturbable;
use crate::slm::{Encoding, Placement, SlmMap};
use ff_core::rng::Rng;
use ff_core::{check_batch, CoreError, MatMut, MatRef, PhysicalSystem, SystemError};
use num_complex::Complex;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows per chunk of a batch (fixed, so results never depend on the thread count).
pub const CHUNK_ROWS: usize = 64;

/// Rows whose medium product is one GEMM in a large batch (bounds the batch buffers to
/// `BLOCK_ROWS x (N^2 complex + 6 m)` values while keeping the GEMM near its peak rate).
pub const BLOCK_ROWS: usize = 2048;

/// Configuration of an [`OpticsSystem`]. Plain data; checked by [`OpticsConfig::validate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpticsConfig {
    /// Side `N` of the square SLM and camera field, in pixels.
    pub field_size: usize,
    /// Shape `(h, w)` (rows, columns) of the input image; `input_len = h * w`, row-major.
    pub input_shape: (usize, usize),
    /// How the image is laid out on the `N x N` field.
    pub placement: Placement,
    /// How a pixel value becomes a complex field.
    pub encoding: Encoding,
    /// Radius of the circular input pupil, in frequency pixels of the centred `N x N`
    /// spectrum (a pixel is inside when `di^2 + dj^2 <= r^2`). Any radius above
    /// `N / sqrt(2)` passes all `N^2` modes.
    pub input_pupil_radius_px: f64,
    /// Radius of the circular output pupil, in frequency pixels (same convention).
    pub output_pupil_radius_px: f64,
    /// Ensemble of the transmission matrix.
    pub medium: MediumKind,
    /// What the camera detects.
    pub detection: Detection,
    /// Average pooling of the detected `N x N` image (output `output_side x output_side`).
    pub pooling: Pooling,
    /// Seed of the transmission matrix (stream `"optics medium"`).
    pub seed: u64,
}

impl Default for OpticsConfig {
    /// The feasibility setup: a 32 x 32 field showing the tiled 28 x 8 labelled image (an 8 x 8
    /// digit with label bands of 10 rows above and below), pupils of radius 9.66 px passing
    /// 293 modes each, a Haar-random unitary medium, amplitude detection and 2 x 2 pooling to
    /// 16 x 16 = 256 outputs.
    fn default() -> Self {
        OpticsConfig {
            field_size: 32,
            input_shape: (28, 8),
            placement: Placement::Tile,
            encoding: Encoding::Amplitude,
            input_pupil_radius_px: 9.66,
            output_pupil_radius_px: 9.66,
            medium: MediumKind::Unitary,
            detection: Detection::Amplitude,
            pooling: Pooling { kernel: 2, stride: 2, padding: 0 },
            seed: 0,
        }
    }
}

impl OpticsConfig {
    /// The configuration of a later block: the previous block's 16 x 16 output upsampled x2
    /// onto the 32 x 32 field; everything else as [`OpticsConfig::default`] with `seed`.
    pub fn second_block(seed: u64) -> Self {
        OpticsConfig {
            input_shape: (16, 16),
            placement: Placement::Upsample { factor: 2 },
            seed,
            ..OpticsConfig::default()
        }
    }

    /// Checks every field, naming the first bad one, its value and the fix.
    ///
    /// # Errors
    /// [`CoreError::Config`] with the field path (e.g. `optics.input_pupil_radius_px`).
    pub fn validate(&self) -> Result<(), CoreError> {
        let n = self.field_size;
        if n == 0 {
            return Err(CoreError::config("optics.field_size", "must be at least 1 pixel, got 0"));
        }
        SlmMap::new(self.placement, self.input_shape, (n, n), "optics")?;
        for (name, r) in [
            ("optics.input_pupil_radius_px", self.input_pupil_radius_px),
            ("optics.output_pupil_radius_px", self.output_pupil_radius_px),
        ] {
            if !(r.is_finite() && r >= 0.0) {
                return Err(CoreError::config(name, format!("must be a finite radius >= 0 pixels, got {r}")));
            }
        }
        let (m_in, m_out) = (self.input_modes(), self.output_modes());
        if self.medium == MediumKind::Unitary && m_in != m_out {
            return Err(CoreError::config(
                "optics.medium",
                format!(
                    "a unitary medium needs as many output as input modes, but the pupils pass \
                     {m_in} (radius {}) and {m_out} (radius {}); use equal radii or `gaussian`",
                    self.input_pupil_radius_px, self.output_pupil_radius_px
                ),
            ));
        }
        self.pooling.validate("optics.pooling", n)
    }

    /// Number of input modes `m_in` (pixels inside the input pupil).
    pub fn input_modes(&self) -> usize {
        pupil_mode_count(self.field_size, self.input_pupil_radius_px)
    }

    /// Number of output modes `m_out` (pixels inside the output pupil).
    pub fn output_modes(&self) -> usize {
        pupil_mode_count(self.field_size, self.output_pupil_radius_px)
    }

    /// Side of the pooled camera image (`output_len` is its square), or 0 if invalid.
    pub fn output_side(&self) -> usize {
        self.pooling.output_side(self.field_size).unwrap_or(0)
    }
}

/// Centred row-major pixel coordinates of a circular pupil of radius `r` (frequency pixels)
/// on an `n x n` centred spectrum, as unshifted FFT indices (row-major order of the centred
/// pixels).
pub fn pupil_indices(n: usize, r: f64) -> Vec<usize> {
    let c = (n / 2) as f64;
    let mut idx = Vec::new();
    for i in 0..n {
        for j in 0..n {
            let (di, dj) = (i as f64 - c, j as f64 - c);
            if di * di + dj * dj <= r * r {
                // Centred pixel i sits at unshifted index (i - n/2) mod n (inverse of fftshift).
                idx.push(((i + n - n / 2) % n) * n + (j + n - n / 2) % n);
            }
        }
    }
    idx
}

/// Number of pixels of an `n x n` grid within `r` pixels of the centre `(n/2, n/2)`.
pub fn pupil_mode_count(n: usize, r: f64) -> usize {
    pupil_indices(n, r).len()
}

/// Buffers of one chunk of rows, reused across queries (serial path) or per rayon job.
struct Workspace<F: FftReal> {
    fields: Vec<Complex<F>>,
    scratch: Vec<Complex<F>>,
    modes_in: ModeBatch<F>,
    modes_out: ModeBatch<F>,
    detected: Vec<F>,
}

impl<F: FftReal> Workspace<F> {
    fn new(sys: &OpticsSystem<F>) -> Self {
        let n2 = sys.n * sys.n;
        Workspace {
            fields: vec![Complex::new(F::zero(), F::zero()); CHUNK_ROWS * n2],
            scratch: sys.fft.make_scratch(),
            modes_in: ModeBatch::zeros(CHUNK_ROWS, sys.pupil_in.len()),
            modes_out: ModeBatch::zeros(CHUNK_ROWS, sys.pupil_out.len()),
            detected: vec![F::zero(); n2],
        }
    }
}

/// The SLM -> multimode medium -> camera system (see the module docs for the model).
pub struct OpticsSystem<F: FftReal> {
    config: OpticsConfig,
    n: usize,
    slm: SlmMap,
    fft: Fft2d<F>,
    pupil_in: Vec<usize>,
    pupil_out: Vec<usize>,
    /// The transmission matrix in `f64` (row-major `m_out x m_in`): the master copy that
    /// perturbations move, so `f32` and `f64` systems stay on the same medium.
    transmission: Vec<Complex<f64>>,
    medium: Medium<F>,
    out_side: usize,
    work: Workspace<F>,
    block: BlockWork<F>,
}

/// Buffers of the large-batch path ([`BLOCK_ROWS`] rows at most), reused across queries.
struct BlockWork<F: FftReal> {
    fields: Vec<Complex<F>>,
    modes_in: ModeBatch<F>,
    modes_out: ModeBatch<F>,
}

impl<F: FftReal> Default for BlockWork<F> {
    fn default() -> Self {
        BlockWork { fields: Vec::new(), modes_in: ModeBatch::zeros(0, 0), modes_out: ModeBatch::zeros(0, 0) }
    }
}

impl<F: FftReal> std::fmt::Debug for OpticsSystem<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpticsSystem").field("config", &self.config).finish()
    }
}

impl<F: FftReal> OpticsSystem<F> {
    /// Builds the system: validates `config`, draws the transmission matrix from its seed and
    /// plans the FFTs.
    ///
    /// # Errors
    /// [`CoreError::Config`] from [`OpticsConfig::validate`].
    pub fn new(config: OpticsConfig) -> Result<Self, CoreError> {
        config.validate()?;
        let n = config.field_size;
        let slm = SlmMap::new(config.placement, config.input_shape, (n, n), "optics")?;
        let pupil_in = pupil_indices(n, config.input_pupil_radius_px);
        let pupil_out = pupil_indices(n, config.output_pupil_radius_px);
        let t = draw_transmission(config.medium, pupil_out.len(), pupil_in.len(), config.seed);
        let medium = Medium::new(&t, pupil_out.len(), pupil_in.len());
        let out_side = config.output_side();
        let mut sys = OpticsSystem {
            n,
            slm,
            fft: Fft2d::new(n, n),
            pupil_in,
            pupil_out,
            transmission: t,
            medium,
            out_side,
            config,
            work: Workspace::empty(),
            block: BlockWork::default(),
        };
        sys.work = Workspace::new(&sys);
        Ok(sys)
    }

    /// The configuration this system was built from.
    pub fn config(&self) -> &OpticsConfig {
        &self.config
    }

    /// The transmission matrix (`m_out x m_in`).
    pub fn medium(&self) -> &Medium<F> {
        &self.medium
    }

    /// Unshifted FFT indices of the input-pupil modes, in mode order.
    pub fn input_pupil(&self) -> &[usize] {
        &self.pupil_in
    }

    /// Unshifted FFT indices of the output-pupil modes, in mode order.
    pub fn output_pupil(&self) -> &[usize] {
        &self.pupil_out
    }

    /// The complex camera-plane field before detection, for every input row: a row-major
    /// `batch x N^2` matrix of complex values (each row an `N x N` field, field units: the
    /// SLM field `E` propagated with the conventions of the module docs). Useful for exact
    /// adjoints and for checking power.
    ///
    /// # Errors
    /// [`SystemError`] for a wrong input width or non-finite input.
    pub fn camera_field(&self, input: MatRef<'_, F>) -> Result<Vec<Complex<F>>, SystemError> {
        let n2 = self.n * self.n;
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
        let mut out = vec![Complex::new(F::zero(), F::zero()); input.rows() * n2];
        let mut ws = Workspace::new(self);
        for (start, fields) in (0..input.rows()).step_by(CHUNK_ROWS).zip(out.chunks_mut(CHUNK_ROWS * n2)) {
            let rows = fields.len() / n2;
            self.propagate_chunk(input.slice_rows(start, start + rows), &mut ws);
            fields.copy_from_slice(&ws.fields[..rows * n2]);
        }
        Ok(out)
    }

    fn name_(&self) -> String {
        let (h, w) = self.config.input_shape;
        format!(
            "optics {n}x{n} ({h}x{w} -> {o}x{o}, {m} modes)",
            n = self.n,
            o = self.out_side,
            m = self.pupil_in.len()
        )
    }

    fn output_len_(&self) -> usize {
        self.out_side * self.out_side
    }

    /// SLM -> forward FFT -> input-pupil gather for the rows of `input`: fields into `fields`
    /// (`rows x N^2`), modes into the rows of `re`/`im` (`rows x m_in`, row-major).
    fn encode_gather(
        &self,
        input: MatRef<'_, F>,
        fields: &mut [Complex<F>],
        scratch: &mut [Complex<F>],
        re: &mut [F],
        im: &mut [F],
    ) {
        let n2 = self.n * self.n;
        let m_in = self.pupil_in.len();
        for (r, field) in fields.chunks_exact_mut(n2).enumerate() {
            self.slm.encode(input.row(r), self.config.encoding, field);
        }
        self.fft.process_with_scratch(fields, scratch, Direction::Forward);
        for ((field, re), im) in fields.chunks_exact(n2).zip(re.chunks_exact_mut(m_in)).zip(im.chunks_exact_mut(m_in)) {
            for ((a, b), &p) in re.iter_mut().zip(im.iter_mut()).zip(&self.pupil_in) {
                *a = field[p].re;
                *b = field[p].im;
            }
        }
    }

    /// Output-pupil scatter -> inverse FFT: the camera fields of the mode rows `re`/`im`
    /// (`rows x m_out`) into `fields` (`rows x N^2`).
    fn scatter_inverse(&self, re: &[F], im: &[F], fields: &mut [Complex<F>], scratch: &mut [Complex<F>]) {
        let n2 = self.n * self.n;
        let m_out = self.pupil_out.len();
        fields.fill(Complex::new(F::zero(), F::zero()));
        for ((field, re), im) in fields.chunks_exact_mut(n2).zip(re.chunks_exact(m_out)).zip(im.chunks_exact(m_out)) {
            for ((&a, &b), &p) in re.iter().zip(im).zip(&self.pupil_out) {
                field[p] = Complex::new(a, b);
            }
        }
        self.fft.process_with_scratch(fields, scratch, Direction::Inverse);
    }

    /// Detection and pooling of camera fields (`rows x N^2`) into the output rows.
    fn detect_pool(&self, fields: &[Complex<F>], detected: &mut [F], output: &mut MatMut<'_, F>) {
        let n2 = self.n * self.n;
        let det = self.config.detection;
        for (r, field) in fields.chunks_exact(n2).enumerate() {
            for (d, &e) in detected.iter_mut().zip(field) {
                *d = det.apply(e);
            }
            self.config.pooling.apply(detected, self.n, self.n, output.row_mut(r));
        }
    }

    /// SLM -> pupil -> medium -> pupil -> inverse FFT for up to [`CHUNK_ROWS`] rows; leaves the
    /// camera fields in `ws.fields[..rows * N^2]`.
    fn propagate_chunk(&self, input: MatRef<'_, F>, ws: &mut Workspace<F>) {
        let rows = input.rows();
        let n2 = self.n * self.n;
        ws.modes_in.resize(rows, self.pupil_in.len());
        let fields = &mut ws.fields[..rows * n2];
        self.encode_gather(input, fields, &mut ws.scratch, ws.modes_in.re.data_mut(), ws.modes_in.im.data_mut());
        self.medium.apply(&mut ws.modes_in, &mut ws.modes_out);
        self.scatter_inverse(ws.modes_out.re.data(), ws.modes_out.im.data(), fields, &mut ws.scratch);
    }

    /// Full forward of one chunk into its output rows.
    fn forward_chunk(&self, input: MatRef<'_, F>, output: &mut MatMut<'_, F>, ws: &mut Workspace<F>) {
        self.propagate_chunk(input, ws);
        let n2 = self.n * self.n;
        self.detect_pool(&ws.fields[..input.rows() * n2], &mut ws.detected, output);
    }

    /// Forward of up to [`BLOCK_ROWS`] rows: encoding, FFTs, detection and pooling chunk by
    /// chunk over the rayon pool, and the medium as one product over all the rows (a GEMM
    /// large enough to run near the machine's GEMM rate, with the GEMM's own threads).
    fn forward_block(&mut self, input: MatRef<'_, F>, output: MatMut<'_, F>) {
        let rows = input.rows();
        let n2 = self.n * self.n;
        let (m_in, m_out) = (self.pupil_in.len(), self.pupil_out.len());
        let mut b = std::mem::take(&mut self.block);
        b.fields.resize(rows * n2, Complex::new(F::zero(), F::zero()));
        b.modes_in.resize(rows, m_in);
        let this = &*self;
        b.fields
            .par_chunks_mut(CHUNK_ROWS * n2)
            .zip(b.modes_in.re.data_mut().par_chunks_mut(CHUNK_ROWS * m_in))
            .zip(b.modes_in.im.data_mut().par_chunks_mut(CHUNK_ROWS * m_in))
            .enumerate()
            .for_each_init(
                || this.fft.make_scratch(),
                |scratch, (c, ((fields, re), im))| {
                    let start = c * CHUNK_ROWS;
                    let inp = input.slice_rows(start, start + fields.len() / n2);
                    this.encode_gather(inp, fields, scratch, re, im);
                },
            );
        self.medium.apply(&mut b.modes_in, &mut b.modes_out);
        let this = &*self;
        b.fields
            .par_chunks_mut(CHUNK_ROWS * n2)
            .zip(b.modes_out.re.data().par_chunks(CHUNK_ROWS * m_out))
            .zip(b.modes_out.im.data().par_chunks(CHUNK_ROWS * m_out))
            .zip(output.into_row_chunks(CHUNK_ROWS))
            .for_each_init(
                || (this.fft.make_scratch(), vec![F::zero(); n2]),
                |(scratch, detected), (((fields, re), im), mut out)| {
                    this.scatter_inverse(re, im, fields, scratch);
                    this.detect_pool(fields, detected, &mut out);
                },
            );
        self.block = b;
    }
}

impl<F: FftReal> PhysicalSystem<F> for OpticsSystem<F> {
    fn name(&self) -> String {
        self.name_()
    }

    fn input_len(&self) -> usize {
        self.slm.input_len()
    }

    fn output_len(&self) -> usize {
        self.output_len_()
    }

    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        check_batch(&self.name_(), self.slm.input_len(), self.output_len_(), &input, &output)?;
        let rows = input.rows();
        if rows <= CHUNK_ROWS {
            // Serial path with the cached workspace: no allocation per query.
            let mut ws = std::mem::replace(&mut self.work, Workspace::empty());
            self.forward_chunk(input, &mut output, &mut ws);
            self.work = ws;
            return Ok(());
        }
        for (b, out) in output.into_row_chunks(BLOCK_ROWS).into_iter().enumerate() {
            let start = b * BLOCK_ROWS;
            self.forward_block(input.slice_rows(start, start + out.rows()), out);
        }
        Ok(())
    }
}

impl<F: FftReal> Perturbable for OpticsSystem<F> {
    /// Changes the multimode medium, nothing else (SLM, pupils, camera and pooling stay put):
    /// the transmission matrix is mixed with a fresh independent draw of its ensemble,
    /// `T <- sqrt(1 - s^2) T + s T_new` (projected back onto the unitaries for a unitary
    /// medium), see [`perturb_transmission`]. `strength` is that dimensionless amplitude
    /// fraction `s` (`0` leaves the outputs bit-identical, `1` or more draws an independent
    /// medium). The medium keeps its statistics (Haar stays Haar, so lossless stays lossless;
    /// Gaussian stays Gaussian with `E|T_ij|^2 = 1/m_in`). Perturbations accumulate, and the
    /// same generator state gives the same new medium; systems with the same pupils and medium
    /// (e.g. every block of an optical network) move identically under the same stream.
    fn perturb(&mut self, strength: f64, rng: &mut Rng) {
        let (m_out, m_in) = (self.pupil_out.len(), self.pupil_in.len());
        perturb_transmission(self.config.medium, &mut self.transmission, m_out, m_in, strength, rng);
        if strength > 0.0 {
            self.medium = Medium::new(&self.transmission, m_out, m_in);
        }
    }
}

impl<F: FftReal> Workspace<F> {
    fn empty() -> Self {
        Workspace {
            fields: Vec::new(),
            scratch: Vec::new(),
            modes_in: ModeBatch::zeros(0, 0),
            modes_out: ModeBatch::zeros(0, 0),
            detected: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;

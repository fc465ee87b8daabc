//! The camera: square-law or amplitude detection of a complex field, then average pooling
//! or pixel binning down to the output grid.

use crate::fft::FftReal;
use ff_core::CoreError;
use num_complex::Complex;
use serde::{Deserialize, Serialize};

/// What the camera reads from a complex field `E` (field units, arbitrary but consistent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detection {
    /// The amplitude `|E|` (what PhyLL feeds forward; the modulus is the nonlinearity).
    Amplitude,
    /// The intensity `|E|^2` (what a camera pixel physically integrates).
    Intensity,
}

impl Detection {
    /// Detects one field value.
    #[inline]
    pub fn apply<F: FftReal>(self, e: Complex<F>) -> F {
        match self {
            // sqrt(re^2 + im^2) rather than `norm` (hypot): several times faster, and field
            // values are far from the overflow range.
            Detection::Amplitude => e.norm_sqr().sqrt(),
            Detection::Intensity => e.norm_sqr(),
        }
    }
}

/// 2-D average pooling with a square `kernel x kernel` window, `stride` and symmetric zero
/// `padding`, with the padded pixels counted in the divisor (always `kernel^2`): PyTorch's
/// `AvgPool2d(kernel, stride, padding)` defaults (`count_include_pad = True`,
/// `ceil_mode = False`). Output side: `floor((n + 2 padding - kernel) / stride) + 1`.
///
/// `kernel = stride = 1, padding = 0` is the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pooling {
    /// Window side, in pixels (at least 1).
    pub kernel: usize,
    /// Step between windows, in pixels (at least 1).
    pub stride: usize,
    /// Zeros added on every side, in pixels (at most `kernel / 2`, as in PyTorch).
    pub padding: usize,
}

impl Pooling {
    /// No pooling (the identity).
    pub const NONE: Pooling = Pooling { kernel: 1, stride: 1, padding: 0 };

    /// Output side for an input side `n`, or `None` if the window does not fit.
    pub fn output_side(&self, n: usize) -> Option<usize> {
        let padded = n + 2 * self.padding;
        if self.kernel == 0 || self.stride == 0 || padded < self.kernel {
            return None;
        }
        Some((padded - self.kernel) / self.stride + 1)
    }

    /// Checks the parameters against an `n x n` input; `field` names the configuration field.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the offending parameter, its value and the valid range.
    pub fn validate(&self, field: &str, n: usize) -> Result<(), CoreError> {
        if self.kernel == 0 {
            return Err(CoreError::config(format!("{field}.kernel"), "must be at least 1, got 0"));
        }
        if self.stride == 0 {
            return Err(CoreError::config(format!("{field}.stride"), "must be at least 1, got 0"));
        }
        if self.padding > self.kernel / 2 {
            return Err(CoreError::config(
                format!("{field}.padding"),
                format!("must be at most kernel / 2 = {}, got {}", self.kernel / 2, self.padding),
            ));
        }
        if self.output_side(n).is_none() {
            return Err(CoreError::config(
                format!("{field}.kernel"),
                format!(
                    "window {} does not fit the {n} x {n} camera with padding {}; use a kernel \
                     of at most {}",
                    self.kernel,
                    self.padding,
                    n + 2 * self.padding
                ),
            ));
        }
        Ok(())
    }

    /// Pools a row-major `rows x cols` image into `dst`
    /// (`output_side(rows) x output_side(cols)`).
    ///
    /// # Panics
    /// If the window does not fit or the buffer lengths disagree (caller bugs: configurations
    /// are validated first).
    pub fn apply<F: FftReal>(&self, src: &[F], rows: usize, cols: usize, dst: &mut [F]) {
        assert_eq!(src.len(), rows * cols, "pooling input length");
        let (orows, ocols) = (
            self.output_side(rows).expect("pooling window fits"),
            self.output_side(cols).expect("pooling window fits"),
        );
        assert_eq!(dst.len(), orows * ocols, "pooling output length");
        if *self == Pooling::NONE {
            dst.copy_from_slice(src);
            return;
        }
        let inv = F::one() / F::c((self.kernel * self.kernel) as f64);
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        // Window of output index o along an axis of length n, clipped to the real pixels
        // (the padded ones are zeros and only count in the divisor).
        let range = |o: usize, n: usize| {
            let start = (o * s).saturating_sub(p);
            let end = (o * s + k).saturating_sub(p).min(n);
            start..end
        };
        for (oi, drow) in dst.chunks_exact_mut(ocols).enumerate() {
            let ri = range(oi, rows);
            for (oj, d) in drow.iter_mut().enumerate() {
                let rj = range(oj, cols);
                let mut acc = F::zero();
                for r in ri.clone() {
                    for &v in &src[r * cols + rj.start..r * cols + rj.end] {
                        acc += v;
                    }
                }
                *d = acc * inv;
            }
        }
    }
}

/// Pixel binning: sums non-overlapping `(rows/out_rows) x (cols/out_cols)` blocks of a
/// row-major `rows x cols` image into `dst` (`out_rows x out_cols`), as a binned camera
/// adds the charge of its pixels.
///
/// # Panics
/// If the output grid does not divide the input grid or the buffer lengths disagree.
pub fn bin_sum<F: FftReal>(src: &[F], rows: usize, cols: usize, out_rows: usize, out_cols: usize, dst: &mut [F]) {
    assert!(out_rows > 0 && out_cols > 0 && rows.is_multiple_of(out_rows) && cols.is_multiple_of(out_cols));
    assert_eq!(src.len(), rows * cols, "binning input length");
    assert_eq!(dst.len(), out_rows * out_cols, "binning output length");
    let (br, bc) = (rows / out_rows, cols / out_cols);
    dst.fill(F::zero());
    for (r, row) in src.chunks_exact(cols).enumerate() {
        let drow = &mut dst[(r / br) * out_cols..(r / br + 1) * out_cols];
        for (d, block) in drow.iter_mut().zip(row.chunks_exact(bc)) {
            for &v in block {
                *d += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sides_match_pytorch() {
        let phyll = Pooling { kernel: 3, stride: 2, padding: 1 };
        assert_eq!(phyll.output_side(51), Some(26));
        let two = Pooling { kernel: 2, stride: 2, padding: 0 };
        assert_eq!(two.output_side(32), Some(16));
        assert_eq!(Pooling::NONE.output_side(7), Some(7));
        assert_eq!(two.output_side(1), None);
    }

    #[test]
    fn pooling_with_padding_counts_padded_pixels_in_the_divisor() {
        // 3 x 3 image 1..9, kernel 3, stride 2, padding 1 -> 2 x 2.
        // Window (0,0) covers image rows 0..2, cols 0..2: (1+2+4+5)/9 = 12/9.
        // Window (0,1) covers rows 0..2, cols 1..3: (2+3+5+6)/9 = 16/9.
        // Window (1,0): rows 1..3, cols 0..2: (4+5+7+8)/9 = 24/9; window (1,1): 28/9.
        let src: Vec<f64> = (1..=9).map(f64::from).collect();
        let pool = Pooling { kernel: 3, stride: 2, padding: 1 };
        let mut dst = vec![0.0; 4];
        pool.apply(&src, 3, 3, &mut dst);
        let want = [12.0 / 9.0, 16.0 / 9.0, 24.0 / 9.0, 28.0 / 9.0];
        for (g, w) in dst.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{dst:?}");
        }
    }

    #[test]
    fn pooling_2x2_averages_blocks_of_a_rectangle() {
        // 2 x 4 image -> 1 x 2: (1+2+5+6)/4, (3+4+7+8)/4.
        let src: Vec<f32> = (1..=8).map(|v| v as f32).collect();
        let pool = Pooling { kernel: 2, stride: 2, padding: 0 };
        let mut dst = vec![0.0; 2];
        pool.apply(&src, 2, 4, &mut dst);
        assert_eq!(dst, vec![3.5, 5.5]);
    }

    #[test]
    fn pooling_validation_names_the_parameter() {
        let bad = Pooling { kernel: 2, stride: 2, padding: 2 };
        let e = bad.validate("optics.pooling", 32).unwrap_err().to_string();
        assert!(e.contains("optics.pooling.padding") && e.contains("got 2"), "{e}");
        let big = Pooling { kernel: 9, stride: 1, padding: 0 };
        assert!(big.validate("p", 8).unwrap_err().to_string().contains("p.kernel"));
        assert!(Pooling { stride: 0, ..big }.validate("p", 32).is_err());
    }

    #[test]
    fn binning_sums_blocks_and_detection_squares() {
        let src: Vec<f64> = (1..=8).map(f64::from).collect();
        let mut dst = vec![0.0; 2];
        bin_sum(&src, 2, 4, 1, 2, &mut dst);
        assert_eq!(dst, vec![14.0, 22.0]);
        let e = Complex::new(3.0f64, 4.0);
        assert_eq!(Detection::Amplitude.apply(e), 5.0);
        assert_eq!(Detection::Intensity.apply(e), 25.0);
    }
}

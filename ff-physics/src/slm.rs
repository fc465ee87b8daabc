//! The spatial light modulator: how a real input vector becomes a complex field on the grid.
//!
//! An input vector of length `h * w` is read as a row-major `h x w` image, laid out on the
//! `rows x cols` modulator by a [`Placement`] (giving every pixel either an image value or
//! "padding", value 0), then every pixel is turned into a complex field by an [`Encoding`].

use crate::fft::FftReal;
use ff_core::CoreError;
use num_complex::Complex;
use serde::{Deserialize, Serialize};

/// How the `h x w` input image is laid out on the modulator grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Placement {
    /// Repeat the image periodically in both directions, starting at pixel `(0, 0)`, and crop
    /// to the grid: pixel `(i, j)` shows image pixel `(i mod h, j mod w)`. This is how the
    /// public PhyLL code fills its field with the labelled image.
    Tile,
    /// Nearest-neighbour upsampling by an integer factor (each image pixel becomes a
    /// `factor x factor` block), anchored at pixel `(0, 0)`; rows/columns beyond the grid are
    /// cropped and a missing margin at the bottom/right is zero-padded. Used for later blocks
    /// (a 16 x 16 output upsampled x2 onto 32 x 32).
    Upsample {
        /// Upsampling factor (at least 1).
        factor: usize,
    },
    /// The image once, centred (top-left corner at `((rows - h)/2, (cols - w)/2)`), padded
    /// with zeros. Requires `h <= rows` and `w <= cols`.
    Center,
}

/// How a modulator pixel value `v` (an input value, or 0 for padding) becomes a complex field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Amplitude modulation: `E = v` (real, may be negative: a sign is a pi phase flip).
    Amplitude,
    /// Phase-only modulation: `E = exp(i pi v)`, so inputs in `[0, 1]` span phases `[0, pi]`
    /// and `[0, 2]` a full turn. Padding pixels (`v = 0`) carry `E = 1`: a phase-only
    /// modulator is uniformly illuminated and cannot block light.
    Phase,
}

/// Sentinel of [`SlmMap`] for a padding pixel.
const PAD: u32 = u32::MAX;

/// A precomputed placement: for every modulator pixel, the input index it shows (or padding).
#[derive(Clone, Debug)]
pub struct SlmMap {
    rows: usize,
    cols: usize,
    input_len: usize,
    src: Vec<u32>,
}

impl SlmMap {
    /// Lays an `image.0 x image.1` (rows x cols) image on a `grid.0 x grid.1` modulator.
    /// `field` names the configuration field in error messages.
    ///
    /// # Errors
    /// [`CoreError::Config`] for an empty image or grid, an upsampling factor of 0, or an
    /// image larger than the grid with [`Placement::Center`].
    pub fn new(
        placement: Placement,
        image: (usize, usize),
        grid: (usize, usize),
        field: &str,
    ) -> Result<Self, CoreError> {
        let ((h, w), (rows, cols)) = (image, grid);
        if h == 0 || w == 0 {
            return Err(CoreError::config(
                format!("{field}.input_shape"),
                format!("image shape must be positive, got {h} x {w}"),
            ));
        }
        if rows == 0 || cols == 0 {
            return Err(CoreError::config(
                format!("{field}.grid"),
                format!("grid must be positive, got {rows} x {cols}"),
            ));
        }
        if h * w >= PAD as usize {
            return Err(CoreError::config(
                format!("{field}.input_shape"),
                format!("image of {h} x {w} pixels is too large"),
            ));
        }
        let idx = |r: usize, c: usize| (r * w + c) as u32;
        let src: Vec<u32> = match placement {
            Placement::Tile => (0..rows * cols).map(|p| idx((p / cols) % h, (p % cols) % w)).collect(),
            Placement::Upsample { factor } => {
                if factor == 0 {
                    return Err(CoreError::config(
                        format!("{field}.placement.upsample.factor"),
                        "upsampling factor must be at least 1, got 0",
                    ));
                }
                (0..rows * cols)
                    .map(|p| {
                        let (r, c) = ((p / cols) / factor, (p % cols) / factor);
                        if r < h && c < w {
                            idx(r, c)
                        } else {
                            PAD
                        }
                    })
                    .collect()
            }
            Placement::Center => {
                if h > rows || w > cols {
                    return Err(CoreError::config(
                        format!("{field}.placement"),
                        format!(
                            "center placement needs the {h} x {w} image to fit the {rows} x {cols} \
                             grid; use tile or upsample, or a larger grid"
                        ),
                    ));
                }
                let (r0, c0) = ((rows - h) / 2, (cols - w) / 2);
                (0..rows * cols)
                    .map(|p| {
                        let (r, c) = (p / cols, p % cols);
                        if (r0..r0 + h).contains(&r) && (c0..c0 + w).contains(&c) {
                            idx(r - r0, c - c0)
                        } else {
                            PAD
                        }
                    })
                    .collect()
            }
        };
        Ok(SlmMap { rows, cols, input_len: h * w, src })
    }

    /// Number of input values (`h * w`).
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Number of modulator pixels (`rows * cols`).
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Always `false` (the grid is never empty); present for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The input index shown by modulator pixel `p` (row-major), or `None` for padding.
    pub fn source(&self, p: usize) -> Option<usize> {
        let s = self.src[p];
        (s != PAD).then_some(s as usize)
    }

    /// Writes the encoded field of one input vector into `out` (row-major `rows x cols`).
    ///
    /// # Panics
    /// If `input.len() != input_len()` or `out.len() != len()` (caller bugs: batches are
    /// shape-checked at the system boundary).
    pub fn encode<F: FftReal>(&self, input: &[F], encoding: Encoding, out: &mut [Complex<F>]) {
        assert_eq!(input.len(), self.input_len, "SLM input length");
        assert_eq!(out.len(), self.src.len(), "SLM field length");
        let value = |s: u32| {
            if s == PAD {
                F::zero()
            } else {
                input[s as usize]
            }
        };
        match encoding {
            Encoding::Amplitude => {
                for (o, &s) in out.iter_mut().zip(&self.src) {
                    *o = Complex::new(value(s), F::zero());
                }
            }
            Encoding::Phase => {
                let pi = F::c(std::f64::consts::PI);
                for (o, &s) in out.iter_mut().zip(&self.src) {
                    *o = Complex::from_polar(F::one(), pi * value(s));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(p: Placement, image: (usize, usize), grid: (usize, usize)) -> Vec<Option<usize>> {
        let m = SlmMap::new(p, image, grid, "test").unwrap();
        (0..m.len()).map(|i| m.source(i)).collect()
    }

    #[test]
    fn tile_repeats_and_crops() {
        // A 2 x 3 image on a 3 x 4 grid: rows 0,1,0 and columns 0,1,2,0.
        let got = layout(Placement::Tile, (2, 3), (3, 4));
        let want = [0, 1, 2, 0, 3, 4, 5, 3, 0, 1, 2, 0].map(Some);
        assert_eq!(got, want);
    }

    #[test]
    fn upsample_repeats_blocks_then_crops_or_pads() {
        // 2 x 2 image x2 on a 3 x 5 grid: crop the 4th row, pad the 5th column.
        let got = layout(Placement::Upsample { factor: 2 }, (2, 2), (3, 5));
        let (a, b, c, d) = (Some(0), Some(1), Some(2), Some(3));
        let want = vec![a, a, b, b, None, a, a, b, b, None, c, c, d, d, None];
        assert_eq!(got, want);
    }

    #[test]
    fn center_pads_with_zeros_around_the_image() {
        let got = layout(Placement::Center, (1, 2), (3, 4));
        let mut want = vec![None; 12];
        want[5] = Some(0);
        want[6] = Some(1);
        assert_eq!(got, want);
        let err = SlmMap::new(Placement::Center, (5, 2), (3, 4), "optics").unwrap_err();
        assert!(err.to_string().contains("5 x 2"), "{err}");
    }

    #[test]
    fn bad_shapes_are_config_errors() {
        assert!(SlmMap::new(Placement::Tile, (0, 2), (3, 4), "x").is_err());
        let e = SlmMap::new(Placement::Upsample { factor: 0 }, (2, 2), (3, 4), "x").unwrap_err();
        assert!(e.to_string().contains("factor"), "{e}");
    }

    #[test]
    fn encodings_map_values_to_fields() {
        let m = SlmMap::new(Placement::Center, (1, 1), (1, 3), "t").unwrap();
        let mut out = vec![Complex::new(9.0f64, 9.0); 3];
        m.encode(&[0.5], Encoding::Amplitude, &mut out);
        assert_eq!(out, vec![Complex::new(0.0, 0.0), Complex::new(0.5, 0.0), Complex::new(0.0, 0.0)]);
        m.encode(&[0.5], Encoding::Phase, &mut out);
        // exp(i pi/2) = i in the image pixel, exp(0) = 1 on the lit padding.
        assert!((out[1] - Complex::new(0.0, 1.0)).norm() < 1e-15);
        assert!((out[0] - Complex::new(1.0, 0.0)).norm() < 1e-15);
    }
}

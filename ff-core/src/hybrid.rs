//! Hybrid negatives for unsupervised forward-forward (Hinton 2022, section 3.2).
//!
//! Without labels, a negative sample must look locally like real data but globally wrong.
//! Hinton's recipe mixes two real samples through a mask with large regions of ones and zeros:
//! 1. draw a mask of independent random bits, each 1 with probability 0.5;
//! 2. blur it `blur_passes` times (default [`DEFAULT_BLUR_PASSES`] = 6) with the filter
//!    `[1/4, 1/2, 1/4]`, horizontally then vertically for images, along the vector for vectors;
//! 3. threshold at 0.5: a pixel is 1 where the blurred value is above 0.5, 0 where it is below;
//! 4. hybrid `= mask * a + (1 - mask) * b`, where `a` is a sample of the batch and `b` a
//!    uniformly random *other* sample of the same batch.
//!
//! ## Conventions
//! - Images are `height x width`, row-major (pixel `(r, c)` is entry `r * width + c`), one
//!   sample per row of a [`Matrix`]; vectors are blurred along their length.
//! - Boundary: edge replication (clamp), `m[-1] = m[0]` and `m[len] = m[len - 1]`. Every
//!   blurred value stays a convex combination of the bits, so the expected mask value is 0.5 at
//!   every pixel, edges included (zero padding would bias the edges towards the second parent).
//! - Ties: the blur is computed in `f64`, where it is exact (the weights are powers of two; each
//!   pass adds 2 bits, so images stay exact up to 13 passes per direction and vectors up to 26),
//!   so a blurred value can be exactly 0.5; such a pixel keeps its own initial bit. With that
//!   rule, complementing every bit complements the mask, so the mask is 1 with probability
//!   exactly 0.5 at every pixel.
//! - Randomness: per sample, first the partner index, then the mask bits (row-major, 64 per
//!   64-bit word of the stream), all from the caller's generator; same generator state, same
//!   bits.

use crate::error::{CoreError, Result};
use crate::matrix::{MatRef, Matrix};
use crate::real::Real;
use crate::rng::Rng;
use rand::{Rng as _, RngCore as _};
use serde::{Deserialize, Serialize};

/// Blur passes of Hinton's recipe.
pub const DEFAULT_BLUR_PASSES: usize = 6;

/// The shape a mask is drawn over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MaskShape {
    /// An image, `height x width` pixels, row-major; blurred horizontally and vertically.
    Image {
        /// Pixel rows.
        height: usize,
        /// Pixel columns.
        width: usize,
    },
    /// A plain vector of `len` entries; blurred along its length.
    Vector {
        /// Number of entries.
        len: usize,
    },
}

impl MaskShape {
    /// Number of entries of a mask (and of a sample).
    pub fn len(&self) -> usize {
        match *self {
            MaskShape::Image { height, width } => height * width,
            MaskShape::Vector { len } => len,
        }
    }

    /// `true` for an empty shape (rejected by [`HybridNegatives::validate`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A seeded generator of hybrid negatives (see the module documentation for the recipe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HybridNegatives {
    /// The shape of one sample.
    pub shape: MaskShape,
    /// Blur passes per direction (Hinton: 6). 0 gives a mask of independent random bits.
    pub blur_passes: usize,
}

/// A batch of hybrid negatives with their parents.
#[derive(Clone, Debug, PartialEq)]
pub struct Hybrids<F> {
    /// The hybrids, `n x len`: row `i` mixes sample `i` (where the mask is 1) with sample
    /// `partners[i]` (where it is 0).
    pub x: Matrix<F>,
    /// The second parent of each hybrid, never `i` itself.
    pub partners: Vec<usize>,
}

impl HybridNegatives {
    /// Hinton's recipe ([`DEFAULT_BLUR_PASSES`] passes) for `height x width` images.
    pub fn image(height: usize, width: usize) -> Self {
        HybridNegatives { shape: MaskShape::Image { height, width }, blur_passes: DEFAULT_BLUR_PASSES }
    }

    /// Hinton's recipe ([`DEFAULT_BLUR_PASSES`] passes) for vectors of `len` entries.
    pub fn vector(len: usize) -> Self {
        HybridNegatives { shape: MaskShape::Vector { len }, blur_passes: DEFAULT_BLUR_PASSES }
    }

    /// The same recipe with `passes` blur passes.
    pub fn with_blur_passes(self, passes: usize) -> Self {
        HybridNegatives { blur_passes: passes, ..self }
    }

    /// Checks the shape.
    ///
    /// # Errors
    /// [`CoreError::Config`] for an empty shape.
    pub fn validate(&self) -> Result<()> {
        if self.shape.is_empty() {
            return Err(CoreError::config(
                "hybrid negatives",
                format!("the mask shape {:?} has no entries; samples need at least one value", self.shape),
            ));
        }
        Ok(())
    }

    /// One mask (`true` = take the first parent), `shape.len()` entries, row-major for images.
    pub fn mask(&self, rng: &mut Rng) -> Vec<bool> {
        // Bit p is bit (p mod 64) of the (p / 64)-th 64-bit word: fair and independent bits,
        // straight from the ChaCha8 stream (no `rand` distribution whose algorithm could change).
        let len = self.shape.len();
        let mut bits = Vec::with_capacity(len);
        while bits.len() < len {
            let word = rng.next_u64();
            let take = (len - bits.len()).min(64);
            bits.extend((0..take).map(|b| (word >> b) & 1 == 1));
        }
        let mut m: Vec<f64> = bits.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
        let mut scratch = Vec::new();
        match self.shape {
            MaskShape::Image { height, width } => {
                for _ in 0..self.blur_passes {
                    for r in 0..height {
                        blur_line(&mut m[r * width..(r + 1) * width], &mut scratch);
                    }
                }
                let mut col = vec![0.0; height];
                for _ in 0..self.blur_passes {
                    for c in 0..width {
                        col.iter_mut().enumerate().for_each(|(r, v)| *v = m[r * width + c]);
                        blur_line(&mut col, &mut scratch);
                        col.iter().enumerate().for_each(|(r, &v)| m[r * width + c] = v);
                    }
                }
            }
            MaskShape::Vector { .. } => {
                for _ in 0..self.blur_passes {
                    blur_line(&mut m, &mut scratch);
                }
            }
        }
        m.iter().zip(&bits).map(|(&v, &b)| if v == 0.5 { b } else { v > 0.5 }).collect()
    }

    /// Hybrids of the samples of a batch `x` (`n x shape.len()`): row `i` takes sample `i`
    /// where its mask is 1 and a uniformly random other sample `partners[i] != i` where it
    /// is 0. A fresh mask is drawn for every row.
    ///
    /// # Errors
    /// [`CoreError::Shape`] when the rows do not have `shape.len()` entries;
    /// [`CoreError::Config`] for fewer than 2 samples (two different parents are needed) or
    /// an empty shape.
    pub fn generate<F: Real>(&self, x: MatRef<'_, F>, rng: &mut Rng) -> Result<Hybrids<F>> {
        self.validate()?;
        let (n, d) = (x.rows(), x.cols());
        if d != self.shape.len() {
            return Err(CoreError::Shape {
                context: "hybrid negatives".into(),
                expected: format!("{} values per sample ({:?})", self.shape.len(), self.shape),
                got: format!("{d}"),
            });
        }
        if n < 2 {
            return Err(CoreError::config(
                "batch_size",
                format!("hybrid negatives mix two different samples of a batch, got a batch of {n}; use batches of 2 or more"),
            ));
        }
        let mut out = Matrix::zeros(n, d);
        let mut partners = Vec::with_capacity(n);
        for i in 0..n {
            // Uniform over the n - 1 other samples.
            let j = rng.random_range(0..n - 1);
            let j = if j >= i { j + 1 } else { j };
            partners.push(j);
            let mask = self.mask(rng);
            let (a, b) = (x.row(i), x.row(j));
            for (p, o) in out.row_mut(i).iter_mut().enumerate() {
                *o = if mask[p] { a[p] } else { b[p] };
            }
        }
        Ok(Hybrids { x: out, partners })
    }
}

/// One pass of `[1/4, 1/2, 1/4]` along `line` with edge replication, in place.
fn blur_line(line: &mut [f64], scratch: &mut Vec<f64>) {
    let n = line.len();
    if n < 2 {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(line);
    for i in 0..n {
        let left = scratch[i.saturating_sub(1)];
        let right = scratch[(i + 1).min(n - 1)];
        line[i] = 0.25 * left + 0.5 * scratch[i] + 0.25 * right;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::rng_for;
    use proptest::prelude::*;

    #[test]
    fn blur_by_hand_with_edge_replication() {
        let mut line = vec![1.0, 0.0, 0.0, 1.0];
        blur_line(&mut line, &mut Vec::new());
        // Edges: 3/4 of themselves + 1/4 of the neighbour.
        assert_eq!(line, vec![0.75, 0.25, 0.25, 0.75]);
        let mut one = vec![1.0];
        blur_line(&mut one, &mut Vec::new());
        assert_eq!(one, vec![1.0]);
    }

    #[test]
    fn no_blur_keeps_the_bits_and_blur_makes_large_regions() {
        // Adjacent equal pixels: about 1/2 for independent bits, far more after 6 passes.
        let agree = |h: HybridNegatives, seed| {
            let mut rng = rng_for(seed, "regions");
            let (mut same, mut total) = (0usize, 0usize);
            for _ in 0..50 {
                let m = h.mask(&mut rng);
                for r in 0..28 {
                    for c in 0..27 {
                        same += usize::from(m[r * 28 + c] == m[r * 28 + c + 1]);
                        total += 1;
                    }
                }
            }
            same as f64 / total as f64
        };
        let raw = agree(HybridNegatives::image(28, 28).with_blur_passes(0), 1);
        let blurred = agree(HybridNegatives::image(28, 28), 1);
        assert!((raw - 0.5).abs() < 0.03, "raw bits: {raw}");
        assert!(blurred > 0.85, "blurred mask: {blurred}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let h = HybridNegatives::image(2, 3);
        let mut rng = rng_for(0, "bad");
        let x = Matrix::<f64>::zeros(4, 5);
        assert!(matches!(h.generate(x.view(), &mut rng), Err(CoreError::Shape { .. })));
        let one = Matrix::<f64>::zeros(1, 6);
        let e = h.generate(one.view(), &mut rng).unwrap_err().to_string();
        assert!(e.contains("batch_size") && e.contains("of 1"), "{e}");
        assert!(HybridNegatives::vector(0).validate().is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn every_hybrid_value_comes_from_its_two_parents(
            seed in 0u64..10_000,
            n in 2usize..6,
            h in 1usize..7,
            w in 1usize..7,
            image in proptest::bool::ANY,
            passes in 0usize..8,
        ) {
            let shape = if image { MaskShape::Image { height: h, width: w } } else { MaskShape::Vector { len: h * w } };
            let gen = HybridNegatives { shape, blur_passes: passes };
            // Distinct values per sample and position, so the source of every value is unambiguous.
            let x = Matrix::<f64>::from_fn(n, h * w, |i, p| (i * 1000 + p) as f64 + 0.5);
            let hy = gen.generate(x.view(), &mut rng_for(seed, "hybrid")).unwrap();
            prop_assert_eq!(hy.partners.len(), n);
            for i in 0..n {
                let j = hy.partners[i];
                prop_assert!(j != i && j < n);
                for p in 0..h * w {
                    let v = hy.x.get(i, p);
                    prop_assert!(v == x.get(i, p) || v == x.get(j, p), "row {} pixel {}: {}", i, p, v);
                }
            }
        }

        #[test]
        fn the_mask_is_deterministic_for_a_seed(seed in 0u64..10_000, h in 1usize..12, w in 1usize..12) {
            let gen = HybridNegatives::image(h, w);
            let a = gen.mask(&mut rng_for(seed, "mask"));
            let b = gen.mask(&mut rng_for(seed, "mask"));
            prop_assert_eq!(&a, &b);
            let x = Matrix::<f32>::from_fn(3, h * w, |i, p| (i * 7 + p) as f32);
            let ha = gen.generate(x.view(), &mut rng_for(seed, "gen")).unwrap();
            let hb = gen.generate(x.view(), &mut rng_for(seed, "gen")).unwrap();
            prop_assert_eq!(ha, hb);
        }

        #[test]
        fn the_mask_is_one_half_of_the_time_on_average(seed in 0u64..10_000, image in proptest::bool::ANY) {
            // 400 masks of 64 pixels: blurred masks have large correlated regions, so the
            // fraction over a 8 x 8 mask varies a lot; its mean over 400 masks has an sd of
            // at most 0.5 / sqrt(400) = 0.025 (all pixels of a mask equal, the worst case).
            let gen = if image { HybridNegatives::image(8, 8) } else { HybridNegatives::vector(64) };
            let mut rng = rng_for(seed, "fraction");
            let ones: usize = (0..400).map(|_| gen.mask(&mut rng).iter().filter(|&&b| b).count()).sum();
            let frac = ones as f64 / (400.0 * 64.0);
            // 5 sd of the worst case.
            prop_assert!((frac - 0.5).abs() < 0.125, "fraction {}", frac);
        }
    }

    #[test]
    fn mask_fraction_is_one_half_at_every_pixel_including_edges() {
        // Edge replication keeps E[mask] = 1/2 per pixel: check corner, edge and centre over
        // 4000 masks (sd of each estimate 0.008; bound 0.04 = 5 sd).
        let gen = HybridNegatives::image(10, 10);
        let mut rng = rng_for(7, "per pixel");
        let mut counts = [0usize; 3];
        for _ in 0..4000 {
            let m = gen.mask(&mut rng);
            for (k, p) in [0, 5, 55].into_iter().enumerate() {
                counts[k] += usize::from(m[p]);
            }
        }
        for (k, c) in counts.iter().enumerate() {
            let f = *c as f64 / 4000.0;
            assert!((f - 0.5).abs() < 0.04, "pixel {k}: fraction {f}");
        }
    }
}

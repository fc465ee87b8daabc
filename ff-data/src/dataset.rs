//! The labelled data set type shared by every loader, with subsets, splits and mini-batches.

use crate::error::DataError;
use crate::split::split_indices;
use ff_core::{MatRef, Matrix, Real};

/// How the entries of a sample vector are arranged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A plain feature vector. Its first `reserved_leading` entries are zero placeholders where the
    /// trainer writes the label embedding (the paper's vowel preprocessing prepends 8 zeros).
    Vector {
        /// Number of leading zero entries reserved for the label.
        reserved_leading: usize,
    },
    /// An image, row-major pixels: entry `r * width + c` is pixel `(r, c)`.
    Image {
        /// Number of pixel rows.
        height: usize,
        /// Number of pixel columns.
        width: usize,
    },
}

/// A labelled data set: `n` samples of `d` features, each with a class label.
///
/// **Invariants** (upheld by every loader in this crate): `x.rows() == y.len()`; every label is
/// `< num_classes`; `class_names.len() == num_classes`; every value of `x` is finite; `d` agrees
/// with `layout` (`height * width` for an image, `> reserved_leading` for a vector).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset<F> {
    /// Name of the data set, for reports (`"digits"`, `"vowels"`, `"mnist"`...).
    pub name: String,
    /// Samples, `n x d`, row-major: sample `i` is `x.row(i)`.
    pub x: Matrix<F>,
    /// Class of each sample, in `0..num_classes`.
    pub y: Vec<usize>,
    /// Number of classes.
    pub num_classes: usize,
    /// Human name of each class (`"0"`..`"9"`, `"ae"`, `"T-shirt/top"`...).
    pub class_names: Vec<String>,
    /// How a sample's entries are arranged.
    pub layout: Layout,
}

/// A training set and a test set drawn from the same source.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTest<F> {
    /// The training samples.
    pub train: Dataset<F>,
    /// The held-out test samples.
    pub test: Dataset<F>,
}

/// One mini-batch: a borrowed view of consecutive samples (no copy).
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a, F> {
    /// Index of the batch's first sample in the data set.
    pub start: usize,
    /// The samples, `batch x d`.
    pub x: MatRef<'a, F>,
    /// Their labels.
    pub y: &'a [usize],
}

/// Iterator over consecutive mini-batches of a [`Dataset`]; see [`Dataset::batches`].
#[derive(Clone, Debug)]
pub struct Batches<'a, F> {
    data: &'a Dataset<F>,
    batch_size: usize,
    next: usize,
}

impl<'a, F: Real> Iterator for Batches<'a, F> {
    type Item = Batch<'a, F>;

    fn next(&mut self) -> Option<Batch<'a, F>> {
        let n = self.data.len();
        if self.next >= n {
            return None;
        }
        let start = self.next;
        let end = (start + self.batch_size).min(n);
        self.next = end;
        Some(Batch { start, x: self.data.x.view().slice_rows(start, end), y: &self.data.y[start..end] })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.data.len().saturating_sub(self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl<F: Real> ExactSizeIterator for Batches<'_, F> {}

impl<F: Real> Dataset<F> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// `true` if there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of features per sample (`d`), including any reserved leading entries.
    pub fn dim(&self) -> usize {
        self.x.cols()
    }

    /// Number of samples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &c in &self.y {
            if let Some(k) = counts.get_mut(c) {
                *k += 1;
            }
        }
        counts
    }

    /// The samples at `idx`, in that order (indices may repeat), with the same name, classes and
    /// layout.
    ///
    /// # Panics
    /// If an index is `>= self.len()` (a caller bug).
    pub fn subset(&self, idx: &[usize]) -> Dataset<F> {
        Dataset {
            name: self.name.clone(),
            x: self.x.select_rows(idx),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            num_classes: self.num_classes,
            class_names: self.class_names.clone(),
            layout: self.layout.clone(),
        }
    }

    /// Splits into `(train, test)` with `ceil(test_fraction * n)` test samples, deterministically
    /// from `seed`; `stratified` keeps each class's share (largest-remainder rounding). Both parts
    /// come out shuffled. See [`crate::split_indices`] for the exact algorithm.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if `test_fraction` is not strictly between 0 and 1 or a side would
    /// be empty.
    ///
    /// # Examples
    /// ```
    /// let digits = ff_data::digits::<f32>().unwrap();
    /// let (train, test) = digits.split(0.2, 7, true).unwrap();
    /// assert_eq!((train.len(), test.len()), (1437, 360));
    /// ```
    pub fn split(
        &self,
        test_fraction: f64,
        seed: u64,
        stratified: bool,
    ) -> Result<(Dataset<F>, Dataset<F>), DataError> {
        let (train, test) = split_indices(&self.y, self.num_classes, test_fraction, seed, stratified)?;
        Ok((self.subset(&train), self.subset(&test)))
    }

    /// [`Dataset::split`] packaged as a [`TrainTest`].
    ///
    /// # Errors
    /// As [`Dataset::split`].
    pub fn train_test(&self, test_fraction: f64, seed: u64, stratified: bool) -> Result<TrainTest<F>, DataError> {
        let (train, test) = self.split(test_fraction, seed, stratified)?;
        Ok(TrainTest { train, test })
    }

    /// Consecutive mini-batches of at most `batch_size` samples (the last one may be shorter), as
    /// borrowed views: nothing is copied. Shuffle once per epoch with [`Dataset::subset`] of
    /// [`crate::epoch_order`], or gather random batches with [`Dataset::gather`].
    ///
    /// # Errors
    /// [`DataError::Invalid`] if `batch_size == 0`.
    ///
    /// # Examples
    /// ```
    /// let digits = ff_data::digits::<f32>().unwrap();
    /// let sizes: Vec<usize> = digits.batches(500).unwrap().map(|b| b.y.len()).collect();
    /// assert_eq!(sizes, [500, 500, 500, 297]);
    /// ```
    pub fn batches(&self, batch_size: usize) -> Result<Batches<'_, F>, DataError> {
        if batch_size == 0 {
            return Err(DataError::invalid("batch_size", "must be at least 1, got 0"));
        }
        Ok(Batches { data: self, batch_size, next: 0 })
    }

    /// Copies the samples at `idx` into reusable buffers (`x` is resized to `idx.len() x d`, `y`
    /// cleared and refilled): gathering random mini-batches without allocating once the buffers
    /// have grown.
    ///
    /// # Panics
    /// If an index is `>= self.len()` (a caller bug).
    pub fn gather(&self, idx: &[usize], x: &mut Matrix<F>, y: &mut Vec<usize>) {
        let d = self.dim();
        x.resize(idx.len(), d);
        y.clear();
        for (r, &i) in idx.iter().enumerate() {
            x.row_mut(r).copy_from_slice(self.x.row(i));
            y.push(self.y[i]);
        }
    }

    /// Converts the samples to another precision.
    pub fn cast<G: Real>(&self) -> Dataset<G> {
        Dataset {
            name: self.name.clone(),
            x: self.x.cast(),
            y: self.y.clone(),
            num_classes: self.num_classes,
            class_names: self.class_names.clone(),
            layout: self.layout.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch_order;

    fn toy(n: usize) -> Dataset<f64> {
        Dataset {
            name: "toy".into(),
            x: Matrix::from_fn(n, 2, |r, c| (r * 10 + c) as f64),
            y: (0..n).map(|i| i % 3).collect(),
            num_classes: 3,
            class_names: vec!["a".into(), "b".into(), "c".into()],
            layout: Layout::Vector { reserved_leading: 0 },
        }
    }

    #[test]
    fn subset_keeps_rows_and_labels_together() {
        let d = toy(10);
        let s = d.subset(&[7, 2, 7]);
        assert_eq!(s.y, [1, 2, 1]);
        assert_eq!(s.x.row(0), &[70.0, 71.0]);
        assert_eq!(s.x.row(1), &[20.0, 21.0]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.dim(), 2);
    }

    #[test]
    fn split_is_a_seeded_partition_with_rows_attached() {
        let d = toy(30);
        let (a, b) = d.split(0.3, 5, false).unwrap();
        assert_eq!((a.len(), b.len()), (21, 9));
        let mut firsts: Vec<i64> = a.x.data().iter().chain(b.x.data()).step_by(2).map(|&v| v as i64).collect();
        firsts.sort_unstable();
        assert_eq!(firsts, (0..30).map(|i| i * 10).collect::<Vec<_>>());
        for part in [&a, &b] {
            for i in 0..part.len() {
                assert_eq!(part.y[i], (part.x.row(i)[0] as usize / 10) % 3);
            }
        }
        let (a2, _) = d.split(0.3, 5, false).unwrap();
        assert_eq!(a, a2);
        let (a3, _) = d.split(0.3, 6, false).unwrap();
        assert_ne!(a, a3);
    }

    #[test]
    fn batches_cover_every_sample_once_without_copying() {
        let d = toy(10);
        let batches: Vec<_> = d.batches(4).unwrap().collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(d.batches(4).unwrap().len(), 3);
        assert_eq!(batches[2].start, 8);
        assert_eq!(batches[2].y, &[2, 0]);
        assert_eq!(batches[1].x.row(0), d.x.row(4));
        assert!(std::ptr::eq(batches[1].x.data().as_ptr(), d.x.row(4).as_ptr()));
        assert!(d.batches(0).is_err());
    }

    #[test]
    fn gather_reuses_buffers() {
        let d = toy(10);
        let (mut x, mut y) = (Matrix::zeros(0, 0), Vec::new());
        for chunk in epoch_order(10, 1, 0).chunks(4) {
            d.gather(chunk, &mut x, &mut y);
            assert_eq!(x.rows(), chunk.len());
            for (r, &i) in chunk.iter().enumerate() {
                assert_eq!(x.row(r), d.x.row(i));
                assert_eq!(y[r], d.y[i]);
            }
        }
    }

    #[test]
    fn class_counts_count() {
        assert_eq!(toy(10).class_counts(), [4, 3, 3]);
    }
}

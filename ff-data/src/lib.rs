//! # ff-data: the data sets of phyff
//!
//! Loaders for the data the experiments train on, returning one labelled [`Dataset`] type:
//! - the built-in 8 x 8 handwritten **digits** (compiled into the crate; the default job trains
//!   on it), see [`digits()`];
//! - the Hillenbrand et al. (1995) **vowel** formants, from the CSV copy or the authors'
//!   `vowdata.dat`, with the paper's preprocessing ([`read_vowels`], [`paper_preprocess`]);
//! - **MNIST** and **Fashion-MNIST** from IDX files, plain or gzip ([`load_idx_dir`]); fetch
//!   them once with `cargo xtask fetch-data mnist|fashion-mnist`;
//! - any **labelled CSV** file ([`read_labelled_csv`]) and **measured input/output pairs** of a
//!   physical layer ([`read_pairs`]).
//!
//! [`DataSpec`] names a data set in a string (`"digits"`, `"vowels:FILE"`, `"mnist:DIR"`,
//! `"fashion:DIR"`, `"csv:FILE#label=NAME"`) and [`load`] turns it into a train/test pair.
//!
//! ## Quick start
//! ```
//! use ff_data::{load, DataSpec};
//! let spec: DataSpec = "digits".parse().unwrap();
//! let tt = load::<f32>(&spec, 42).unwrap();
//! assert_eq!((tt.train.len(), tt.test.len()), (1437, 360));
//! assert_eq!(tt.train.dim(), 64);
//! ```
//!
//! ## Conventions
//! - Samples are rows of a row-major [`ff_core::Matrix`] (`n x d`); labels are `0..num_classes`.
//! - Every random choice takes an explicit seed ([`ff_core::rng::rng_for`]); splits and shuffles
//!   are bit-for-bit reproducible (see [`split_indices`]).
//! - Loaders never panic on bad input: every problem is a [`DataError`] naming the file and the
//!   line or byte offset.
//! - Nothing is downloaded at run time.

mod csv;
mod dataset;
mod digits;
mod error;
mod idx;
mod mnist;
mod spec;
mod split;
mod text;
mod vowels;

pub use csv::{
    parse_labelled_csv, parse_numeric_csv, read_labelled_csv, read_pairs, read_pairs_checked,
    CsvOptions, HeaderMode, LabelColumn,
};
pub use dataset::{Batch, Batches, Dataset, Layout, TrainTest};
pub use digits::{digits, digits_train_test, parse_digits, DIGITS_FILE, DIGITS_LEN};
pub use error::DataError;
pub use idx::{
    parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels, IdxImages, Normalisation,
    FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD,
};
pub use mnist::{
    find_idx_file, load_fashion_mnist, load_idx_dir, load_mnist, ImageSet, FASHION_MNIST_CLASSES,
    IDX_FILES,
};
pub use spec::{load, DataSpec};
pub use split::{epoch_order, permutation, shuffle_in_place, split_indices, test_count};
pub use vowels::{
    load_vowels, paper_preprocess, parse_vowels, read_vowels, MissingPolicy, SpeakerGroup,
    VowelFormat, VowelOptions, VowelPreprocessing, PAPER_RESERVED_LEADING, PAPER_VOWELS,
    VOWEL_CODES, VOWEL_FEATURES,
};

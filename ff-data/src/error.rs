//! The error type of the crate: every failure names the file and where in it things went wrong.

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong while loading, parsing or splitting data.
///
/// Each variant names the file (or the built-in data set) and, where it applies, the 1-based line
/// or the 0-based byte offset of the problem, so a message can be acted on without a debugger.
/// Loaders never panic on bad input: corrupt, truncated or hostile files give one of these.
#[derive(Debug, Error)]
pub enum DataError {
    /// A file is not on disk (a data set that has to be fetched first, or a wrong path).
    #[error("{dataset} not found: {path} does not exist; {advice}")]
    NotFound {
        /// Human name of the data set (`"MNIST"`, `"Fashion-MNIST"`, `"vowel file"`...).
        dataset: String,
        /// The file or directory that was looked for.
        path: PathBuf,
        /// What to do: the exact command that fetches it (`fetch it with \`cargo xtask ...\``),
        /// or, for files that are not fetched, to check the path.
        advice: String,
    },
    /// A path names a directory where a file was expected, or a file where a directory was.
    #[error("{path} is {found}, not {expected}; {advice}")]
    NotAFile {
        /// The path as given or looked up.
        path: PathBuf,
        /// What is there (`"a directory"`, `"a file"`).
        found: String,
        /// What was expected there (`"a CSV file"`, `"a directory"`).
        expected: String,
        /// What to do.
        advice: String,
    },
    /// The operating system refused to read a file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A gzip stream is corrupt or truncated.
    #[error("{file}: corrupt or truncated gzip data after {decompressed} decompressed bytes: {message}")]
    Gzip {
        /// The file (or built-in data set).
        file: String,
        /// How many bytes had been decompressed when the error occurred.
        decompressed: u64,
        /// The decoder's message.
        message: String,
    },
    /// A text file (CSV, `vowdata.dat`) has a bad line.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file (or built-in data set).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, with the offending value and column.
        message: String,
    },
    /// A binary file (IDX) is malformed at a byte offset.
    #[error("{file} at byte offset {offset}: {message}")]
    Binary {
        /// The file.
        file: String,
        /// 0-based byte offset (in the decompressed stream for gzip files).
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// Two files (or a file and what it must agree with) are inconsistent: counts or widths differ.
    #[error("{first} and {second} disagree: {message}")]
    Mismatch {
        /// The first file.
        first: String,
        /// The second file.
        second: String,
        /// What differs, with both numbers.
        message: String,
    },
    /// The file parsed but yields no usable data (no rows, or a requested class without samples).
    #[error("{file}: {message}")]
    Empty {
        /// The file.
        file: String,
        /// What is missing.
        message: String,
    },
    /// A data specification string (`"vowels:FILE"`...) cannot be understood.
    #[error("invalid data specification {spec:?}: {message}")]
    Spec {
        /// The string as given.
        spec: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// An argument (split fraction, batch size, option) is out of its valid range.
    #[error("invalid {name}: {message}")]
    Invalid {
        /// The argument's name.
        name: String,
        /// The value and what would be accepted.
        message: String,
    },
}

impl DataError {
    /// Shorthand for [`DataError::Parse`].
    pub(crate) fn parse(file: &str, line: usize, message: impl Into<String>) -> Self {
        DataError::Parse { file: file.to_string(), line, message: message.into() }
    }

    /// Shorthand for [`DataError::Binary`].
    pub(crate) fn binary(file: &str, offset: u64, message: impl Into<String>) -> Self {
        DataError::Binary { file: file.to_string(), offset, message: message.into() }
    }

    /// Shorthand for [`DataError::Invalid`].
    pub(crate) fn invalid(name: &str, message: impl Into<String>) -> Self {
        DataError::Invalid { name: name.to_string(), message: message.into() }
    }

    /// Shorthand for [`DataError::Empty`].
    pub(crate) fn empty(file: &str, message: impl Into<String>) -> Self {
        DataError::Empty { file: file.to_string(), message: message.into() }
    }
}

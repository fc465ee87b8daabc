//! Error types of the core crate.

use thiserror::Error;

/// A failure of a physical system (simulated or real) while answering a query.
///
/// Real devices time out, disconnect and return garbage; simulators receive inputs of the
/// wrong shape. All of these are errors, never panics.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SystemError {
    /// The input or output buffer does not have the shape the system expects.
    #[error("{system}: {what} has {got} values per row, expected {expected}")]
    Shape {
        /// Name of the system that rejected the buffer.
        system: String,
        /// Which buffer (`"input"` or `"output"`).
        what: &'static str,
        /// The length the system expects.
        expected: usize,
        /// The length it received.
        got: usize,
    },
    /// Input and output batches have a different number of rows.
    #[error("{system}: input batch has {input_rows} rows but output buffer has {output_rows}")]
    BatchMismatch {
        /// Name of the system.
        system: String,
        /// Rows of the input batch.
        input_rows: usize,
        /// Rows of the output buffer.
        output_rows: usize,
    },
    /// A value that is NaN or infinite was given to or produced by the system.
    #[error("{system}: non-finite value {value} at row {row}, column {col} of the {what}")]
    NonFinite {
        /// Name of the system.
        system: String,
        /// `"input"` or `"output"`.
        what: &'static str,
        /// Row of the offending value.
        row: usize,
        /// Column of the offending value.
        col: usize,
        /// The value itself (NaN or +-inf).
        value: f64,
    },
    /// The device did not answer in time.
    #[error("{system}: no reply within {timeout_ms} ms (after {attempts} attempts)")]
    Timeout {
        /// Name of the system.
        system: String,
        /// The per-request timeout.
        timeout_ms: u64,
        /// How many attempts were made.
        attempts: u32,
    },
    /// Any other device or simulator failure (I/O, protocol, numerical breakdown).
    #[error("{system}: {message}")]
    Device {
        /// Name of the system.
        system: String,
        /// What went wrong, for a human.
        message: String,
    },
}

/// Errors of the core crate: invalid configuration, shape mismatches, failures of a system.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// A configuration value is out of its valid range. The message names the field, the value and the fix.
    #[error("invalid {field}: {message}")]
    Config {
        /// Name of the offending field (as spelled in configuration files).
        field: String,
        /// The value and what would be accepted.
        message: String,
    },
    /// Two shapes that must agree do not.
    #[error("shape mismatch in {context}: expected {expected}, got {got}")]
    Shape {
        /// Where the mismatch happened.
        context: String,
        /// What was expected.
        expected: String,
        /// What was received.
        got: String,
    },
    /// A label is out of range.
    #[error("label {label} at row {row} is out of range: the model has {num_classes} classes (0..{num_classes})")]
    Label {
        /// The label value.
        label: usize,
        /// Its row in the batch.
        row: usize,
        /// Number of classes of the model.
        num_classes: usize,
    },
    /// Training produced a non-finite number (diverged): lower the learning rate.
    #[error("non-finite {what} during training (diverged); lower the learning rate or check the inputs")]
    Diverged {
        /// The quantity that became NaN or infinite.
        what: String,
    },
    /// A physical system failed.
    #[error(transparent)]
    System(#[from] SystemError),
}

impl CoreError {
    /// Shorthand for a [`CoreError::Config`].
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Config { field: field.into(), message: message.into() }
    }
}

/// Result alias of the core crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

//! The one error type of the dataset readers and the registry. Every variant names the file (or
//! dataset) it concerns, so a user can act on the message alone.

use std::path::PathBuf;

use crate::npy::NpyError;

/// Errors from reading datasets, resolving dataset names and finding weight files.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes of a file do not follow its format (bad magic, truncation, wrong layout).
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    /// An image in a folder cannot be decoded, or does not match the other images.
    #[error("{path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("{path}: {labels} labels for {images} images")]
    CountMismatch {
        path: PathBuf,
        labels: usize,
        images: usize,
    },
    #[error("{path}: sha256 mismatch: expected {expected}, found {found}")]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// A dataset spec that does not parse, or names an unknown dataset.
    #[error("bad dataset spec '{spec}': {reason}")]
    BadSpec { spec: String, reason: String },
    #[error("{dataset}: unknown class '{class}' (classes: {available})")]
    UnknownClass {
        dataset: String,
        class: String,
        available: String,
    },
    /// A registered dataset or weight file that has not been fetched into the data root.
    #[error("{what} not found under {root}: run `{command}`")]
    Missing {
        what: String,
        root: PathBuf,
        command: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn image(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Image {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading weights, decoding images or embedding them.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("weights file {path} not found; {hint}")]
    WeightsNotFound { path: PathBuf, hint: String },
    /// A weights file that is not a readable torch archive (or another file-format error).
    #[error(transparent)]
    Data(#[from] mr_data::DataError),
    #[error("weights: tensor `{name}` is missing")]
    MissingTensor { name: String },
    #[error("weights: {} unexpected tensor(s): {}", names.len(), names.join(", "))]
    UnexpectedTensors { names: Vec<String> },
    #[error("weights: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("weights: attribute `{name}` is {found}, expected {expected}")]
    AttributeMismatch {
        name: String,
        expected: String,
        found: String,
    },
    #[error("{path}: cannot decode image: {msg}")]
    Image { path: PathBuf, msg: String },
    #[error("invalid input: {0}")]
    Input(String),
    #[error("unknown embedder `{0}` (known: {known})", known = mr_data::EmbedderName::known())]
    UnknownEmbedder(String),
    #[error(transparent)]
    Npy(#[from] mr_data::npy::NpyError),
}

impl EmbedError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

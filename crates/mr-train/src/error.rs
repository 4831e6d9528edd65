//! The library's error type. `Display` shows one level (as `std` errors do); the cause is its
//! [`source`](std::error::Error::source), so `anyhow`'s `{:#}` in the binaries prints the whole
//! chain on one line. [`TrainError::is_bad_input`] tells the caller's mistakes (exit code 2 in
//! the CLI) from failures during training.

/// `Result` with [`TrainError`] as the default error.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// An error in the caller's configuration or data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Everything the training library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration or the data is wrong (the CLI exits with 2).
    #[error(transparent)]
    BadInput(#[from] BadInput),
    /// A data set, array file or weight file could not be read.
    #[error(transparent)]
    Data(#[from] mr_data::DataError),
    #[error(transparent)]
    Npy(#[from] mr_data::npy::NpyError),
    /// An embedder could not be loaded or run.
    #[error(transparent)]
    Embed(#[from] mr_embed::EmbedError),
    #[error(transparent)]
    Metrics(#[from] mr_metrics::MetricsError),
    #[error(transparent)]
    Nn(#[from] mr_nn::NnError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A sample image could not be written.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// A burn record (checkpoint, weights) could not be written or read.
    #[error("{0}")]
    Record(String),
    /// A failure that is not the caller's fault (e.g. training diverged).
    #[error("{0}")]
    Failed(String),
    /// `what` failed; the cause is the source.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<TrainError>,
    },
}

impl TrainError {
    /// Whether the error (or any cause in its chain) is the caller's: bad configuration, data,
    /// weights or embedder name.
    pub fn is_bad_input(&self) -> bool {
        match self {
            TrainError::BadInput(_)
            | TrainError::Data(_)
            | TrainError::Npy(_)
            | TrainError::Embed(_) => true,
            TrainError::Context { source, .. } => source.is_bad_input(),
            _ => false,
        }
    }

    /// This error as the cause of `what`.
    pub fn context(self, what: impl Into<String>) -> Self {
        TrainError::Context {
            what: what.into(),
            source: Box::new(self),
        }
    }
}

impl From<burn::record::RecorderError> for TrainError {
    fn from(e: burn::record::RecorderError) -> Self {
        TrainError::Record(e.to_string())
    }
}

/// `anyhow`-style context for results and options inside the library.
pub trait Context<T> {
    /// The error (or `None`) as the cause of `what`.
    fn context(self, what: impl Into<String>) -> Result<T>;
    /// [`Context::context`] with the message built only on failure.
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<TrainError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| TrainError::Failed(what.into()))
    }
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| TrainError::Failed(what().into()))
    }
}

/// Return early with a [`TrainError`]: `bail!("format", args…)` is a [`TrainError::Failed`],
/// `bail!(err)` converts `err` (e.g. a [`BadInput`]).
macro_rules! bail {
    ($fmt:literal $(,)?) => {
        return Err($crate::error::TrainError::Failed(format!($fmt)))
    };
    ($fmt:literal, $($arg:tt)+) => {
        return Err($crate::error::TrainError::Failed(format!($fmt, $($arg)+)))
    };
    ($err:expr $(,)?) => {
        return Err($crate::error::TrainError::from($err))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_cause_and_the_kind() {
        let r: Result<()> = Err(BadInput("steps must be ≥ 1".into()).into());
        let e = r.context("reading run.toml").unwrap_err();
        assert_eq!(e.to_string(), "reading run.toml");
        assert!(e.is_bad_input());
        let cause = std::error::Error::source(&e).map(|c| c.to_string());
        assert_eq!(cause.as_deref(), Some("steps must be ≥ 1"));
        let io: Result<()> = Err(std::io::Error::other("disk full")).context("writing log.csv");
        assert!(!io.unwrap_err().is_bad_input());
        assert!(None::<u8>.context("nothing").is_err());
    }
}

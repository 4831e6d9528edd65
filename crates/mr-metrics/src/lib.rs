//! Metrics for generative models and their memorization of training data.
//!
//! * [`fid`]: Fréchet Inception Distance exactly as pytorch-fid computes it, with `.npz` stats
//!   compatible with its `--save-stats`.
//! * [`kid`]: Kernel Inception Distance (cubic polynomial kernel, unbiased MMD² over random
//!   subsets, like torch-fidelity).
//! * [`ct`]: Meehan et al.'s data-copying statistic C_T (Mann-Whitney Z_U per k-means cell),
//!   class-wise C_T and MRGAN's per-class variant.
//! * [`nnd`]: nearest-neighbour distance distributions and the τ guideline of the paper.
//! * [`fidelity`]: precision / recall, density / coverage (k-NN balls), AuthPct and the Vendi
//!   score.
//! * [`copies`]: which generated samples copy which training samples (nearest pair, distance,
//!   ratio to the training sample's own leave-one-out distance, within τ).
//!
//! The library has no burn dependency; build with `default-features = false` to skip the CLI.

mod bootstrap;
pub use bootstrap::Interval;
pub mod copies;
pub mod ct;
pub mod features;
pub mod fid;
pub mod fidelity;
pub mod fld;
pub mod kid;
pub mod nnd;

pub use features::Features;

/// Errors of the metrics library. [`MetricsError::is_bad_input`] tells a CLI whether to exit 2.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The caller's data or parameters are unusable (shape, NaN, too few samples, ...).
    #[error("{0}")]
    Input(String),
    /// A numerical failure on valid input (e.g. a complex matrix square root).
    #[error("{0}")]
    Numeric(String),
    #[error(transparent)]
    Nn(#[from] mr_nn::NnError),
    #[error(transparent)]
    Npy(#[from] mr_data::npy::NpyError),
}

impl MetricsError {
    /// Whether the error is the caller's input (exit code 2) rather than a failure (exit 1).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, MetricsError::Numeric(_))
    }
}

pub type Result<T, E = MetricsError> = std::result::Result<T, E>;

pub(crate) fn input<T>(msg: impl Into<String>) -> Result<T> {
    Err(MetricsError::Input(msg.into()))
}

//! Feature extractors for the memorization-rejection toolkit, generic over the burn backend.
//!
//! - [`inception::InceptionFid`] (`inception-fid`): the FID Inception-v3 with the TF
//!   inception-2015-12-05 weights, 2048-d pool3 features.
//! - [`effnet::EffNetLite0`] (`effnet-lite0`): EfficientNet-Lite0 with ImageNet weights,
//!   1280-d penultimate features.
//! - [`small_cnn::SmallCnnEmbedder`] (`small-cnn`): a small CIFAR-10 classifier trained in this
//!   project (weights ship in the crate), 128-d pooled features — the cheap CPU embedder.
//! - [`Embedder`]: the common interface (name, weights, preprocessing, feature dimension,
//!   batch forward).
//! - [`pipeline`]: batched extraction from uint8 images with a progress bar, parallel image
//!   decoding and an on-disk feature cache.
//!
//! - [`host`] (= `mr_kernels::infer`, the workspace's one kernel crate): CPU inference kernels
//!   (banded im2col + faer GEMM, pooling) that the three
//!   networks run on when the backend is `burn::backend::Flex` — 1.1–1.3× torch's CPU speed for
//!   Inception and EfficientNet, 3–18× burn-flex's own ops; `.with_host_kernels(false)` turns
//!   them off. The networks' blocks are written once over [`layers::Ops`], so burn's ops and
//!   the host kernels run the same definition.
//!
//! Library code is generic over the backend: binaries, examples and tests pick one
//! (`burn::backend::Flex` on CPU by default, `burn::backend::Cuda` with the `cuda` feature); the
//! only backend named here is `Flex`, to recognise it for the host kernels.

pub mod effnet;
pub mod error;
/// See [`mr_kernels::check_cuda_device`].
#[cfg(feature = "cuda")]
pub use mr_kernels::check_cuda_device;
/// The host inference kernels (moved to `mr_kernels::infer`; this path is kept).
pub use mr_kernels::infer as host;
pub mod inception;
pub mod layers;
pub mod paths;
pub mod pipeline;
pub mod preprocess;
pub mod small_cnn;
pub mod store;
/// Torch archives are read by `mr-data` (the workspace's one pickle and torch-archive reader).
pub use mr_data::torch_archive;
pub mod zoo;

use burn::tensor::{backend::Backend, Tensor};

pub use effnet::EffNetLite0;
pub use error::EmbedError;
pub use inception::InceptionFid;
pub use preprocess::{Preprocess, Resize, Scale};
pub use small_cnn::{SmallCnn, SmallCnnConfig, SmallCnnEmbedder};
pub use zoo::{load_embedder, EMBEDDERS};

/// A network that maps images to feature vectors.
pub trait Embedder<B: Backend> {
    /// Short model name, e.g. `inception-fid`.
    fn name(&self) -> &str;

    /// Which weights are loaded, e.g. `tf2015`.
    fn weights_tag(&self) -> &str;

    /// The preprocessing applied by [`Embedder::embed`].
    fn preprocess(&self) -> &Preprocess;

    /// Length of one feature vector.
    fn feature_dim(&self) -> usize;

    /// Square input side expected by [`Embedder::forward`].
    fn input_size(&self) -> usize {
        self.preprocess().size
    }

    /// Identifies model, weights and preprocessing, e.g. `inception-fid+tf2015+bilinear299-div128`;
    /// feature caches and result files record it.
    fn id(&self) -> String {
        format!(
            "{}+{}+{}",
            self.name(),
            self.weights_tag(),
            self.preprocess().id()
        )
    }

    /// Preprocessed `[N, 3, S, S]` → features `[N, D]`.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2>;

    /// Raw pixels `[N, 3, H, W]` in [0, 255] → features `[N, D]` (preprocess, then forward).
    fn embed(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(self.preprocess().apply(x))
    }
}

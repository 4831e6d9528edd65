//! Dataset readers, array file I/O and the named-dataset registry for the memorization-rejection
//! toolkit. No deep-learning framework here: images come out as uint8 `[N, H, W, C]`.
//!
//! * [`imageset`]: [`ImageSet`] (images + labels + class names + content hash).
//! * [`registry`]: named datasets (`cifar10-train`, `cifar10.1`, `cifar10-train[cat]:500`, …),
//!   the data root, weight files.
//! * Readers: [`cifar`] (python pickles, binary batches, CIFAR-10.1, ciFAIR), [`folder`] (image
//!   folders, pinned JPEG decoder), [`arrays`] (`.npy`/`.npz` uint8), [`idx`] (MNIST IDX).
//! * [`embedder`]: the shipped embedders' names and weight files ([`EmbedderName`]).
//! * [`npy`]: NumPy `.npy` / `.npz` reading and writing (the exchange format of every CLI).
//! * [`progress`]: the one progress-bar style of every command (hidden off a terminal).
//! * [`atomic`]: write-to-temp-then-rename helpers so no output file is ever left half written.
//! * [`pickle`]: the workspace's one non-executing pickle reader, behind [`cifar`] and
//!   [`torch_archive`] (tensors of torch's zip and legacy files, read by `mr-embed`'s loaders).

#[cfg(feature = "datasets")]
pub mod archive;
pub mod arrays;
pub mod atomic;
#[cfg(feature = "datasets")]
pub mod cifar;
pub mod embedder;
pub mod error;
#[cfg(feature = "datasets")]
pub mod folder;
#[cfg(feature = "datasets")]
pub mod idx;
pub mod imageset;
pub mod npy;
pub mod pickle;
pub mod progress;
#[cfg(feature = "datasets")]
pub mod registry;
pub mod synthetic;
pub mod torch_archive;

pub use embedder::EmbedderName;
pub use error::DataError;
pub use imageset::ImageSet;

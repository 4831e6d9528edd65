//! Dataset readers, array file I/O and the named-dataset registry for the memorization-rejection
//! toolkit. No deep-learning framework here: images come out as uint8 `[N, H, W, C]`.
//!
//! * [`imageset`]: [`ImageSet`] (images + labels + class names + content hash).
//! * [`registry`]: named datasets (`cifar10-train`, `cifar10.1`, `cifar10-train[cat]:500`, …),
//!   the data root, weight files.
//! * Readers: [`cifar`] (python pickles, binary batches, CIFAR-10.1, ciFAIR), [`folder`] (image
//!   folders, pinned JPEG decoder), [`arrays`] (`.npy`/`.npz` uint8), [`idx`] (MNIST IDX).
//! * [`npy`]: NumPy `.npy` / `.npz` reading and writing (the exchange format of every CLI).
//! * [`atomic`]: write-to-temp-then-rename helpers so no output file is ever left half written.
//! * [`pickle`]: the minimal, non-executing pickle reader behind [`cifar`].

pub mod archive;
pub mod arrays;
pub mod atomic;
pub mod cifar;
pub mod error;
pub mod folder;
pub mod idx;
pub mod imageset;
pub mod npy;
pub mod pickle;
pub mod registry;
pub mod synthetic;

pub use error::DataError;
pub use imageset::ImageSet;

//! Memorization-rejection GAN training (Bai et al.), on any burn backend.
//!
//! - [`TrainConfig`]: one TOML file (every field defaulted) — model, data, optimiser, rejection,
//!   evaluation, logging.
//! - [`Rejector`]: the training set embedded once, L2-normalised and kept on the training device
//!   ([`mr_nn::DeviceIndex`]); per generated batch the cosine NN distance is a batched matmul + max
//!   on the device, and a sample is kept iff `d > τ` (τ fixed, the guideline, or a quantile).
//! - [`Trainer`]: `n_dis` D steps + one G step per step, hinge or non-saturating loss, Adam,
//!   DiffAugment, G-EMA; rejection in the G step (`g`) or both (`gd`), with the `refill` or
//!   `shrink` batch policy. τ = 0 keeps every sample and reproduces plain training bit for bit.
//! - [`Evaluator`]: FID and C_T of a fixed latent set with the evaluation embedder (which may
//!   differ from the rejection embedder), and C_T in the rejection space.
//! - [`toy`]: the controlled benchmark — an MLP GAN on a few points of a 2-D ring of Gaussians,
//!   rejection and C_T in data space, quality as the true log-density (`mr-train toy`).
//! - [`run`]: the run directory — `config.toml`, `log.csv`, `eval.csv`, atomic checkpoints
//!   (`checkpoints/last`, `checkpoints/best` by FID) and `--resume`, which continues a killed run
//!   to the same final weights as an uninterrupted one — on the same kind of CPU: `machines.csv`
//!   records which machine (SIMD path, threads, device) trained which steps ([`machine`]).
//!
//! Every random draw comes from a ChaCha8 stream seeded by `(seed, step, purpose)`
//! ([`step_seed`]), so resuming needs only the step number and results do not depend on the
//! backend's RNG.

pub mod config;
pub mod error;
pub mod eval;
pub mod machine;
pub mod reject;
pub mod run;
pub mod sample;
pub mod toy;
pub mod trainer;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{backend::Backend, Tensor};

pub use config::{
    BatchPolicy, CheckedConfig, DiffAugPolicy, Exhausted, FidRef, Loss, MrMode, Preset, TauRule,
    TauSpec, TrainConfig, UpsamplingName,
};
pub use error::{BadInput, Result, TrainError};
pub use eval::{EvalRow, Evaluator};
pub use reject::Rejector;
pub use run::{run, RunOptions, RunSummary};
pub use trainer::{StepStats, Trainer};

/// Purposes of the per-step random streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Real-batch indices of a D step.
    Real = 1,
    /// Latents of a D step.
    DFake = 2,
    /// DiffAugment of a D step.
    AugD = 3,
    /// Latents of the G step (refill draws continue this stream).
    G = 4,
    /// DiffAugment of the G step.
    AugG = 5,
    /// The fixed evaluation latents.
    Eval = 6,
    /// Horizontal flips of the real images of a D step (`data.hflip`).
    Flip = 7,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The seed of stream `stream` in sub-step `sub` (D step index) of step `step` of a run seeded
/// `seed`.
pub fn step_seed(seed: u64, step: u64, sub: u64, stream: Stream) -> u64 {
    splitmix(splitmix(splitmix(seed) ^ step) ^ (sub << 8 | stream as u64))
}

struct Flatten {
    values: Vec<f32>,
    trainable_only: bool,
}

impl<B: Backend> ModuleVisitor<B> for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.trainable_only && !param.is_require_grad() {
            return;
        }
        let v = param
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("float tensor reads back as f32");
        self.values.extend_from_slice(&v);
    }
}

/// Every float tensor of a module (weights and running state), concatenated in visit order: what
/// the equality tests compare bit for bit.
pub fn flat_params<B: Backend, M: Module<B>>(module: &M) -> Vec<f32> {
    let mut f = Flatten {
        values: Vec::new(),
        trainable_only: false,
    };
    module.visit(&mut f);
    f.values
}

/// The trainable tensors only (no running statistics), in visit order.
pub fn flat_trainable<B: Backend, M: Module<B>>(module: &M) -> Vec<f32> {
    let mut f = Flatten {
        values: Vec::new(),
        trainable_only: true,
    };
    module.visit(&mut f);
    f.values
}

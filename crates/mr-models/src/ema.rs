//! Exponential moving average of model weights (StudioGAN's `Ema`: the average is a copy of
//! the live weights before `start_step`, then `ema = decay * ema + (1 - decay) * live`;
//! running state — BN statistics, spectral-norm vectors — is copied, not averaged).
//!
//! Copied BN statistics belong to the live weights, not to their average: when the weights move
//! within the EMA's horizon the averaged generator normalises with the wrong statistics.
//! [`Ema::averaging_bn_stats`] averages the BN running mean and variance with the same decay
//! instead (BigGAN-PyTorch's EMA averages every buffer of the state dict); power-iteration
//! vectors are still copied.

use std::marker::PhantomData;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::gan::STATE_FIELDS;

/// EMA of a module's weights. Keep it on the inner (non-autodiff) backend:
/// `Ema::new(generator.valid(), 0.9999, 1000)`, then `ema.update(&generator.valid(), step)`
/// after every G step.
#[derive(Debug)]
pub struct Ema<B: Backend, M: Module<B>> {
    /// The averaged model (use it for sampling / evaluation).
    pub model: M,
    /// Decay once `step >= start_step`.
    pub decay: f64,
    /// First step at which averaging starts (before it the EMA copies the live weights).
    pub start_step: usize,
    /// Average BN running statistics too (else copy them from the live model).
    pub average_bn_stats: bool,
    _backend: PhantomData<B>,
}

/// How a tensor of the model is folded into the average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A trained weight: averaged.
    Weight,
    /// A BN running mean / variance: copied, or averaged with [`Ema::average_bn_stats`].
    BnStat,
    /// A spectral-norm power-iteration vector: copied.
    SnVector,
}

struct Collect<B: Backend> {
    path: Vec<String>,
    tensors: Vec<(Tensor<B, 1>, Kind)>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let kind = match self.path.last().map(String::as_str) {
            Some("running_mean" | "running_var") => Kind::BnStat,
            Some(n) if STATE_FIELDS.contains(&n) => Kind::SnVector,
            _ => Kind::Weight,
        };
        let t = param.val();
        let n = t.shape().num_elements();
        self.tensors.push((t.reshape([n]), kind));
    }
}

struct Blend<B: Backend> {
    live: std::vec::IntoIter<(Tensor<B, 1>, Kind)>,
    decay: f64,
    average_bn_stats: bool,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (live, kind) = self
            .live
            .next()
            .expect("EMA: live and averaged models have the same structure");
        let decay = self.decay;
        let copy = match kind {
            Kind::Weight => false,
            Kind::BnStat => !self.average_bn_stats,
            Kind::SnVector => true,
        };
        param.map(|t| {
            let dims = t.dims();
            let live = live.reshape(dims).to_device(&t.device());
            if copy || decay == 0.0 {
                live
            } else {
                t.mul_scalar(decay).add(live.mul_scalar(1.0 - decay))
            }
        })
    }
}

impl<B: Backend, M: Module<B>> Ema<B, M> {
    /// Starts the average at a copy of `model`.
    pub fn new(model: M, decay: f64, start_step: usize) -> Self {
        Self {
            model,
            decay,
            start_step,
            average_bn_stats: false,
            _backend: PhantomData,
        }
    }

    /// Averages BN running statistics with the weights instead of copying the live ones.
    pub fn averaging_bn_stats(mut self, on: bool) -> Self {
        self.average_bn_stats = on;
        self
    }

    /// The paper's setting: decay 0.9999 from step 1000.
    pub fn paper(model: M) -> Self {
        Self::new(model, 0.9999, 1000)
    }

    /// Folds the live weights in after training step `step`.
    pub fn update(&mut self, live: &M, step: usize) {
        let decay = if step >= self.start_step {
            self.decay
        } else {
            0.0
        };
        let mut collect = Collect {
            path: Vec::new(),
            tensors: Vec::new(),
        };
        live.visit(&mut collect);
        let mut blend = Blend {
            live: collect.tensors.into_iter(),
            decay,
            average_bn_stats: self.average_bn_stats,
        };
        let model = self.model.clone();
        self.model = model.map(&mut blend);
    }
}

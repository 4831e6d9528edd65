//! Exponential moving average of model weights (StudioGAN's `Ema`: the average is a copy of
//! the live weights before `start_step`, then `ema = decay * ema + (1 - decay) * live`;
//! running state — BN statistics, spectral-norm vectors — is copied, not averaged).

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
    _backend: PhantomData<B>,
}

struct Collect<B: Backend> {
    path: Vec<String>,
    tensors: Vec<(Tensor<B, 1>, bool)>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let is_state = self
            .path
            .last()
            .is_some_and(|n| STATE_FIELDS.contains(&n.as_str()));
        let t = param.val();
        let n = t.shape().num_elements();
        self.tensors.push((t.reshape([n]), is_state));
    }
}

struct Blend<B: Backend> {
    live: std::vec::IntoIter<(Tensor<B, 1>, bool)>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (live, is_state) = self
            .live
            .next()
            .expect("EMA: live and averaged models have the same structure");
        let decay = self.decay;
        param.map(|t| {
            let dims = t.dims();
            let live = live.reshape(dims).to_device(&t.device());
            if is_state || decay == 0.0 {
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
            _backend: PhantomData,
        }
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
        };
        let model = self.model.clone();
        self.model = model.map(&mut blend);
    }
}

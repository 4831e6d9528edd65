//! One recorded training exchange for the end-to-end check against torch (issue 16, item 4).
//!
//! [`run_step_case`] builds a model from its seed, then runs `iterations` × (one hinge-loss D
//! step + one G step, Adam) on a seeded real batch and seeded latents, exactly as
//! [`crate::bench::time_iterations`] does, and records everything a second implementation needs
//! to redo the same steps and everything it should then agree on:
//! - in: every float tensor of G and D at initialisation (weights, spectral-norm vectors, batch
//!   norm running statistics), the real batch and its labels, each step's latents and labels;
//! - out: each step's loss, each D step's fake batch and D outputs, the gradients of the first
//!   D step and of the first G step, and every float tensor of G and D after the last step
//!   (read through `valid()`, which syncs the running state's pending updates).
//!
//! The `torch_step_case` example exports the inputs; `crates/mr-models/bench/torch_step_check.py`
//! redoes the steps in torch 1.13 (float32, and float64 from the same start) and writes a
//! summary of its results (per tensor: L2 norm, sum, eight entries); `tests/torch_step.rs`
//! holds this implementation's results to that committed summary. Names are the burn module
//! paths (`Dcgan.conv1.weight`, `ResNet.blocks.0.bn1.gain.weight`).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::gan::{hinge_d_loss, hinge_g_loss, LatentSampler, ModelConfig};
use crate::rng::{int_tensor_from_vec, tensor_from_vec, SeededRng};
use crate::TrainBackend;

/// The models the exchange knows: the presets (`dcgan-small`, `dcgan-small-cond`, `sagan`,
/// `biggan`) and `dcgan32-convT`, the cpu-gate's model (DCGAN-small at width 32 for G and D,
/// transposed-convolution upsampling, spectral-norm D).
pub fn model_config(name: &str) -> Option<ModelConfig> {
    match name {
        "dcgan32-convT" => Some(ModelConfig::DcganSmall(
            crate::DcganConfig::new()
                .with_g_width(32)
                .with_d_width(32)
                .with_upsampling(crate::Upsampling::TransposedConv),
        )),
        _ => ModelConfig::preset(name),
    }
}

/// A named `f32` tensor copied to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// The module path (`fc.weight`), or the input's name (`real`, `z_d1`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct StepCaseSpec {
    /// Model seed (as `ModelConfig::init`); the latents use `seed + 1`, the real batch `seed + 2`.
    pub seed: u64,
    /// Batch size of the real and the fake batches.
    pub batch: usize,
    /// D+G iterations (each one D step then one G step).
    pub iterations: usize,
    /// Adam learning rate (both players).
    pub lr: f64,
    /// Adam β₁.
    pub beta_1: f32,
    /// Adam β₂.
    pub beta_2: f32,
    /// Adam ε (torch's placement: added to `sqrt(v̂)`).
    pub epsilon: f32,
}

impl Default for StepCaseSpec {
    /// StudioGAN's optimizer settings (lr 2e-4, β = (0.5, 0.999), ε = 1e-6), batch 8, 2 iterations.
    fn default() -> Self {
        Self {
            seed: 0,
            batch: 8,
            iterations: 2,
            lr: 2e-4,
            beta_1: 0.5,
            beta_2: 0.999,
            epsilon: 1e-6,
        }
    }
}

/// One step's inputs: the latents and the labels of the fake batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInput {
    /// `d1`, `g1`, `d2`, … (player and iteration).
    pub name: String,
    /// `[batch, z_dim]`.
    pub z: Vec<f32>,
    /// `[batch]`.
    pub labels: Vec<i64>,
}

/// The recorded exchange (see the module docs).
#[derive(Debug, Clone)]
pub struct StepCase {
    pub spec: StepCaseSpec,
    pub z_dim: usize,
    pub init_g: Vec<NamedTensor>,
    pub init_d: Vec<NamedTensor>,
    /// `[batch, 3, 32, 32]`, uniform in [−1, 1].
    pub real: NamedTensor,
    pub real_labels: Vec<i64>,
    /// In the order they ran: `d1`, `g1`, `d2`, `g2`, …
    pub steps: Vec<StepInput>,
    /// Each step's loss, in the same order.
    pub losses: Vec<f64>,
    /// The fake batch of each D step (`fake_d1`, …; G's output in training mode), then D's
    /// outputs on the real and the fake batch of each D step (`d_real_d1`, `d_fake_d1`, …).
    pub fakes: Vec<NamedTensor>,
    /// Gradients of D's trainable tensors in the first D step.
    pub grads_d1: Vec<NamedTensor>,
    /// Gradients of G's trainable tensors in the first G step.
    pub grads_g1: Vec<NamedTensor>,
    pub final_g: Vec<NamedTensor>,
    pub final_d: Vec<NamedTensor>,
}

/// Every float tensor of a module (weights and running state), by module path.
struct Values<B: Backend> {
    path: Vec<String>,
    out: Vec<NamedTensor>,
    _b: std::marker::PhantomData<B>,
}

impl<B: Backend> ModuleVisitor<B> for Values<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.out.push(named(self.path.join("."), param.val()));
    }
}

/// The gradient of every trainable tensor of a module that has one, by module path.
struct Grads<'a, B: AutodiffBackend> {
    path: Vec<String>,
    grads: &'a GradientsParams,
    out: Vec<NamedTensor>,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Grads<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            self.out.push(named(self.path.join("."), g));
        }
    }
}

fn named<B: Backend, const D: usize>(name: String, t: Tensor<B, D>) -> NamedTensor {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 data");
    NamedTensor { name, shape, data }
}

/// Every float tensor of `module` in eval form (`valid()` first syncs the running state's
/// pending updates, which a visit of the training module would not see).
fn values<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M) -> Vec<NamedTensor> {
    let mut v = Values::<B::InnerBackend> {
        path: Vec::new(),
        out: Vec::new(),
        _b: std::marker::PhantomData,
    };
    module.valid().visit(&mut v);
    v.out
}

fn grads_of<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> Vec<NamedTensor> {
    let mut v = Grads::<B> {
        path: Vec::new(),
        grads,
        out: Vec::new(),
        _b: std::marker::PhantomData,
    };
    module.visit(&mut v);
    v.out
}

/// Runs the exchange on backend `B` (see the module docs).
pub fn run_step_case<B: TrainBackend>(
    config: &ModelConfig,
    spec: StepCaseSpec,
    device: &B::Device,
) -> StepCase {
    let (mut g, mut d) = config.init::<B>(spec.seed, device);
    let init_g = values::<B, _>(&g);
    let init_d = values::<B, _>(&d);
    let adam = || {
        AdamConfig::new()
            .with_beta_1(spec.beta_1)
            .with_beta_2(spec.beta_2)
            .with_epsilon(spec.epsilon)
    };
    let (mut opt_g, mut opt_d) = (adam().init(), adam().init());
    let mut latents = LatentSampler::for_config(config, spec.seed + 1);
    let n = spec.batch;
    let mut rng = SeededRng::new(spec.seed + 2);
    let real_data = rng.uniform_vec(n * 3 * 32 * 32, -1.0, 1.0);
    let real = tensor_from_vec::<B, 4>(real_data.clone(), [n, 3, 32, 32], device);
    let classes = config.num_classes().max(1);
    let real_labels: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    let real_labels_t = int_tensor_from_vec::<B, 1>(real_labels.clone(), [n], device);
    let to_vec_f = |t: Tensor<B, 2>| t.into_data().convert::<f32>().into_vec::<f32>().unwrap();
    let to_vec_i = |t: Tensor<B, 1, Int>| t.into_data().convert::<i64>().into_vec::<i64>().unwrap();
    let (mut steps, mut losses, mut fakes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut grads_d1, mut grads_g1) = (Vec::new(), Vec::new());
    for it in 1..=spec.iterations {
        let l = latents.sample::<B>(n, device);
        steps.push(StepInput {
            name: format!("d{it}"),
            z: to_vec_f(l.z.clone()),
            labels: to_vec_i(l.labels.clone()),
        });
        let fake = g.forward(l.z, l.labels.clone()).detach();
        fakes.push(named(format!("fake_d{it}"), fake.clone()));
        let (d_real, d_fake) = (
            d.forward(real.clone(), real_labels_t.clone()),
            d.forward(fake, l.labels),
        );
        fakes.push(named(format!("d_real_d{it}"), d_real.clone()));
        fakes.push(named(format!("d_fake_d{it}"), d_fake.clone()));
        let loss = hinge_d_loss(d_real, d_fake);
        losses.push(loss.clone().into_scalar().elem::<f64>());
        let grads = GradientsParams::from_grads(loss.backward(), &d);
        if it == 1 {
            grads_d1 = grads_of::<B, _>(&d, &grads);
        }
        d = opt_d.step(spec.lr, d, grads);

        let l = latents.sample::<B>(n, device);
        steps.push(StepInput {
            name: format!("g{it}"),
            z: to_vec_f(l.z.clone()),
            labels: to_vec_i(l.labels.clone()),
        });
        let loss = hinge_g_loss(d.forward(g.forward(l.z, l.labels.clone()), l.labels));
        losses.push(loss.clone().into_scalar().elem::<f64>());
        let grads = GradientsParams::from_grads(loss.backward(), &g);
        if it == 1 {
            grads_g1 = grads_of::<B, _>(&g, &grads);
        }
        g = opt_g.step(spec.lr, g, grads);
    }
    StepCase {
        spec,
        z_dim: config.z_dim(),
        init_g,
        init_d,
        real: NamedTensor {
            name: "real".into(),
            shape: vec![n, 3, 32, 32],
            data: real_data,
        },
        real_labels,
        steps,
        losses,
        fakes,
        grads_d1,
        grads_g1,
        final_g: values::<B, _>(&g),
        final_d: values::<B, _>(&d),
    }
}

/// A tensor summarised for the committed fixture: its L2 norm, its sum, and the entries at
/// [`probe_indices`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub name: String,
    pub shape: Vec<usize>,
    pub norm: f64,
    pub sum: f64,
    pub probes: Vec<f64>,
}

/// Eight spread entries of a tensor of `len` values (the same rule as the torch script:
/// `floor(i · (len − 1) / 7)` for `i = 0..8`, fewer when `len < 8`).
pub fn probe_indices(len: usize) -> Vec<usize> {
    if len <= 8 {
        return (0..len).collect();
    }
    (0..8).map(|i| i * (len - 1) / 7).collect()
}

impl NamedTensor {
    /// Its [`Summary`] (sums in f64).
    pub fn summary(&self) -> Summary {
        let norm = self
            .data
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        Summary {
            name: self.name.clone(),
            shape: self.shape.clone(),
            norm,
            sum: self.data.iter().map(|&v| v as f64).sum(),
            probes: probe_indices(self.data.len())
                .into_iter()
                .map(|i| self.data[i] as f64)
                .collect(),
        }
    }
}

impl StepCase {
    /// `final − initial` of every float tensor of G (first) and of D (second), by name.
    pub fn deltas(&self) -> (Vec<NamedTensor>, Vec<NamedTensor>) {
        let diff = |init: &[NamedTensor], fin: &[NamedTensor]| -> Vec<NamedTensor> {
            init.iter()
                .zip(fin)
                .map(|(a, b)| {
                    assert_eq!(a.name, b.name, "tensors visited in a different order");
                    NamedTensor {
                        name: a.name.clone(),
                        shape: a.shape.clone(),
                        data: b.data.iter().zip(&a.data).map(|(y, x)| y - x).collect(),
                    }
                })
                .collect()
        };
        (
            diff(&self.init_g, &self.final_g),
            diff(&self.init_d, &self.final_d),
        )
    }
}

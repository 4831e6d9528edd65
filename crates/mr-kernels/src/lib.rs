//! Training ops of the memorization-rejection toolkit as a burn backend extension.
//!
//! A profile of the gate's training step (DCGAN-small width 32 on `Autodiff<Flex>`, batch 32,
//! one thread; `results/bench/models.md`) spent about a quarter of its time in the generator's
//! batch norms: the layer composed of burn ops (mean, subtract, square, mean, divide, scale,
//! shift, and the backward of each) broadcasts a `[1, C, 1, 1]` statistic over `[N, C, H, W]`,
//! a pattern burn-flex's binary ops walk element by element through a strided iterator.
//!
//! The convolutions were next (conv2d backward 21 % and the transposed convolution 11 % of the
//! same profile, much of it burn-flex re-laying out strided views): [`conv`] runs them as
//! im2col + faer GEMM, forward and both backward products.
//!
//! The generators' nearest ×2 upsampling followed by a 3×3 convolution runs by output phases
//! ([`upconv`]: one 2×2 convolution and an interleave, about half the multiply-adds, no
//! upsampled tensor), and the critics' leaky ReLU is one op each way instead of three — or,
//! after a convolution, part of it ([`conv2d_lrelu`]: applied while each image group's output is
//! in cache, its gradient while each group's output gradient is gathered).
//!
//! [`TrainOps`] is the extension: a backend trait with the fused ops (training-mode batch norm,
//! forward and its closed-form backward; convolution and transposed convolution, forward and
//! the input/weight/bias gradients; a convolution followed by a leaky ReLU; leaky ReLU; the
//! phase interleave), following burn's pattern
//! for custom kernels —
//! implemented
//! - for burn's `Flex` CPU backend with the host kernels of [`host`] and [`conv`] (batch norm:
//!   two passes over the data per direction, f64 accumulation; f32 convolutions with groups 1
//!   and dilation 1 — others fall back to burn's ops),
//! - for `Autodiff<B>` as one graph node whose backward calls `B`'s backward op,
//! - for every other backend (CUDA, ndarray) by the trait's default methods: the same burn ops
//!   the layer used before, so nothing changes there but that the backward is the closed form.
//!
//! Models stay generic: they ask for `B: TrainOps` where they asked for `B: Backend`.
//!
//! [`infer`] holds the embedders' inference kernels (banded im2col + faer GEMM with fused bias
//! and activation, pooling, concatenation on CHW images; mr-embed runs Inception-v3,
//! EfficientNet-Lite0 and its small CNN on them), so the workspace has one kernel crate under
//! both mr-embed and mr-models.

mod autodiff;
pub mod conv;
mod fallback;
#[cfg(feature = "flex")]
mod flex;
pub mod host;
pub mod infer;
pub mod upconv;

pub use upconv::{upsample2, upsample2_conv2d};

/// Seeded values for the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    /// Uniform values in `[-1, 1)` from a 64-bit LCG seeded with `seed`.
    pub fn uniform(mut seed: u64) -> impl FnMut() -> f32 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }
}

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::{Tensor, TensorPrimitive};

/// Forward result of the training-mode batch norm.
#[derive(Debug)]
pub struct BnOut<B: Backend> {
    /// `[N, C, H, W]`: `(x − mean) / sqrt(var + eps)`, then `· gamma + beta` when affine.
    pub y: FloatTensor<B>,
    /// `[C]`: the batch mean over (N, H, W) (not tracked by autodiff).
    pub mean: FloatTensor<B>,
    /// `[C]`: the biased batch variance over (N, H, W) (not tracked by autodiff).
    pub var: FloatTensor<B>,
}

/// Gradients of the training-mode batch norm.
#[derive(Debug)]
pub struct BnGrads<B: Backend> {
    /// `[N, C, H, W]`.
    pub x: FloatTensor<B>,
    /// `[C]`: Σ dy · x̂ (the scale's gradient; computed even when not affine).
    pub gamma: FloatTensor<B>,
    /// `[C]`: Σ dy (the shift's gradient).
    pub beta: FloatTensor<B>,
}

/// Which gradients of a convolution the graph needs (a parent that does not require one is not
/// computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvNeeds {
    pub x: bool,
    pub weight: bool,
    pub bias: bool,
}

impl ConvNeeds {
    /// All three.
    pub const ALL: Self = Self {
        x: true,
        weight: true,
        bias: true,
    };
}

/// Gradients of a convolution (those asked for by [`ConvNeeds`]).
#[derive(Debug)]
pub struct ConvGrads<B: Backend> {
    /// Same shape as the input.
    pub x: Option<FloatTensor<B>>,
    /// Same shape as the weight.
    pub weight: Option<FloatTensor<B>>,
    /// `[C_out]`.
    pub bias: Option<FloatTensor<B>>,
}

/// The backend extension: fused training ops with host kernels where the backend has them.
pub trait TrainOps: Backend {
    /// Training-mode batch norm of `x` `[N, C, H, W]` over (N, H, W), with an optional affine
    /// `(gamma, beta)` (`[C]` each).
    fn batch_norm_train(
        x: FloatTensor<Self>,
        affine: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
        eps: f64,
    ) -> BnOut<Self> {
        fallback::batch_norm_train::<Self>(x, affine, eps)
    }

    /// Gradients of [`TrainOps::batch_norm_train`] given the output gradient `dy`, from the
    /// input and the forward's batch statistics (closed form:
    /// `dx = gamma / sqrt(var + eps) · (dy − mean(dy) − x̂ · mean(dy · x̂))`).
    fn batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: Option<FloatTensor<Self>>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        eps: f64,
        dy: FloatTensor<Self>,
    ) -> BnGrads<Self> {
        fallback::batch_norm_train_backward::<Self>(x, gamma, mean, var, eps, dy)
    }

    /// 2-D convolution, `x` `[N, C_in, H, W]`, `weight` `[C_out, C_in, kh, kw]`, `bias`
    /// `[C_out]` (burn's `conv2d`; on an autodiff backend one graph node whose backward is
    /// [`TrainOps::conv2d_train_backward`]).
    fn conv2d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, bias, options)
    }

    /// The gradients of [`TrainOps::conv2d_train`] given the output gradient `dy`.
    fn conv2d_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvOptions<2>,
        need: ConvNeeds,
    ) -> ConvGrads<Self> {
        fallback::conv2d_train_backward::<Self>(x, weight, dy, options, need)
    }

    /// 2-D convolution followed by a leaky ReLU of `slope` (`> 0`): the values of
    /// [`TrainOps::conv2d_train`] then [`TrainOps::leaky_relu_train`], as one op (on `Flex` the
    /// activation is applied while each image group's output is in cache, and the backward
    /// applies its gradient while gathering each group's output gradient — two passes over the
    /// activations fewer each way; on an autodiff backend one graph node whose backward is
    /// [`TrainOps::conv2d_lrelu_train_backward`]).
    fn conv2d_lrelu_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
        slope: f64,
    ) -> FloatTensor<Self> {
        fallback::conv2d_lrelu::<Self>(x, weight, bias, options, slope)
    }

    /// The gradients of [`TrainOps::conv2d_lrelu_train`] given its output `y` (activated) and
    /// the output gradient `dy`: the convolution's gradients of `y < 0 ? slope·dy : dy`. For
    /// `slope > 0` that is burn's derivative (`z < 0`, `z` the pre-activation) except where
    /// `slope·z` rounds to `−0` (`|z|` below `1.4e-45 / slope`), where the identity branch is
    /// taken.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_lrelu_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        y: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvOptions<2>,
        slope: f64,
        need: ConvNeeds,
    ) -> ConvGrads<Self> {
        fallback::conv2d_lrelu_train_backward::<Self>(x, weight, y, dy, options, slope, need)
    }

    /// Transposed 2-D convolution, `x` `[N, C_in, H, W]`, `weight` `[C_in, C_out, kh, kw]`,
    /// `bias` `[C_out]` (burn's `conv_transpose2d`).
    fn conv_transpose2d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvTransposeOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv_transpose2d(x, weight, bias, options)
    }

    /// The gradients of [`TrainOps::conv_transpose2d_train`] given the output gradient `dy`.
    fn conv_transpose2d_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvTransposeOptions<2>,
        need: ConvNeeds,
    ) -> ConvGrads<Self> {
        fallback::conv_transpose2d_train_backward::<Self>(x, weight, dy, options, need)
    }

    /// Leaky ReLU of a flattened (1-D) tensor, `x < 0 ? slope·x : x` (burn's `leaky_relu`; on an
    /// autodiff backend one graph node whose backward is [`TrainOps::leaky_relu_train_backward`]).
    fn leaky_relu_train(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        fallback::leaky_relu::<Self>(x, slope)
    }

    /// The gradient of [`TrainOps::leaky_relu_train`] (1-D `x` and `dy`): `x < 0 ? slope·dy : dy`
    /// (burn's derivative: at `x = 0` the identity branch).
    fn leaky_relu_train_backward(
        x: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        slope: f64,
    ) -> FloatTensor<Self> {
        fallback::leaky_relu_backward::<Self>(x, dy, slope)
    }

    /// The phase interleave of [`upsample2_conv2d`]: `ys` `[N, 4·C, H + 1, W + 1]` →
    /// `[N, C, 2H, 2W]`, `y[n, c, 2i + a, 2j + b] = ys[n, (2a + b)·C + c, i + a, j + b]`.
    fn phase_interleave(ys: FloatTensor<Self>) -> FloatTensor<Self> {
        upconv::interleave_prim::<Self>(ys)
    }

    /// The adjoint of [`TrainOps::phase_interleave`]: `dy` `[N, C, 2H, 2W]` →
    /// `[N, 4·C, H + 1, W + 1]`, zero where no phase reads.
    fn phase_interleave_backward(dy: FloatTensor<Self>) -> FloatTensor<Self> {
        upconv::deinterleave_prim::<Self>(dy)
    }
}

#[cfg(feature = "ndarray")]
impl TrainOps for burn::backend::NdArray {}

#[cfg(feature = "cuda")]
impl TrainOps for burn::backend::Cuda {}

/// Start burn's CUDA backend on the default device and read one value back, before any real
/// work: where the driver or a GPU is missing, burn's CUDA runtime panics in a worker thread
/// (cudarc cannot load `libcuda`) and the program ends with two backtraces. Here that panic is
/// caught and its first line returned as the error, for one `error:` line. (The project forbids
/// `unsafe`, so the driver library is not probed directly.)
#[cfg(feature = "cuda")]
pub fn check_cuda_device() -> Result<(), String> {
    use std::sync::{Arc, Mutex};
    let first: Arc<Mutex<Option<String>>> = Arc::default();
    let hook = std::panic::take_hook();
    {
        let first = first.clone();
        std::panic::set_hook(Box::new(move |info| {
            let mut f = first.lock().unwrap_or_else(|e| e.into_inner());
            if f.is_none() {
                let p = info.payload();
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                *f = Some(msg);
            }
        }));
    }
    let r = std::panic::catch_unwind(|| {
        let device = Default::default();
        let t = burn::tensor::Tensor::<burn::backend::Cuda, 1>::ones([1], &device);
        t.into_data().to_vec::<f32>().ok()
    });
    std::panic::set_hook(hook);
    match r {
        Ok(Some(v)) if v == [1.0] => Ok(()),
        Ok(v) => Err(format!(
            "the CUDA device read back {v:?} for a one-element tensor of ones"
        )),
        Err(_) => {
            let msg = first
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_default();
            // cudarc's message goes on with every library name it tried
            let msg = msg
                .split(" - ")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            Err(format!(
                "this binary was built with the `cuda` feature, but burn's CUDA backend could \
                 not start ({msg}): run it where an NVIDIA GPU and driver are installed, or build \
                 it without `--features cuda` to run on the CPU"
            ))
        }
    }
}

static REFERENCE: AtomicBool = AtomicBool::new(false);

/// Makes [`batch_norm_train`] (and every fused op) run the burn-op reference instead, process
/// wide — for side-by-side benchmarks (`cargo xtask bench models`); off by default.
pub fn use_reference_ops(on: bool) {
    REFERENCE.store(on, Ordering::Relaxed);
}

/// Whether the burn-op reference runs instead of the fused ops: [`use_reference_ops`] was
/// called with `true`, or the environment has `MR_KERNELS=reference` (read once; for
/// side-by-side timings of whole programs such as `mr-train`).
pub fn reference_ops() -> bool {
    static ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    REFERENCE.load(Ordering::Relaxed)
        || *ENV.get_or_init(|| std::env::var("MR_KERNELS").is_ok_and(|v| v == "reference"))
}

/// Training-mode batch norm on tensors: `(y, mean, var)` with `mean`/`var` `[C]` (biased) and
/// not tracked. See [`TrainOps::batch_norm_train`].
pub fn batch_norm_train<B: TrainOps>(
    x: Tensor<B, 4>,
    affine: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
    eps: f64,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    if reference_ops() {
        return fallback::batch_norm_tensors(x, affine, eps);
    }
    let out = B::batch_norm_train(
        x.into_primitive().tensor(),
        affine.map(|(g, b)| (g.into_primitive().tensor(), b.into_primitive().tensor())),
        eps,
    );
    (
        Tensor::from_primitive(TensorPrimitive::Float(out.y)),
        Tensor::from_primitive(TensorPrimitive::Float(out.mean)),
        Tensor::from_primitive(TensorPrimitive::Float(out.var)),
    )
}

/// The burn-op reference of [`batch_norm_train`] (what every backend without host kernels
/// runs; on an autodiff backend it is differentiated op by op). For tests and benchmarks.
pub fn batch_norm_train_reference<B: Backend>(
    x: Tensor<B, 4>,
    affine: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
    eps: f64,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    fallback::batch_norm_tensors(x, affine, eps)
}

fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// 2-D convolution through [`TrainOps::conv2d_train`] (host kernels on `Flex`, one autodiff
/// node on `Autodiff<B>`); burn's `conv2d` when [`reference_ops`] is on.
pub fn conv2d<B: TrainOps>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    if reference_ops() {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    Tensor::from_primitive(TensorPrimitive::Float(B::conv2d_train(
        float(x),
        float(weight),
        bias.map(float),
        options,
    )))
}

/// A 2-D convolution followed by a leaky ReLU through [`TrainOps::conv2d_lrelu_train`] (one
/// op each way; see there); a slope that is not `> 0` (where the output's sign no longer tells
/// the pre-activation's) runs [`conv2d`] then [`leaky_relu`]; with [`reference_ops`] on, burn's
/// `conv2d` and `leaky_relu`.
pub fn conv2d_lrelu<B: TrainOps>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
    slope: f64,
) -> Tensor<B, 4> {
    if reference_ops() || !(slope > 0.0 && slope.is_finite()) {
        return leaky_relu(conv2d(x, weight, bias, options), slope);
    }
    Tensor::from_primitive(TensorPrimitive::Float(B::conv2d_lrelu_train(
        float(x),
        float(weight),
        bias.map(float),
        options,
        slope,
    )))
}

/// Leaky ReLU through [`TrainOps::leaky_relu_train`] (one pass each way on `Flex`, one
/// autodiff node); burn's `leaky_relu` (three ops each way) when [`reference_ops`] is on.
pub fn leaky_relu<B: TrainOps, const D: usize>(x: Tensor<B, D>, slope: f64) -> Tensor<B, D> {
    if reference_ops() {
        return burn::tensor::activation::leaky_relu(x, slope);
    }
    let dims = x.dims();
    let flat: Tensor<B, 1> = x.reshape([dims.iter().product::<usize>()]);
    let y = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(B::leaky_relu_train(
        float(flat),
        slope,
    )));
    y.reshape(dims)
}

/// Transposed 2-D convolution through [`TrainOps::conv_transpose2d_train`]; burn's
/// `conv_transpose2d` when [`reference_ops`] is on.
pub fn conv_transpose2d<B: TrainOps>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<B, 4> {
    if reference_ops() {
        return burn::tensor::module::conv_transpose2d(x, weight, bias, options);
    }
    Tensor::from_primitive(TensorPrimitive::Float(B::conv_transpose2d_train(
        float(x),
        float(weight),
        bias.map(float),
        options,
    )))
}

//! [`TrainOps`] on `Autodiff<B>`: each fused op (batch norm, convolution, transposed
//! convolution) is one graph node whose backward calls the inner backend's backward op
//! (burn's pattern for custom kernels with autodiff); a convolution computes only the
//! gradients its tracked parents need.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::{BnGrads, BnOut, ConvGrads, ConvNeeds, TrainOps};

/// An untracked autodiff tensor holding an inner backend's primitive.
fn constant<B: TrainOps, C: CheckpointStrategy>(x: FloatTensor<B>) -> FloatTensor<Autodiff<B, C>> {
    Tensor::<Autodiff<B, C>, 1>::from_inner(Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(
        x,
    )))
    .into_primitive()
    .tensor()
}

/// Batch norm with an affine `(γ, β)`: parents x, γ, β.
#[derive(Debug)]
struct BatchNormAffine;

/// Batch norm without affine: parent x.
#[derive(Debug)]
struct BatchNormPlain;

/// What the backward needs besides the input: γ (affine only), the batch statistics, eps.
type BnState<B> = (
    NodeId,
    Option<FloatTensor<B>>,
    FloatTensor<B>,
    FloatTensor<B>,
    f64,
);

fn bn_grads<B: TrainOps>(
    state: BnState<B>,
    dy: FloatTensor<B>,
    checkpointer: &mut Checkpointer,
) -> BnGrads<B> {
    let (x_state, gamma, mean, var, eps) = state;
    let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
    B::batch_norm_train_backward(x, gamma, mean, var, eps, dy)
}

impl<B: TrainOps> Backward<B, 3> for BatchNormAffine {
    type State = BnState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let g = bn_grads::<B>(ops.state, dy, checkpointer);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, g.x);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, g.gamma);
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, g.beta);
        }
    }
}

impl<B: TrainOps> Backward<B, 1> for BatchNormPlain {
    type State = BnState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let g = bn_grads::<B>(ops.state, dy, checkpointer);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, g.x);
        }
    }
}

/// A convolution's options: plain, plain followed by a leaky ReLU (with the activated output
/// and the slope, which its backward reads), or transposed.
#[derive(Debug, Clone)]
enum ConvKind<B: Backend> {
    Plain(ConvOptions<2>),
    PlainLrelu(ConvOptions<2>, FloatTensor<B>, f64),
    Transposed(ConvTransposeOptions<2>),
}

/// What a convolution's backward needs: its input, its weight, its options.
type ConvState<B> = (FloatTensor<B>, FloatTensor<B>, ConvKind<B>);

fn conv_grads<B: TrainOps>(
    state: ConvState<B>,
    dy: FloatTensor<B>,
    need: ConvNeeds,
) -> ConvGrads<B> {
    let (x, w, kind) = state;
    match kind {
        ConvKind::Plain(o) => B::conv2d_train_backward(x, w, dy, o, need),
        ConvKind::PlainLrelu(o, y, slope) => {
            B::conv2d_lrelu_train_backward(x, w, y, dy, o, slope, need)
        }
        ConvKind::Transposed(o) => B::conv_transpose2d_train_backward(x, w, dy, o, need),
    }
}

/// A convolution with bias: parents x, weight, bias.
#[derive(Debug)]
struct ConvBias;

/// A convolution without bias: parents x, weight.
#[derive(Debug)]
struct ConvPlain;

/// The backward of both convolution nodes: parents `[x, weight]` or `[x, weight, bias]`, each
/// gradient computed only for a tracked parent.
fn conv_backward<B: TrainOps, const N: usize>(ops: Ops<ConvState<B>, N>, grads: &mut Gradients) {
    let tracked = |i: usize| ops.parents.get(i).is_some_and(Option::is_some);
    let need = ConvNeeds {
        x: tracked(0),
        weight: tracked(1),
        bias: tracked(2),
    };
    let dy = grads.consume::<B>(&ops.node);
    let g = conv_grads::<B>(ops.state, dy, need);
    for (node, grad) in ops.parents.into_iter().zip([g.x, g.weight, g.bias]) {
        if let (Some(node), Some(grad)) = (node, grad) {
            grads.register::<B>(node.id, grad);
        }
    }
}

impl<B: TrainOps> Backward<B, 3> for ConvBias {
    type State = ConvState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        conv_backward::<B, 3>(ops, grads);
    }
}

impl<B: TrainOps> Backward<B, 2> for ConvPlain {
    type State = ConvState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        conv_backward::<B, 2>(ops, grads);
    }
}

/// The graph node of a convolution whose inner-backend output is `y`.
fn conv_node<B: TrainOps, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    w: FloatTensor<Autodiff<B, C>>,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
    kind: ConvKind<B>,
    y: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let state = (x.primitive.clone(), w.primitive.clone(), kind);
    match bias {
        Some(b) => match ConvBias
            .prepare::<C>([x.node.clone(), w.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        },
        None => match ConvPlain
            .prepare::<C>([x.node.clone(), w.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        },
    }
}

/// Leaky ReLU: parent x; the backward needs x and the slope.
#[derive(Debug)]
struct LeakyRelu;

impl<B: TrainOps> Backward<B, 1> for LeakyRelu {
    type State = (FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            let (x, slope) = ops.state;
            grads.register::<B>(node.id, B::leaky_relu_train_backward(x, dy, slope));
        }
    }
}

/// The phase interleave of the upsample-and-convolve: parent ys; a pure permutation, so its
/// backward needs no state.
#[derive(Debug)]
struct PhaseInterleave;

impl<B: TrainOps> Backward<B, 1> for PhaseInterleave {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            grads.register::<B>(node.id, B::phase_interleave_backward(dy));
        }
    }
}

impl<B: TrainOps, C: CheckpointStrategy> TrainOps for Autodiff<B, C> {
    fn batch_norm_train(
        x: FloatTensor<Self>,
        affine: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
        eps: f64,
    ) -> BnOut<Self> {
        let out = B::batch_norm_train(
            x.primitive.clone(),
            affine
                .as_ref()
                .map(|(g, b)| (g.primitive.clone(), b.primitive.clone())),
            eps,
        );
        let gamma = affine.as_ref().map(|(g, _)| g.primitive.clone());
        let state = |x_state| (x_state, gamma, out.mean.clone(), out.var.clone(), eps);
        let y = match &affine {
            Some((g, b)) => match BatchNormAffine
                .prepare::<C>([x.node.clone(), g.node.clone(), b.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let x_state = prep.checkpoint(&x);
                    prep.finish(state(x_state), out.y)
                }
                OpsKind::UnTracked(prep) => prep.finish(out.y),
            },
            None => match BatchNormPlain
                .prepare::<C>([x.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let x_state = prep.checkpoint(&x);
                    prep.finish(state(x_state), out.y)
                }
                OpsKind::UnTracked(prep) => prep.finish(out.y),
            },
        };
        BnOut {
            y,
            mean: constant::<B, C>(out.mean),
            var: constant::<B, C>(out.var),
        }
    }

    fn conv2d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let y = B::conv2d_train(
            x.primitive.clone(),
            weight.primitive.clone(),
            bias.as_ref().map(|b| b.primitive.clone()),
            options.clone(),
        );
        conv_node::<B, C>(x, weight, bias, ConvKind::Plain(options), y)
    }

    fn conv2d_lrelu_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
        slope: f64,
    ) -> FloatTensor<Self> {
        let y = B::conv2d_lrelu_train(
            x.primitive.clone(),
            weight.primitive.clone(),
            bias.as_ref().map(|b| b.primitive.clone()),
            options.clone(),
            slope,
        );
        let kind = ConvKind::PlainLrelu(options, y.clone(), slope);
        conv_node::<B, C>(x, weight, bias, kind, y)
    }

    fn conv_transpose2d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvTransposeOptions<2>,
    ) -> FloatTensor<Self> {
        let y = B::conv_transpose2d_train(
            x.primitive.clone(),
            weight.primitive.clone(),
            bias.as_ref().map(|b| b.primitive.clone()),
            options.clone(),
        );
        conv_node::<B, C>(x, weight, bias, ConvKind::Transposed(options), y)
    }

    fn phase_interleave(ys: FloatTensor<Self>) -> FloatTensor<Self> {
        let y = B::phase_interleave(ys.primitive.clone());
        PhaseInterleave
            .prepare::<C>([ys.node.clone()])
            .compute_bound()
            .stateless(y)
    }

    fn leaky_relu_train(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        let y = B::leaky_relu_train(x.primitive.clone(), slope);
        match LeakyRelu
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x.primitive.clone(), slope), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

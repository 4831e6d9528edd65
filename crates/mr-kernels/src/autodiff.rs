//! [`TrainOps`] on `Autodiff<B>`: each fused op is one graph node whose backward calls the
//! inner backend's backward op (burn's pattern for custom kernels with autodiff).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::{BnGrads, BnOut, TrainOps};

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
}

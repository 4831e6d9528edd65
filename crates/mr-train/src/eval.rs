//! In-training evaluation: a fixed latent set → uint8 images → FID and C_T with the evaluation
//! embedder, plus C_T and the NN-distance picture in the rejection embedder's space.

use std::path::Path;
use std::time::Instant;

use crate::error::{Context, Result, TrainError};
use burn::prelude::*;
use mr_data::ImageSet;
use mr_embed::pipeline::embed_u8_images;
use mr_embed::Embedder;
use mr_metrics::ct::{ct, CtParams};
use mr_metrics::fid::fid_features;
use mr_metrics::kid::{kid, KidParams};
use mr_metrics::Features;
use mr_models::TrainOps;
use mr_models::{Generator, LatentSampler, SeededRng};
use mr_nn::{Metric, NnIndex};
use serde::Serialize;

use crate::reject::{to_pixels, Rejector};
use crate::{step_seed, BadInput, Stream};

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// One evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalRow {
    pub step: usize,
    /// FID against the configured reference (evaluation embedder).
    pub fid: f64,
    /// C_T (evaluation embedder).
    pub ct: f64,
    /// KID (polynomial kernel, evaluation embedder) against the FID reference: mean and std over
    /// 100 subsets of half the smaller set (at most 1,000).
    pub kid: f64,
    pub kid_std: f64,
    /// Mean cosine NN distance generated → train in the evaluation space.
    pub nn_gen: f64,
    /// Mean cosine NN distance test → train in the evaluation space (the same at every step: the
    /// level a generator that neither copies nor strays would reach).
    pub nn_test: f64,
    /// C_T in the rejection embedder's space (when a rejector exists and it is asked for).
    pub ct_mr: Option<f64>,
    /// Mean cosine NN distance generated → train in the rejection space.
    pub nn_mean_mr: Option<f64>,
    /// Fraction of generated samples within the guideline τ of a training image (rejection space).
    pub within_guide_mr: Option<f64>,
    pub seconds: f64,
}

/// Embedded reference sets and the fixed latents.
pub struct Evaluator<B: Backend> {
    embedder: Box<dyn Embedder<B>>,
    train: Features,
    test: Features,
    fid_ref_is_test: bool,
    /// Test features in the rejection space.
    test_mr: Option<Features>,
    /// Exact NN index of the training features (evaluation space).
    train_index: mr_nn::ExactIndex,
    /// Mean NN distance test → train (evaluation space).
    nn_test: f64,
    samples: usize,
    batch: usize,
    cells: usize,
    seed: u64,
    num_classes: usize,
    z_dim: usize,
}

fn embed_set<B: Backend>(
    e: &dyn Embedder<B>,
    set: &ImageSet,
    batch: usize,
    cache: Option<&Path>,
    device: &B::Device,
    what: &str,
) -> Result<Features> {
    let f = mr_embed::pipeline::embed_set(e, set, batch, cache, device)?.0;
    Ok(Features::new(f, e.feature_dim(), what).map_err(|e| BadInput(e.to_string()))?)
}

impl<B: TrainOps> Evaluator<B> {
    /// Embeds the training and test sets (through the cache in `cache` when given).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        embedder: Box<dyn Embedder<B>>,
        train: &ImageSet,
        test: &ImageSet,
        rejector: Option<&Rejector<B>>,
        cfg: &crate::TrainConfig,
        cache: Option<&Path>,
        device: &B::Device,
    ) -> Result<Self> {
        crate::trainer::check_set(test, "test set")?;
        let model = cfg.model_config()?;
        let batch = cfg.eval.batch;
        let train_f = embed_set(embedder.as_ref(), train, batch, cache, device, "train")?;
        let test_f = embed_set(embedder.as_ref(), test, batch, cache, device, "test")?;
        let test_mr = match (rejector, cfg.eval.ct_in_mr_space) {
            (Some(r), true) => Some(embed_set(
                r.embedder(),
                test,
                cfg.mr.embed_batch,
                cache,
                device,
                "test (rejection space)",
            )?),
            _ => None,
        };
        let train_index = mr_nn::ExactIndex::new(train_f.view(), Metric::Cosine)?;
        let nn_test = mean(&train_index.search(test_f.view(), 1)?.nearest_distances());
        Ok(Self {
            embedder,
            train_index,
            nn_test,
            train: train_f,
            test: test_f,
            fid_ref_is_test: cfg.eval.fid_ref == crate::config::FidRef::Test,
            test_mr,
            samples: cfg.eval.samples,
            batch,
            cells: cfg.eval.cells,
            seed: cfg.seed,
            num_classes: model.num_classes(),
            z_dim: model.z_dim(),
        })
    }

    /// The evaluation embedder's id.
    pub fn embedder_id(&self) -> String {
        self.embedder.id()
    }

    /// The fixed evaluation samples of `g` as uint8 `[N, 32, 32, 3]` and their labels (classes
    /// cycle `0, 1, …` for a conditional model).
    pub fn generate(&self, g: &Generator<B>, device: &B::Device) -> Result<(Vec<u8>, Vec<i64>)> {
        generate_u8(
            g,
            self.samples,
            self.batch,
            self.num_classes,
            self.z_dim,
            step_seed(self.seed, u64::MAX, 0, Stream::Eval),
            device,
        )
    }

    /// FID and C_T of `g` at `step`.
    pub fn evaluate(
        &self,
        g: &Generator<B>,
        rejector: Option<&Rejector<B>>,
        step: usize,
        device: &B::Device,
    ) -> Result<EvalRow> {
        let t0 = Instant::now();
        let (pixels, _) = self.generate(g, device)?;
        let n = self.samples;
        let gen = embed_u8_images(
            self.embedder.as_ref(),
            &pixels,
            n,
            32,
            32,
            self.batch,
            device,
        )?;
        let gen = Features::new(gen, self.embedder.feature_dim(), "generated")
            .map_err(|e| BadInput(e.to_string()))?;
        let reference = if self.fid_ref_is_test {
            &self.test
        } else {
            &self.train
        };
        let fid = fid_features(reference, &gen).context("FID")?.fid;
        let kid_params = KidParams {
            subsets: 100,
            subset_size: (reference.n().min(gen.n()).min(2000) / 2).max(2),
            seed: self.seed,
            ..KidParams::default()
        };
        let kid = kid(reference, &gen, &kid_params).context("KID")?;
        let nn_gen = mean(&self.train_index.search(gen.view(), 1)?.nearest_distances());
        let params = CtParams {
            cells: self.cells,
            metric: Metric::Cosine,
            seed: self.seed,
            n_init: 4,
            tau_c: None,
        };
        let ct_eval = ct(&self.train, &self.test, &gen, &params)
            .context("C_T")?
            .ct;
        let (mut ct_mr, mut nn_mean, mut within) = (None, None, None);
        if let Some(r) = rejector {
            let d = r.embedder().feature_dim();
            let f = embed_u8_images(r.embedder(), &pixels, n, 32, 32, self.batch, device)?;
            let gen_mr = Features::new(f, d, "generated (rejection space)")
                .map_err(|e| BadInput(e.to_string()))?;
            let index = mr_nn::ExactIndex::new(r.train_features().view(), Metric::Cosine)?;
            let dist = index.search(gen_mr.view(), 1)?.nearest_distances();
            nn_mean = Some(mean(&dist));
            within =
                Some(dist.iter().filter(|&&x| x <= r.guide).count() as f64 / dist.len() as f64);
            if let Some(test_mr) = &self.test_mr {
                ct_mr = Some(
                    ct(r.train_features(), test_mr, &gen_mr, &params)
                        .context("C_T (rejection space)")?
                        .ct,
                );
            }
        }
        Ok(EvalRow {
            step,
            fid,
            ct: ct_eval,
            kid: kid.kid_mean,
            kid_std: kid.kid_std,
            nn_gen,
            nn_test: self.nn_test,
            ct_mr,
            nn_mean_mr: nn_mean,
            within_guide_mr: within,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

/// `n` samples of `g` from latents seeded `seed`, as uint8 NHWC, with their labels.
pub fn generate_u8<B: TrainOps>(
    g: &Generator<B>,
    n: usize,
    batch: usize,
    num_classes: usize,
    z_dim: usize,
    seed: u64,
    device: &B::Device,
) -> Result<(Vec<u8>, Vec<i64>)> {
    let labels: Vec<i64> = (0..n)
        .map(|i| {
            if num_classes > 0 {
                (i % num_classes) as i64
            } else {
                0
            }
        })
        .collect();
    generate_u8_labels(g, &labels, batch, z_dim, seed, device)
}

/// Samples of `g` for the given labels, as uint8 NHWC.
pub fn generate_u8_labels<B: TrainOps>(
    g: &Generator<B>,
    labels: &[i64],
    batch: usize,
    z_dim: usize,
    seed: u64,
    device: &B::Device,
) -> Result<(Vec<u8>, Vec<i64>)> {
    let mut rng = SeededRng::new(seed);
    let mut sampler = LatentSampler::new(rng.next_u64(), z_dim, 0);
    let mut out = Vec::with_capacity(labels.len() * 32 * 32 * 3);
    for chunk in labels.chunks(batch.max(1)) {
        let l = sampler.sample_with_labels::<B>(chunk.to_vec(), device);
        let x = to_pixels(g.forward(l.z, l.labels)).round();
        let [m, c, h, w] = x.dims();
        let v = x
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| TrainError::Failed(format!("reading generated images back: {e:?}")))?;
        for i in 0..m {
            for p in 0..h * w {
                for ch in 0..c {
                    out.push(v[i * c * h * w + ch * h * w + p] as u8);
                }
            }
        }
    }
    Ok((out, labels.to_vec()))
}

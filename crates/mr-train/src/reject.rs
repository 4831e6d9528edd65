//! The rejection test: embed generated images, find the cosine distance to the nearest training
//! image on the device, keep the sample iff `d > τ`.

use std::path::Path;
use std::time::Instant;

use crate::error::{Context, Result};
use burn::tensor::{backend::Backend, Tensor};
use mr_data::ImageSet;
use mr_embed::Embedder;
use mr_metrics::nnd::{loo_distances, quantile_sorted};
use mr_metrics::Features;
use mr_nn::{DeviceIndex, Metric};

use crate::config::TauRule;
use crate::BadInput;

/// Training-set features on the device plus the threshold per class.
pub struct Rejector<B: Backend> {
    embedder: Box<dyn Embedder<B>>,
    index: DeviceIndex<B>,
    train_features: Features,
    /// τ per class (one entry when the rule is global).
    tau: Vec<f64>,
    /// The guideline τ (mean leave-one-out NN distance), always computed.
    pub guide: f64,
}

impl<B: Backend> std::fmt::Debug for Rejector<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejector")
            .field("embedder", &self.embedder.id())
            .field("n_train", &self.index.len())
            .field("tau", &self.tau)
            .field("guide", &self.guide)
            .finish()
    }
}

/// Distances of one candidate batch and where the time went.
#[derive(Debug, Clone, Default)]
pub struct Distances {
    /// Cosine distance of each candidate to its nearest training image.
    pub d: Vec<f32>,
    pub embed_s: f64,
    pub nn_s: f64,
}

/// `[N, 3, H, W]` generator output in [-1, 1] → pixel values in [0, 255] (not quantised).
pub fn to_pixels<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    x.add_scalar(1.0).mul_scalar(127.5).clamp(0.0, 255.0)
}

impl<B: Backend> Rejector<B> {
    /// Embeds the training set (through the feature cache in `cache_dir` when given), uploads
    /// the features and sets τ by `rule` (a per-class rule needs the set's labels).
    pub fn new(
        embedder: Box<dyn Embedder<B>>,
        train: &ImageSet,
        rule: TauRule,
        batch: usize,
        cache_dir: Option<&Path>,
        device: &B::Device,
    ) -> Result<Self> {
        let (feats, _) =
            mr_embed::pipeline::embed_set(embedder.as_ref(), train, batch, cache_dir, device)?;
        let labels: Option<Vec<i64>> = train
            .labels
            .as_ref()
            .map(|l| l.iter().map(|&x| i64::from(x)).collect());
        let labels = labels.as_deref();
        let dim = embedder.feature_dim();
        let train_features = Features::new(feats, dim, "training features")
            .map_err(|e| BadInput(format!("rejection embedder: {e}")))?;
        let loo = loo_distances(&train_features, Metric::Cosine)
            .map_err(|e| BadInput(format!("τ from the training set: {e}")))?;
        let guide = loo.iter().sum::<f64>() / loo.len() as f64;
        let tau = match rule {
            TauRule::Value(v) => vec![v],
            TauRule::Guide => vec![guide],
            TauRule::Quantile(q) => {
                let mut s = loo.clone();
                s.sort_by(f64::total_cmp);
                vec![quantile_sorted(&s, q)]
            }
            TauRule::ClassQuantile(q) => {
                let labels = labels.ok_or_else(|| {
                    BadInput("mr.tau = class-quantile needs a labelled training set".into())
                })?;
                let classes = labels.iter().copied().max().unwrap_or(0) as usize + 1;
                (0..classes)
                    .map(|c| {
                        let mut s: Vec<f64> = loo
                            .iter()
                            .zip(labels)
                            .filter(|(_, &l)| l as usize == c)
                            .map(|(d, _)| *d)
                            .collect();
                        if s.is_empty() {
                            // a class without training images: nothing to copy, keep everything
                            0.0
                        } else {
                            s.sort_by(f64::total_cmp);
                            quantile_sorted(&s, q)
                        }
                    })
                    .collect()
            }
        };
        let index = DeviceIndex::new(train_features.data(), dim, device)
            .context("uploading the training features")?;
        Ok(Self {
            embedder,
            index,
            train_features,
            tau,
            guide,
        })
    }

    /// τ for a sample of class `label` (global rules ignore it).
    pub fn tau_for(&self, label: i64) -> f64 {
        if self.tau.len() == 1 {
            self.tau[0]
        } else {
            self.tau.get(label.max(0) as usize).copied().unwrap_or(0.0)
        }
    }

    /// The thresholds (one per class, or one).
    pub fn taus(&self) -> &[f64] {
        &self.tau
    }

    /// Whether rejection is off (every τ is 0: every sample is kept).
    pub fn keeps_everything(&self) -> bool {
        self.tau.iter().all(|&t| t <= 0.0)
    }

    /// The embedder's id.
    pub fn embedder_id(&self) -> String {
        self.embedder.id()
    }

    /// The embedder.
    pub fn embedder(&self) -> &dyn Embedder<B> {
        self.embedder.as_ref()
    }

    /// The training features in the rejection space.
    pub fn train_features(&self) -> &Features {
        &self.train_features
    }

    /// NN distances of generator outputs (`[N, 3, H, W]` in [-1, 1]).
    pub fn distances(&self, images: Tensor<B, 4>) -> Result<Distances> {
        let t0 = Instant::now();
        // on an asynchronous backend the embedding may still be running at t1; the split between
        // embed_s and nn_s is then approximate, their sum is not
        let feats = self.embedder.embed(to_pixels(images));
        let t1 = Instant::now();
        let nn = self.index.nearest(feats)?;
        let t2 = Instant::now();
        Ok(Distances {
            d: nn.distances,
            embed_s: (t1 - t0).as_secs_f64(),
            nn_s: (t2 - t1).as_secs_f64(),
        })
    }

    /// Indices of the candidates to keep (`d > τ(label)`).
    pub fn accept(&self, d: &[f32], labels: &[i64]) -> Vec<usize> {
        if self.keeps_everything() {
            return (0..d.len()).collect();
        }
        d.iter()
            .zip(labels)
            .enumerate()
            .filter(|(_, (&d, &l))| f64::from(d) > self.tau_for(l))
            .map(|(i, _)| i)
            .collect()
    }
}

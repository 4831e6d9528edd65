//! Data inputs of the metrics commands: feature files, FID statistics, or images that are
//! embedded on the way in.
//!
//! One argument (`--train`, `--test`, `--gen`, FID's A/B, …) is, in this order:
//! * an existing `.npy`: float `[N, D]` features, or uint8 images `[N, H, W, 3]` (`[N, H, W]` and
//!   `[N, H, W, 1]` are grayscale, repeated to RGB);
//! * an existing `.npz`: pytorch-fid statistics (`mu`, `sigma`; FID only), else uint8 images;
//! * an existing folder of PNG/JPEG images, flat or one subfolder per class (labels);
//! * a named dataset of the `mr-data` registry (`cifar10-train`, `cifar10.1`, `cifar10-test[cat]:500`).
//!
//! Images are embedded with `--embed <model>` through the feature cache (`<data root>/features`),
//! so a set is embedded once per embedder. Every loaded input records where it came from in a
//! JSON object (and, for images, the embedder id and the cache outcome).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use mr_data::npy::{read_npy, read_npz, NpyArray, NpyData, NpyRows};
use mr_data::{registry, ImageSet};
use mr_embed::paths::feature_cache_dir;
use mr_embed::zoo::{embedder_weights, load_embedder_with};
use mr_embed::Embedder;
use mr_embed::{Preprocess, Resize, Scale};
use mr_metrics::fid::Stats;
use mr_metrics::{Features, MetricsError};
use serde_json::{json, Map, Value};

/// The backend images are embedded on: CPU (`flex`), or CUDA with the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub type B = burn::backend::Flex;
#[cfg(feature = "cuda")]
pub type B = burn::backend::Cuda;

type Device = burn::tensor::Device<B>;

/// How image inputs are embedded (shared by every subcommand).
#[derive(Args, Debug, Clone)]
pub struct EmbedOpts {
    /// Embedder for image inputs: a name of `mr_embed::EMBEDDERS` (e.g. inception-fid,
    /// effnet-lite0) or a full embedder id `name+weights+preprocessing`.
    #[arg(
        long = "embed",
        visible_alias = "model",
        value_name = "MODEL",
        default_value = "inception-fid"
    )]
    pub model: String,
    /// Resize of image inputs, replacing the embedder's own: bilinear (torch `interpolate`,
    /// align_corners=False; the FID reference), bicubic-aa (PIL bicubic with antialiasing, as
    /// clean-fid) or native (no resize; images must already have the input size). Recorded in
    /// the embedder id.
    #[arg(long, value_name = "NAME", value_parser = parse_resize)]
    pub resize: Option<Resize>,
    /// Pixel scaling of image inputs, replacing the embedder's own: div128 (x/128 − 1, the TF
    /// graph's; the FID reference), div127.5 (x/127.5 − 1, pytorch-fid's), lite, imagenet.
    /// Recorded in the embedder id.
    #[arg(long, value_name = "NAME", value_parser = parse_scale)]
    pub scale: Option<Scale>,
    /// Images per forward pass when embedding.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Feature-cache folder [default: <data root>/features].
    #[arg(long, value_name = "DIR")]
    pub feature_cache: Option<PathBuf>,
    /// Embed every image set afresh; neither read nor write the feature cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Data root holding the named datasets and the weights [default: $MR_DATA_DIR, else the
    /// workspace's datasets/cache].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn parse_resize(s: &str) -> Result<Resize, String> {
    Preprocess::parse_resize(s)
        .ok_or_else(|| format!("unknown resize '{s}' (bilinear, bicubic-aa, native)"))
}

fn parse_scale(s: &str) -> Result<Scale, String> {
    Preprocess::parse_scale(s)
        .ok_or_else(|| format!("unknown scale '{s}' (div128, div127.5, lite, imagenet)"))
}

/// Class labels of a set: ids, and the class names they index (empty when unnamed).
#[derive(Debug, Clone)]
pub struct Labels {
    pub ids: Vec<i64>,
    pub names: Vec<String>,
}

/// A loaded input, ready for a metric: features (or FID statistics), labels and provenance.
#[derive(Debug)]
pub struct Ready {
    pub role: &'static str,
    pub data: ReadyData,
    pub labels: Option<Labels>,
    /// Provenance: source, kind, n, dim; for images also shape, variant, content hash, embedder.
    pub info: Value,
    /// The pixels of an image input, kept when [`Inputs::keep_images`] was asked for.
    pub images: Option<ImageSet>,
}

#[derive(Debug)]
pub enum ReadyData {
    Features(Features),
    Stats(Box<Stats>),
}

impl Ready {
    /// The features; statistics files are only accepted where `allow_stats` was set.
    pub fn features(&self) -> &Features {
        match &self.data {
            ReadyData::Features(f) => f,
            ReadyData::Stats(_) => unreachable!("statistics are only loaded for fid"),
        }
    }
}

enum Data {
    Features(Features),
    Stats(Box<Stats>),
    Images(ImageSet),
}

struct Loaded {
    role: &'static str,
    spec: String,
    kind: &'static str,
    data: Data,
}

/// `spec` as a float `.npy` feature file that can be read by rows ([`NpyRows`]), or `None` for
/// anything else (images, dataset names, other arrays), which is read as usual.
pub fn npy_rows(spec: &str) -> Option<NpyRows> {
    let path = Path::new(spec);
    (path.is_file() && spec.to_ascii_lowercase().ends_with(".npy"))
        .then(|| NpyRows::open(path).ok())
        .flatten()
}

/// Collects the inputs of one command, then embeds the image inputs with one embedder.
pub struct Inputs {
    opts: EmbedOpts,
    root: PathBuf,
    /// Registry name of the embedder (`opts.model` up to the first `+`).
    name: String,
    device: Device,
    /// Loaded by [`Inputs::load_embedder`] (or [`Inputs::finish`]) once an image input is read.
    net: Option<Box<dyn Embedder<B>>>,
    loaded: Vec<Loaded>,
    keep_images: bool,
    stream_features: bool,
}

impl Inputs {
    /// Checks the embedder name (not its weights: feature-only commands need none).
    pub fn new(opts: &EmbedOpts) -> Result<Self> {
        let root = registry::data_root(opts.data_dir.as_deref());
        let name = opts.model.split('+').next().unwrap_or_default().to_string();
        embedder_weights(&name, &root)?;
        Ok(Self {
            opts: opts.clone(),
            root,
            name,
            device: Device::default(),
            net: None,
            loaded: Vec::new(),
            keep_images: false,
            stream_features: false,
        })
    }

    /// Reduce float `.npy` feature files to FID statistics while reading them in blocks of rows,
    /// never holding the rows (for `fid` without `--bootstrap`): memory stays one block and Σ
    /// whatever N is.
    pub fn stream_features(&mut self) {
        self.stream_features = true;
    }

    /// Keep the pixels of image inputs in [`Ready::images`] (for commands that draw them).
    pub fn keep_images(&mut self) {
        self.keep_images = true;
    }

    /// Whether any input loaded so far is a set of images.
    pub fn has_images(&self) -> bool {
        self.loaded
            .iter()
            .any(|l| matches!(l.data, Data::Images(_)))
    }

    /// Whether the input loaded as `role` is a set of images with class labels.
    pub fn labelled(&self, role: &str) -> bool {
        self.loaded
            .iter()
            .any(|l| l.role == role && matches!(&l.data, Data::Images(s) if s.labels.is_some()))
    }

    /// Read one input (see the module docs). `allow_stats`: a `.npz` with `mu`/`sigma` is FID
    /// statistics. Image inputs are checked here (RGB, non-empty) and embedded by
    /// [`Inputs::finish`].
    pub fn load(&mut self, role: &'static str, spec: &str, allow_stats: bool) -> Result<()> {
        // a float `.npy` feature file (anything else, images included, is read as usual)
        let rows = (self.stream_features && allow_stats)
            .then(|| npy_rows(spec))
            .flatten();
        let (kind, data) = match rows {
            Some(rows) => (
                "features (streamed to statistics)",
                Data::Stats(Box::new(Stats::from_npy(rows)?)),
            ),
            None => read_input(role, spec, allow_stats, &self.root)?,
        };
        self.loaded.push(Loaded {
            role,
            spec: spec.to_string(),
            kind,
            data,
        });
        Ok(())
    }

    /// Load the embedder if an image input needs it and it is not loaded yet: call it before
    /// reading a large set, so that missing weights are reported first.
    pub fn load_embedder(&mut self) -> Result<()> {
        if self.has_images() && self.net.is_none() {
            #[cfg(feature = "cuda")]
            mr_embed::check_cuda_device().map_err(anyhow::Error::msg)?;
            self.net = Some(self.load_net()?);
        }
        Ok(())
    }

    fn load_net(&self) -> Result<Box<dyn Embedder<B>>> {
        // `--embed name+weights+preprocessing` chooses the preprocessing too
        let (mut resize, mut scale) = (self.opts.resize, self.opts.scale);
        if let Some(prep) = self.opts.model.splitn(3, '+').nth(2) {
            let p = Preprocess::parse_id(prep).ok_or_else(|| {
                MetricsError::Input(format!(
                    "embedder id {}: cannot read the preprocessing '{prep}' (e.g. bilinear299-div128)",
                    self.opts.model
                ))
            })?;
            if resize.is_some_and(|r| r != p.resize) || scale.is_some_and(|s| s != p.scale) {
                bail!(MetricsError::Input(format!(
                    "--resize/--scale contradict the embedder id {}",
                    self.opts.model
                )));
            }
            (resize, scale) = (Some(p.resize), Some(p.scale));
        }
        let net = load_embedder_with::<B>(&self.name, &self.root, &self.device, resize, scale)?;
        if self.opts.model.contains('+') && net.id() != self.opts.model {
            bail!(MetricsError::Input(format!(
                "embedder id {} is not the loaded {}; give a name ({}) or that id",
                self.opts.model,
                net.id(),
                mr_embed::EMBEDDERS.join(", ")
            )));
        }
        Ok(net)
    }

    /// Embed the image inputs after checking that every input has the same feature dimension.
    /// Returns the inputs in load order and the embedder id (when images were embedded).
    pub fn finish(mut self) -> Result<(Vec<Ready>, Option<String>)> {
        self.load_embedder()?;
        let net = self.net.as_deref();
        self.check_dims(net)?;
        let cache = (!self.opts.no_cache).then(|| {
            self.opts
                .feature_cache
                .clone()
                .unwrap_or_else(|| feature_cache_dir(&self.root))
        });
        let mut out = Vec::with_capacity(self.loaded.len());
        for l in self.loaded {
            let mut info = Map::new();
            info.insert("source".into(), json!(l.spec));
            info.insert("kind".into(), json!(l.kind));
            let (data, labels, images) = match l.data {
                Data::Features(f) => {
                    info.insert("n".into(), json!(f.n()));
                    info.insert("dim".into(), json!(f.dim()));
                    (ReadyData::Features(f), None, None)
                }
                Data::Stats(s) => {
                    if let Some(n) = s.n {
                        info.insert("n".into(), json!(n));
                    }
                    info.insert("dim".into(), json!(s.d));
                    (ReadyData::Stats(s), None, None)
                }
                Data::Images(set) => {
                    let net = net.expect("loaded with the first image input");
                    let f = embed_set(
                        net,
                        &set,
                        l.role,
                        &mut info,
                        cache.as_deref(),
                        &self.opts,
                        &self.device,
                    )?;
                    let labels = set.labels.as_ref().map(|ids| Labels {
                        ids: ids.iter().map(|&x| i64::from(x)).collect(),
                        names: set.class_names.clone(),
                    });
                    (
                        ReadyData::Features(f),
                        labels,
                        self.keep_images.then_some(set),
                    )
                }
            };
            out.push(Ready {
                role: l.role,
                data,
                labels,
                info: Value::Object(info),
                images,
            });
        }
        Ok((out, net.map(|n| n.id())))
    }

    /// Every input must have one feature dimension; images get the embedder's.
    fn check_dims(&self, net: Option<&dyn Embedder<B>>) -> Result<()> {
        let dims: Vec<(String, usize)> = self
            .loaded
            .iter()
            .map(|l| match &l.data {
                Data::Features(f) => (format!("{} ({}, features)", l.role, l.spec), f.dim()),
                Data::Stats(s) => (format!("{} ({}, statistics)", l.role, l.spec), s.d),
                Data::Images(_) => {
                    let net = net.expect("loaded for images");
                    (
                        format!("{} ({}, images embedded with {})", l.role, l.spec, net.id()),
                        net.feature_dim(),
                    )
                }
            })
            .collect();
        if let Some((first, d0)) = dims.first() {
            if let Some((other, d)) = dims.iter().find(|(_, d)| d != d0) {
                let hint = if net.is_some() {
                    "; features and images must come from the same embedder (see --embed)"
                } else {
                    ""
                };
                bail!(MetricsError::Input(format!(
                    "dimension mismatch: {first} has {d0} dims, {other} has {d}{hint}"
                )));
            }
        }
        Ok(())
    }
}

/// Embed one image set (through the cache when there is one) and record provenance in `info`.
fn embed_set(
    net: &dyn Embedder<B>,
    set: &ImageSet,
    role: &str,
    info: &mut Map<String, Value>,
    cache: Option<&Path>,
    opts: &EmbedOpts,
    device: &Device,
) -> Result<Features> {
    let [n, h, w, _] = set.shape();
    let batch = usize::try_from(opts.batch).unwrap_or(usize::MAX);
    let t0 = Instant::now();
    let (feats, outcome) = mr_embed::pipeline::embed_set(net, set, batch, cache, device)?;
    let outcome = outcome.as_str();
    let seconds = t0.elapsed().as_secs_f64();
    eprintln!(
        "{role}: {n} images of {} embedded with {} (feature cache: {outcome}, {seconds:.1} s)",
        set.source,
        net.id()
    );
    info.insert("n".into(), json!(n));
    info.insert("dim".into(), json!(net.feature_dim()));
    info.insert("image_shape".into(), json!([h, w, 3]));
    if let Some(v) = &set.variant {
        info.insert("variant".into(), json!(v));
    }
    if let Some(s) = set.seed {
        info.insert("subset_seed".into(), json!(s));
    }
    if set.labels.is_some() {
        info.insert("classes".into(), json!(set.class_names));
    }
    info.insert("content_hash".into(), json!(set.pixel_hash()));
    info.insert("embedder".into(), json!(net.id()));
    info.insert("feature_cache".into(), json!(outcome));
    info.insert("embed_seconds".into(), json!(seconds));
    let what = format!("{role} (embedded {})", set.source);
    Ok(Features::new(feats, net.feature_dim(), &what)?)
}

/// Whether a non-existing argument was meant as a path rather than a dataset name.
fn looks_like_path(spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    spec.contains('/')
        || spec.contains('\\')
        || [".npy", ".npz", ".png", ".jpg", ".jpeg"]
            .iter()
            .any(|e| lower.ends_with(e))
}

fn read_input(
    role: &str,
    spec: &str,
    allow_stats: bool,
    root: &Path,
) -> Result<(&'static str, Data)> {
    let path = Path::new(spec);
    let is_name = registry::DATASETS.iter().any(|d| d.name == spec);
    if !path.exists() || is_name {
        if !is_name && looks_like_path(spec) {
            bail!(MetricsError::Input(format!(
                "{spec}: no such file or folder (nor a dataset name; `cargo xtask datasets` lists them)"
            )));
        }
        let set = registry::load(spec, root)?;
        return Ok(("dataset", Data::Images(rgb(set, role)?)));
    }
    if path.is_dir() {
        if is_empty_image_dir(path)? {
            bail!(MetricsError::Input(format!(
                "{spec}: no .png/.jpg/.jpeg images in this folder (put them in it directly, or in \
                 one subfolder per class)"
            )));
        }
        let set = registry::load_path(path)?;
        return Ok(("folder", Data::Images(rgb(set, role)?)));
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "npy" => {
            let arr = read_npy(path)?;
            match arr.data {
                NpyData::U8(px) => {
                    let shape = match arr.shape.as_slice() {
                        [n, h, w] => [*n, *h, *w, 1],
                        [n, h, w, c] if *c == 1 || *c == 3 => [*n, *h, *w, *c],
                        s => bail!(MetricsError::Input(format!(
                            "{spec}: uint8 array of shape {s:?}; images must be [N, H, W, 3] \
                             (RGB) or [N, H, W] / [N, H, W, 1] (grayscale), features float [N, D]"
                        ))),
                    };
                    let set = ImageSet::new(px, shape, None, Vec::new(), spec)?;
                    Ok(("images-npy", Data::Images(rgb(set, role)?)))
                }
                data => {
                    let arr = NpyArray::new(arr.shape, data);
                    Ok(("features", Data::Features(Features::from_npy(arr, spec)?)))
                }
            }
        }
        "npz" => {
            let map = read_npz(path)?;
            if map.contains_key("mu") || map.contains_key("sigma") {
                if !allow_stats {
                    bail!(MetricsError::Input(format!(
                        "{spec}: a statistics file (mu, sigma) is only an input of `fid`; give \
                         features or images"
                    )));
                }
                drop(map);
                return Ok(("stats", Data::Stats(Box::new(Stats::load_npz(path)?))));
            }
            drop(map);
            let set = registry::load_path(path)?;
            Ok(("images-npz", Data::Images(rgb(set, role)?)))
        }
        _ => bail!(MetricsError::Input(format!(
            "{spec}: not a .npy/.npz file or an image folder (nor a dataset name)"
        ))),
    }
}

/// A folder with no image file in it or in any subfolder one level down.
fn is_empty_image_dir(dir: &Path) -> Result<bool> {
    let has_images =
        |d: &Path| -> Result<bool> { Ok(!mr_data::folder::list_images(d)?.is_empty()) };
    if has_images(dir)? {
        return Ok(false);
    }
    for entry in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))? {
        let p = entry
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
            .path();
        if p.is_dir() && has_images(&p)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Check an image set for embedding: non-empty, 3 channels (grayscale is repeated to RGB).
fn rgb(mut set: ImageSet, role: &str) -> Result<ImageSet> {
    let [n, h, w, c] = set.shape();
    if n == 0 || h == 0 || w == 0 {
        bail!(MetricsError::Input(format!(
            "{role}: {} holds no images (shape [{n}, {h}, {w}, {c}])",
            set.source
        )));
    }
    match c {
        3 => Ok(set),
        1 => {
            set.pixels = set.pixels.iter().flat_map(|&p| [p, p, p]).collect();
            set.channels = 3;
            Ok(set)
        }
        _ => bail!(MetricsError::Input(format!(
            "{role}: {} has {c}-channel images (shape [{n}, {h}, {w}, {c}]); expected RGB \
             [N, H, W, 3] or grayscale",
            set.source
        ))),
    }
}

/// Align the labels of `other` to `train`'s class numbering: by class name where both are
/// named (a folder's `cat/` is the dataset's `cat`), else by integer id (a folder named `3` is
/// class 3).
pub fn align_labels(train: &Labels, other: &Labels, role: &str) -> Result<Vec<i64>> {
    if train.names.is_empty() || other.names.is_empty() {
        return Ok(other.ids.clone());
    }
    let map: Vec<i64> = other
        .names
        .iter()
        .map(|name| {
            if let Some(i) = train.names.iter().position(|t| t == name) {
                return Ok(i as i64);
            }
            match name.parse::<usize>() {
                Ok(i) if i < train.names.len() => Ok(i as i64),
                _ => Err(MetricsError::Input(format!(
                    "{role}: class '{name}' is not a training class (classes: {})",
                    train.names.join(", ")
                ))),
            }
        })
        .collect::<Result<_, _>>()?;
    other
        .ids
        .iter()
        .map(|&i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| map.get(i).copied())
                .ok_or_else(|| {
                    anyhow::Error::new(MetricsError::Input(format!(
                        "{role}: label {i} has no class name"
                    )))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_align_by_name_then_id() {
        let train = Labels {
            ids: vec![0, 1, 2],
            names: vec!["airplane".into(), "bird".into(), "cat".into()],
        };
        let gen = Labels {
            ids: vec![0, 0, 1],
            names: vec!["cat".into(), "1".into()],
        };
        assert_eq!(align_labels(&train, &gen, "gen").unwrap(), vec![2, 2, 1]);
        let bad = Labels {
            ids: vec![0],
            names: vec!["dog".into()],
        };
        let e = align_labels(&train, &bad, "gen").unwrap_err().to_string();
        assert!(e.contains("'dog'"), "{e}");
        let unnamed = Labels {
            ids: vec![4, 5],
            names: vec![],
        };
        assert_eq!(align_labels(&train, &unnamed, "gen").unwrap(), vec![4, 5]);
    }

    #[test]
    fn path_like_arguments() {
        assert!(looks_like_path("out/gen"));
        assert!(looks_like_path("x.npy"));
        assert!(!looks_like_path("cifar10.1"));
        assert!(!looks_like_path("cifar10-train[cat]:500@3"));
    }
}

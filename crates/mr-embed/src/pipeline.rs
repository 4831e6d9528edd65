//! Batched feature extraction with a progress bar and an on-disk feature cache keyed by (pixel
//! hash, embedder id). [`embed_set`] is the one image→features path of the `mr-metrics` CLI,
//! `mr-train`'s evaluation and its rejection test; images come from `mr-data` (one decoder for
//! the workspace: [`mr_data::folder`], with its pinned JPEG decoder).

use std::path::{Path, PathBuf};

use burn::tensor::{backend::Backend, Tensor, TensorData};
use mr_data::npy::{read_npy, write_npy, NpyArray, NpyData};
use mr_data::ImageSet;

use crate::error::EmbedError;
use crate::preprocess::u8_nhwc_to_f32_nchw;
use crate::Embedder;

fn check_dims(images: &[u8], n: usize, h: usize, w: usize) -> Result<(), EmbedError> {
    if h == 0 || w == 0 {
        return Err(EmbedError::Input(format!("image size {h}x{w} is empty")));
    }
    if images.len() != n * h * w * 3 {
        return Err(EmbedError::Input(format!(
            "{} bytes do not hold {n} RGB images of {h}x{w} ({} bytes)",
            images.len(),
            n * h * w * 3
        )));
    }
    Ok(())
}

/// Embed `n` uint8 RGB images (`[n, h, w, 3]`) in batches of `batch`, returning `[n, D]` features
/// in row-major order.
pub fn embed_u8_images<B: Backend, E: Embedder<B> + ?Sized>(
    embedder: &E,
    images: &[u8],
    n: usize,
    h: usize,
    w: usize,
    batch: usize,
    device: &B::Device,
) -> Result<Vec<f32>, EmbedError> {
    check_dims(images, n, h, w)?;
    let pre = embedder.preprocess();
    if pre.resize == crate::Resize::None && (h != pre.size || w != pre.size) {
        return Err(EmbedError::Input(format!(
            "{} takes {s}x{s} images (it does not resize), got {h}x{w}",
            embedder.id(),
            s = pre.size
        )));
    }
    let batch = batch.max(1);
    let d = embedder.feature_dim();
    let mut out = Vec::with_capacity(n * d);
    let what = format!("embedding with {}", embedder.id());
    let pb = mr_data::progress::bar(n as u64, &what);
    if pb.is_hidden() {
        eprintln!("{what}: {n} images");
    }
    let per = h * w * 3;
    for start in (0..n).step_by(batch) {
        let m = batch.min(n - start);
        let chunk = &images[start * per..(start + m) * per];
        let x = u8_nhwc_to_f32_nchw(chunk, m, h, w);
        let x = Tensor::<B, 4>::from_data(TensorData::new(x, [m, 3, h, w]), device);
        let f = embedder.embed(x);
        let v = f
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| EmbedError::Input(format!("reading features back: {e:?}")))?;
        if v.len() != m * d {
            return Err(EmbedError::Input(format!(
                "embedder returned {} values for {m} images of dim {d}",
                v.len()
            )));
        }
        out.extend_from_slice(&v);
        pb.inc(m as u64);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// Hex sha256 of the image block and its dimensions: the dataset part of a cache key
/// ([`mr_data::imageset::pixel_hash`], the same as [`ImageSet::pixel_hash`] of the set).
pub fn content_hash(images: &[u8], n: usize, h: usize, w: usize) -> String {
    mr_data::imageset::pixel_hash(images, n, h, w, 3)
}

/// The cache file for (images, embedder id): `<dir>/<sanitised id>/<content hash>.npy`.
pub fn cache_path(dir: &Path, embedder_id: &str, content_hash: &str) -> PathBuf {
    let safe: String = embedder_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(safe).join(format!("{content_hash}.npy"))
}

/// Like [`embed_u8_images`], but reuses `<cache_dir>/<id>/<hash>.npy` when present (and of the
/// right shape) and writes it otherwise. Returns the features and whether they came from the cache.
#[allow(clippy::too_many_arguments)]
pub fn embed_u8_images_cached<B: Backend, E: Embedder<B> + ?Sized>(
    embedder: &E,
    images: &[u8],
    n: usize,
    h: usize,
    w: usize,
    batch: usize,
    device: &B::Device,
    cache_dir: &Path,
) -> Result<(Vec<f32>, bool), EmbedError> {
    check_dims(images, n, h, w)?;
    let d = embedder.feature_dim();
    let path = cache_path(cache_dir, &embedder.id(), &content_hash(images, n, h, w));
    if path.is_file() {
        let arr = read_npy(&path)?;
        if arr.shape == [n, d] {
            if let NpyData::F32(v) = arr.data {
                return Ok((v, true));
            }
        }
        eprintln!(
            "warning: ignoring feature cache {} (shape {:?}, expected [{n}, {d}] f32)",
            path.display(),
            arr.shape
        );
    }
    let feats = embed_u8_images(embedder, images, n, h, w, batch, device)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| EmbedError::io(parent, e))?;
    }
    write_npy(
        &path,
        &NpyArray::new(vec![n, d], NpyData::F32(feats.clone())),
    )?;
    Ok((feats, false))
}

/// Where the features of [`embed_set`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Read from the feature cache.
    Hit,
    /// Computed and written to the cache.
    Miss,
    /// Computed; no cache was given.
    Off,
}

impl CacheUse {
    /// `hit`, `miss` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
            CacheUse::Off => "off",
        }
    }
}

/// The features (`[n, embedder.feature_dim()]`, row-major) of the RGB image set `set`, embedded
/// in batches of `batch` — through the feature cache under `cache` when given, keyed by the
/// embedder's id and [`ImageSet::pixel_hash`].
pub fn embed_set<B: Backend, E: Embedder<B> + ?Sized>(
    embedder: &E,
    set: &ImageSet,
    batch: usize,
    cache: Option<&Path>,
    device: &B::Device,
) -> Result<(Vec<f32>, CacheUse), EmbedError> {
    let [n, h, w, c] = set.shape();
    if c != 3 {
        return Err(EmbedError::Input(format!(
            "{}: {c}-channel images; the embedders take RGB",
            set.source
        )));
    }
    match cache {
        Some(dir) => {
            let (f, hit) =
                embed_u8_images_cached(embedder, &set.pixels, n, h, w, batch, device, dir)?;
            Ok((f, if hit { CacheUse::Hit } else { CacheUse::Miss }))
        }
        None => Ok((
            embed_u8_images(embedder, &set.pixels, n, h, w, batch, device)?,
            CacheUse::Off,
        )),
    }
}

//! Batched feature extraction with a progress bar, parallel image decoding, and an on-disk
//! feature cache keyed by (image content hash, embedder id).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use burn::tensor::{backend::Backend, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use mr_data::npy::{read_npy, write_npy, NpyArray, NpyData};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::EmbedError;
use crate::preprocess::u8_nhwc_to_f32_nchw;
use crate::Embedder;

/// `n` RGB images of `h`×`w` pixels, `[n, h, w, 3]` uint8 in C order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct U8Images {
    pub data: Vec<u8>,
    pub n: usize,
    pub h: usize,
    pub w: usize,
}

impl U8Images {
    /// Check that `data` holds exactly `n·h·w·3` bytes.
    pub fn new(data: Vec<u8>, n: usize, h: usize, w: usize) -> Result<Self, EmbedError> {
        check_dims(&data, n, h, w)?;
        Ok(Self { data, n, h, w })
    }
}

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

/// A progress bar that draws only on a terminal; elsewhere the caller's log gets one line.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        ) {
            pb.set_style(style);
        }
        pb.set_message(what.to_string());
        pb
    } else {
        eprintln!("{what}: {len} images");
        ProgressBar::hidden()
    }
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
    let pb = progress_bar(n as u64, &format!("embedding with {}", embedder.id()));
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

/// Hex sha256 of the image block and its dimensions: the dataset part of a cache key.
pub fn content_hash(images: &[u8], n: usize, h: usize, w: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("u8-nhwc-rgb:{n}x{h}x{w}x3\n").as_bytes());
    hasher.update(images);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// Image files directly in `dir` or below it (png, jpg, jpeg, bmp), sorted by path.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, EmbedError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| EmbedError::io(&d, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| EmbedError::io(&d, e))?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Decode one image file to RGB8: `(pixels [h, w, 3], h, w)`.
pub fn decode_image(path: &Path) -> Result<(Vec<u8>, usize, usize), EmbedError> {
    let img = image::open(path).map_err(|e| EmbedError::Image {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    Ok((rgb.into_raw(), h as usize, w as usize))
}

/// Decode image files in parallel into one `[n, h, w, 3]` block; all must have the same size.
pub fn decode_images(paths: &[PathBuf]) -> Result<U8Images, EmbedError> {
    let decoded: Vec<(Vec<u8>, usize, usize)> = paths
        .par_iter()
        .map(|p| decode_image(p))
        .collect::<Result<_, _>>()?;
    let Some((h, w)) = decoded.first().map(|(_, h, w)| (*h, *w)) else {
        return Err(EmbedError::Input("no images to decode".into()));
    };
    let mut data = Vec::with_capacity(paths.len() * h * w * 3);
    for (p, (px, ph, pw)) in paths.iter().zip(decoded) {
        if (ph, pw) != (h, w) {
            return Err(EmbedError::Input(format!(
                "{}: image is {ph}x{pw}, the first one is {h}x{w}; all images must have one size",
                p.display()
            )));
        }
        data.extend_from_slice(&px);
    }
    U8Images::new(data, paths.len(), h, w)
}

//! Embedders by name: the one place binaries turn `--embed <name>` into a loaded network.
//!
//! `inception-fid` and `effnet-lite0` load their weights from the data root (`cargo xtask
//! fetch <name>` puts them there); a missing file is an [`EmbedError::WeightsNotFound`] that
//! says how to fetch it. Without `default_1.pt`, `inception-fid` also accepts pytorch-fid's
//! `pt_inception-2015-12-05-6726825d.pth` in the same folder (id tag `tf2015-ptfid`). `small-cnn` (CIFAR-10), `small-cnn-mnist` (MNIST) and `small-cnn-fmnist` (Fashion-MNIST) are trained in this project and their
//! weights ship inside the crate ([`small_cnn::VARIANTS`]); a file at
//! `<root>/weights/<name>/<weights file>` overrides them (tag `file-<sha256[..8]>`).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use mr_data::EmbedderName;

use crate::error::EmbedError;
use crate::inception;
use crate::paths::{fetch_hint, weight_file};
use crate::small_cnn::{self, SmallCnnEmbedder};
use crate::{EffNetLite0, Embedder, InceptionFid, Preprocess, Resize, Scale};

/// Names accepted by [`load_embedder`]: [`EmbedderName::ALL`] (every [`small_cnn::VARIANTS`]
/// name among them).
pub const EMBEDDERS: [&str; 5] = [
    EmbedderName::ALL[0].as_str(),
    EmbedderName::ALL[1].as_str(),
    EmbedderName::ALL[2].as_str(),
    EmbedderName::ALL[3].as_str(),
    EmbedderName::ALL[4].as_str(),
];

/// The weight file of embedder `name` under data root `root` (for `small-cnn`, the optional
/// override of the bundled weights).
pub fn embedder_weights(name: &str, root: &Path) -> Result<PathBuf, EmbedError> {
    let e: EmbedderName = name
        .parse()
        .map_err(|_| EmbedError::UnknownEmbedder(name.to_string()))?;
    Ok(e.weights_path(root))
}

/// Loads embedder `name` with its default preprocessing, weights from data root `root`
/// (`small-cnn`: the bundled weights unless `root` holds an override file).
pub fn load_embedder<B: Backend + 'static>(
    name: &str,
    root: &Path,
    device: &B::Device,
) -> Result<Box<dyn Embedder<B>>, EmbedError> {
    load_embedder_with(name, root, device, None, None)
}

/// [`load_embedder`] with the resize and/or the scaling of the embedder's default preprocessing
/// replaced (its input size stays). `inception-fid` and `effnet-lite0` accept every combination
/// (e.g. pytorch-fid's `div127.5`, clean-fid's `bicubic-aa`); `small-cnn` was trained on its own
/// (native 32×32, `div127.5`) and refuses others. The choice is part of [`Embedder::id`], so
/// feature caches and outputs record it.
pub fn load_embedder_with<B: Backend + 'static>(
    name: &str,
    root: &Path,
    device: &B::Device,
    resize: Option<Resize>,
    scale: Option<Scale>,
) -> Result<Box<dyn Embedder<B>>, EmbedError> {
    let path = embedder_weights(name, root)?;
    let choose = |default: Preprocess| Preprocess {
        resize: resize.unwrap_or(default.resize),
        scale: scale.unwrap_or(default.scale),
        ..default
    };
    if let Some(variant) = small_cnn::variant(name) {
        let net = if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| EmbedError::io(&path, e))?;
            let tag = format!("file-{}", &mr_data::imageset::sha256_bytes(&bytes)[..8]);
            SmallCnnEmbedder::<B>::from_bytes(&bytes, &variant.config(), &tag, device)
                .map_err(|e| EmbedError::Input(format!("{}: {e}", path.display())))?
                .named(variant)
        } else {
            SmallCnnEmbedder::<B>::bundled_variant(variant, device)?
        };
        let (default, wanted) = (*net.preprocess(), choose(*net.preprocess()));
        if wanted != default {
            return Err(EmbedError::Input(format!(
                "{name} was trained with a fixed preprocessing ({}); it cannot run with {}",
                default.id(),
                wanted.id()
            )));
        }
        return Ok(Box::new(net));
    }
    if name == "inception-fid" && !path.is_file() {
        // pytorch-fid's file, for users who have it instead (same weights, its own layout)
        let alt = weight_file(name, inception::PYTORCH_FID_FILE, root);
        if alt.is_file() {
            let net = InceptionFid::<B>::from_pytorch_fid(&alt, device)?;
            let wanted = choose(*net.preprocess());
            return Ok(Box::new(net.with_preprocess(wanted)));
        }
    }
    if !path.is_file() {
        return Err(EmbedError::WeightsNotFound {
            path,
            hint: fetch_hint(name),
        });
    }
    Ok(match name {
        "inception-fid" => {
            let net = InceptionFid::<B>::from_fid_helper(&path, device)?;
            let wanted = choose(*net.preprocess());
            Box::new(net.with_preprocess(wanted))
        }
        "effnet-lite0" => {
            let net = EffNetLite0::<B>::from_file(&path, device)?;
            let wanted = choose(*net.preprocess());
            Box::new(net.with_preprocess(wanted)?)
        }
        _ => return Err(EmbedError::UnknownEmbedder(name.to_string())),
    })
}

//! Where weights and feature caches live.
//!
//! The data root is the registry's ([`mr_data::registry::data_root`]): `$MR_DATA_DIR` if set,
//! else `datasets/cache` of the workspace (found by walking up to `datasets/manifest.toml`, so
//! tests run from a crate folder find it too). Weights are `<root>/weights/<name>/<file>`, as
//! written by `cargo xtask fetch <name>`; features are cached under `<root>/features/`.

use std::path::{Path, PathBuf};

/// The data root: `$MR_DATA_DIR`, else the workspace's `datasets/cache`.
pub fn data_root() -> PathBuf {
    mr_data::registry::data_root(None)
}

/// `<root>/weights/<name>/<file>`.
pub fn weight_file(name: &str, file: &str, root: &Path) -> PathBuf {
    root.join("weights").join(name).join(file)
}

/// `<root>/features`: the default feature-cache directory.
pub fn feature_cache_dir(root: &Path) -> PathBuf {
    root.join("features")
}

/// The fetched weight file `<data root>/weights/<name>/<file>`, or the message saying it is
/// missing and how to fetch it (tests print it when they skip).
pub fn fetched_weights(name: &str, file: &str) -> Result<PathBuf, String> {
    let p = weight_file(name, file, &data_root());
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{} not found; {}", p.display(), fetch_hint(name)))
    }
}

/// The command that fetches the weights of embedder `name`, for error messages.
pub fn fetch_hint(name: &str) -> String {
    format!("run `cargo xtask fetch {name}` (or set MR_DATA_DIR to the folder that holds weights/{name}/)")
}

//! Small helpers every reproduction stage shares: fetching, the GPU probe, progress bars,
//! file-name slugs, label files and mean ± std.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// `cargo xtask fetch <name>` with the manifest's default route.
pub(crate) fn fetch_entry(name: &str, data_dir: Option<PathBuf>) -> Result<()> {
    crate::fetch::run(&crate::fetch::FetchArgs {
        name: name.to_string(),
        from: None,
        variant: None,
        online: false,
        data_dir,
    })
}

/// Whether `nvidia-smi` lists a GPU.
pub(crate) fn cuda_gpu() -> bool {
    Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("GPU"))
        .unwrap_or(false)
}

/// The workspace's progress bar (`mr_data::progress`).
pub(crate) use mr_data::progress::bar as progress;

/// `s` with every character but ASCII letters, digits, `.` and `-` replaced by `_`.
pub(crate) fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An integer label file (`.npy`).
pub(crate) fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let arr =
        mr_data::npy::read_npy(path).with_context(|| format!("reading {}", path.display()))?;
    arr.to_i64()
        .with_context(|| format!("{}: labels are not integers", path.display()))
}

/// Mean and sample standard deviation of the finite values (NaN and 0 when there are none).
pub(crate) fn mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, 0.0);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
    (m, var.sqrt())
}

/// `config` (a training configuration's TOML text) with `[table] key` set to `value`. The edit
/// goes through `toml_edit`, so everything else — order, spacing, comments — stays byte for byte
/// (run keys hash the text), and a key that is not there is an error instead of a silent no-op.
pub(crate) fn set_key(
    config: &str,
    table: &str,
    key: &str,
    value: impl Into<toml_edit::Value>,
) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = config.parse().context("config is not valid TOML")?;
    let item = doc
        .get_mut(table)
        .and_then(|t| t.as_table_like_mut())
        .and_then(|t| t.get_mut(key))
        .and_then(|i| i.as_value_mut())
        .with_context(|| format!("config has no [{table}] {key}"))?;
    let decor = item.decor().clone();
    *item = value.into();
    *item.decor_mut() = decor;
    Ok(doc.to_string())
}

/// `config` without the `[table]` keys in `keys` (those present), the rest byte for byte.
pub(crate) fn remove_keys(config: &str, table: &str, keys: &[&str]) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = config.parse().context("config is not valid TOML")?;
    if let Some(t) = doc.get_mut(table).and_then(|t| t.as_table_like_mut()) {
        for k in keys {
            t.remove(k);
        }
    }
    Ok(doc.to_string())
}

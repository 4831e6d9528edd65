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

/// Welch's t of `b` against `a` (positive: `b` larger) and its Welch–Satterthwaite degrees of
/// freedom, over the finite values of each (NaN when either has fewer than 2).
pub(crate) fn welch(a: &[f64], b: &[f64]) -> (f64, f64) {
    let n = |v: &[f64]| v.iter().filter(|x| x.is_finite()).count() as f64;
    let (na, nb) = (n(a), n(b));
    if na < 2.0 || nb < 2.0 {
        return (f64::NAN, f64::NAN);
    }
    let (ma, sa) = mean_std(a);
    let (mb, sb) = mean_std(b);
    let (va, vb) = (sa * sa / na, sb * sb / nb);
    let t = (mb - ma) / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    (t, df)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_t_by_hand() {
        // scipy.stats.ttest_ind([1, 2, 3], [4, 6, 8], equal_var=False) → t = 3.0984, df = 2.9412
        let (t, df) = welch(&[1.0, 2.0, 3.0], &[4.0, 6.0, 8.0]);
        assert!((t - 3.098_386_676_965_933_6).abs() < 1e-9, "{t}");
        assert!((df - 2.941_176_470_588_235).abs() < 1e-9, "{df}");
        // non-finite values are left out, as mean_std leaves them out
        let (t2, df2) = welch(&[1.0, f64::NAN, 2.0, 3.0], &[4.0, 6.0, 8.0, f64::INFINITY]);
        assert_eq!((t2, df2), (t, df));
        // fewer than two values: no t
        assert!(welch(&[1.0], &[4.0, 6.0]).0.is_nan());
    }
}

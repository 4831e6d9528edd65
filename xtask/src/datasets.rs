//! `cargo xtask datasets [--json] [--data-dir DIR]`: every registered dataset name, whether it is
//! present under the data root, the variant it resolves to, its image count, classes and content
//! hash. Reading a set to count and hash it takes seconds (60,000 JPEG decodes for CIFAR-10), so
//! the results are cached in `<root>/.mr-datasets-index.json`, keyed by the variant and the
//! fetch stamp (a re-fetch invalidates them).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use mr_data::registry::{data_root, present_variant, DATASETS};
use serde::{Deserialize, Serialize};

#[derive(Debug, clap::Args)]
pub struct DatasetsArgs {
    /// Print one JSON array (keys: name, present, variant, count, classes, sha256, fetch).
    #[arg(long)]
    pub json: bool,
    /// Data root (default: $MR_DATA_DIR, else datasets/cache in the workspace).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub name: String,
    pub present: bool,
    pub variant: Option<String>,
    pub count: Option<usize>,
    pub classes: Option<Vec<String>>,
    pub sha256: Option<String>,
    /// What image `i` is: `official batch order`, `class-major …` or `as stored`.
    pub order: Option<String>,
    /// The command that fetches it.
    pub fetch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    key: String,
    count: usize,
    classes: Vec<String>,
    sha256: String,
    #[serde(default)]
    order: String,
}

const INDEX: &str = ".mr-datasets-index.json";

/// What identifies the bytes behind `name`: its variant plus the fetch stamp (or folder mtime),
/// and the stamp of the CIFAR-10 companion folder (batch order, exact sets).
fn cache_key(name: &str, variant: &str, root: &Path) -> String {
    let dir = match name {
        n if n.ends_with("-exact") => root.join(mr_data::registry::CIFAR10_META),
        n if n.starts_with("cifar10-") => root.join("cifar10").join(variant),
        n if n.starts_with("cifar100") => root.join("cifar100").join(variant),
        n if n.starts_with("cifar10.1") => root.join("cifar10.1"),
        n if n.starts_with("cifair") => root.join("cifair10"),
        n if n.starts_with("fashion") => root.join("fashion-mnist"),
        _ => root.join("mnist"),
    };
    let stamp = std::fs::read(dir.join(crate::fetch::STAMP))
        .map(|b| mr_data::imageset::sha256_bytes(&b))
        .unwrap_or_else(|_| {
            std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .map(|t| format!("{t:?}"))
                .unwrap_or_default()
        });
    let labels = std::fs::read(
        root.join(mr_data::registry::CIFAR10_META)
            .join(crate::fetch::STAMP),
    )
    .map(|b| mr_data::imageset::sha256_bytes(&b))
    .unwrap_or_default();
    format!("{variant}|{stamp}|{labels}")
}

pub fn rows(root: &Path) -> Vec<Row> {
    let index_path = root.join(INDEX);
    let mut index: BTreeMap<String, Cached> = std::fs::read_to_string(&index_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut changed = false;
    let mut out = Vec::new();
    for d in DATASETS {
        let fetch = mr_data::registry::fetch_command(d.fetch, root);
        let variant = present_variant(d.name, root);
        let mut row = Row {
            name: d.name.to_string(),
            present: variant.is_some(),
            variant: variant.clone(),
            count: None,
            classes: None,
            sha256: None,
            order: None,
            fetch,
            error: None,
        };
        if let Some(v) = &variant {
            let key = cache_key(d.name, v, root);
            let hit = index.get(d.name).filter(|c| c.key == key).cloned();
            let info = match hit {
                Some(c) => Ok(c),
                None => mr_data::registry::load(d.name, root).map(|set| {
                    changed = true;
                    let c = Cached {
                        key: key.clone(),
                        count: set.len(),
                        classes: set.class_names.clone(),
                        sha256: set.content_hash(),
                        order: set.order.describe().to_string(),
                    };
                    index.insert(d.name.to_string(), c.clone());
                    c
                }),
            };
            match info {
                Ok(c) => {
                    row.count = Some(c.count);
                    row.classes = Some(c.classes);
                    row.sha256 = Some(c.sha256);
                    row.order = Some(c.order);
                }
                Err(e) => row.error = Some(e.to_string()),
            }
        }
        out.push(row);
    }
    if changed {
        if let Ok(bytes) = serde_json::to_vec_pretty(&index) {
            let _ = mr_data::atomic::write_bytes_atomic(&index_path, &bytes);
        }
    }
    out
}

pub fn run(args: &DatasetsArgs) -> Result<()> {
    let root = data_root(args.data_dir.as_deref());
    let rows = rows(&root);
    let text = if args.json {
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        table(&root, &rows)
    };
    // a closed pipe (`| head`) is not an error
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn table(root: &Path, rows: &[Row]) -> String {
    let mut s = format!("data root: {}\n", root.display());
    s += &format!(
        "{:<20} {:<8} {:<12} {:>7} {:>7}  {:<16}  {:<20}  note\n",
        "name", "present", "variant", "count", "classes", "sha256", "order"
    );
    for r in rows {
        let note = match (&r.error, r.present) {
            (Some(e), _) => e.clone(),
            (None, false) => format!("run `{}`", r.fetch),
            _ => String::new(),
        };
        s += &format!(
            "{:<20} {:<8} {:<12} {:>7} {:>7}  {:<16}  {:<20}  {note}\n",
            r.name,
            if r.present { "yes" } else { "no" },
            r.variant.as_deref().unwrap_or("-"),
            r.count.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            r.classes
                .as_ref()
                .map(|c| c.len().to_string())
                .unwrap_or_else(|| "-".into()),
            r.sha256.as_deref().map(|s| &s[..16]).unwrap_or("-"),
            r.order.as_deref().unwrap_or("-"),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_list_every_name_with_its_fetch_command() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = rows(tmp.path());
        assert_eq!(rows.len(), DATASETS.len());
        for r in &rows {
            assert!(!r.present && r.count.is_none() && r.fetch.starts_with("cargo xtask fetch "));
        }
        let v = serde_json::to_value(&rows).unwrap();
        for key in [
            "name", "present", "variant", "count", "classes", "sha256", "order",
        ] {
            assert!(v[0].get(key).is_some(), "{key}");
        }
    }
}

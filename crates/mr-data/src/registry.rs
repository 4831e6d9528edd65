//! The named-dataset registry: `cifar10-train`, `cifar10.1`, … resolved against a data root.
//!
//! # Spec syntax
//! `NAME[CLASS,CLASS,…]:K@SEED`, every part after `NAME` optional:
//! * `cifar10-train[cat,dog]` — only those classes, labels renumbered in the order given;
//! * `cifar10-train:500` — a seeded random subset of 500 images (seed 0), kept in dataset order;
//!   `cifar10-train:500@7` uses seed 7. The seed is recorded in [`ImageSet::seed`].
//! * Both: `cifar10-train[cat]:100@3` (classes first, then the subset).
//! * `cifar10-test#0..846` — the images at official batch indices 0 to 845 (half-open range;
//!   `#5,17,9` lists indices, in that order), taken before the class filter and the subset. Only
//!   sets in [`Order::Batch`] take it (every CIFAR-10 set once its batch labels are fetched).
//!
//! A spec that is a path to an existing folder, `.npy` or `.npz` file is read directly
//! (folder: flat or one subfolder per class; see [`crate::folder`]).
//!
//! # Layout of the data root (written by `cargo xtask fetch`)
//! ```text
//! cifar10/{python,binary,jpeg-mirror}/   the official pickles, binary batches, or the JPEG mirror
//! cifar100/{python,binary}/
//! cifar10.1/cifar10.1_{v6,v4}_{data,labels}.npy
//! cifair10/                              ciFAIR-10 (CIFAR python layout)
//! mnist/, fashion-mnist/                 IDX files (plain or .gz; `mnist32-*` and
//!                                        `fashion-mnist32-*` read the same files, padded to 32×32 RGB)
//! weights/inception-fid/default_1.pt, weights/effnet-lite0/efficientnet-lite0-57934424.pth
//! foolbox-data/                          foolbox 3.3.4's sample images
//! ```
//! Where several CIFAR-10 variants are present the exact ones win: `python`, then `binary`, then
//! `jpeg-mirror` (lossy JPEG q75). The variant used is recorded in [`ImageSet::variant`].
//!
//! # CIFAR-10 order in the JPEG mirror, `cifar10-test-dedup` and the exact sets
//! The mirror stores `{train,test}/<class>/NNNN.jpg`, where NNNN counts the images of that class
//! in batch order. Batch index `i` is therefore file `rank(i)` of class `label(i)` — an exact
//! map *given the batch label sequence*, which the mirror does not contain and which
//! `cargo xtask fetch cifar10` puts in `cifar10/meta/` (the `cifar10-meta` companion: the
//! official `test_batch` and `data_batch_1..5` label lists, see `datasets/manifest.toml`). So:
//! * from `python`/`binary`, and from `jpeg-mirror` with `cifar10/meta/`, `cifar10-train` and
//!   `cifar10-test` are in official batch order (image `i` is batch index `i`, [`Order::Batch`]);
//!   `cifar10-test-dedup` removes exactly the 286 ciFAIR TestIDs (9,714 images);
//! * from `jpeg-mirror` alone they are class-major ([`Order::ClassMajor`]), and
//!   `cifar10-test-dedup` and `#` index selection are errors that say what to fetch (no guessing).
//!
//! `cifar10-test-dedup` keeps the 39 test images that ciFAIR lists as near-duplicates of *other
//! test* images (`duplicates_cifar10_test.csv`): C_T and the guideline use distances from test to
//! training images, which those pairs do not shorten; dropping one image of each pair would only
//! shrink the set. [`test_test_duplicates`] lists them for whoever wants them gone.
//!
//! `cifar10-test-exact` / `cifar10-train-exact` are the lossless pixels of `test_batch[0..846]`
//! and `data_batch_1[0..932]` (from truncated copies of the official pickles, in `cifar10/meta/`):
//! the same images as `cifar10-test#0..846` / `cifar10-train#0..932`, without the mirror's JPEG
//! loss — what `cargo xtask bench jpeg` measures the mirror's bias with.

use std::path::{Path, PathBuf};

use crate::cifar::{self, CifarKind, Split, CIFAR10_CLASSES};
use crate::embedder::EmbedderName;
use crate::error::DataError;
use crate::folder;
use crate::idx;
use crate::imageset::{ImageSet, Order};

/// The ciFAIR-10 duplicate list, compiled in (see `data/README.md`).
pub const DUPLICATES_CIFAR10_CSV: &str = include_str!("../data/duplicates_cifar10.csv");
/// ciFAIR-10's test–test near-duplicates (`TestID`, and in the `TrainID` column the other *test*
/// index), compiled in.
pub const DUPLICATES_CIFAR10_TEST_CSV: &str = include_str!("../data/duplicates_cifar10_test.csv");

/// Folder (under the data root) of the CIFAR-10 companion files: batch-order labels, exact pixels.
pub const CIFAR10_META: &str = "cifar10/meta";
/// The 10,000 `test_batch` labels, one per line, in batch order.
pub const CIFAR10_TEST_LABELS: &str = "cifar10_test_batch_labels.txt";
/// The 50,000 `data_batch_1..5` labels, one per line, in batch order.
pub const CIFAR10_TRAIN_LABELS: &str = "cifar10_train_batches_labels.txt";
const CIFAR10_TEST_EXACT: &str = "cifar10_test_batch_first846_uint8.npy";
const CIFAR10_TRAIN_EXACT: &str = "cifar10_data_batch_1_first932_uint8.npy";
const CIFAR10_TRAIN_EXACT_LABELS: &str = "cifar10_data_batch_1_first932_labels.npy";

/// A registered dataset name.
#[derive(Debug, Clone, Copy)]
pub struct DatasetName {
    pub name: &'static str,
    /// The `cargo xtask fetch` target that provides it.
    pub fetch: &'static str,
    pub about: &'static str,
}

/// Every registered name, in listing order.
pub const DATASETS: &[DatasetName] = &[
    DatasetName {
        name: "cifar10-train",
        fetch: "cifar10",
        about: "CIFAR-10 training set, 50,000 images",
    },
    DatasetName {
        name: "cifar10-test",
        fetch: "cifar10",
        about: "CIFAR-10 test set, 10,000 images",
    },
    DatasetName {
        name: "cifar10-test-dedup",
        fetch: "cifar10",
        about:
            "CIFAR-10 test minus the 286 ciFAIR-10 duplicate TestIDs (stand-in for ciFAIR-10 test)",
    },
    DatasetName {
        name: "cifar10-test-exact",
        fetch: "cifar10-meta",
        about: "CIFAR-10 test-batch images 0-845, exact (lossless) pixels",
    },
    DatasetName {
        name: "cifar10-train-exact",
        fetch: "cifar10-meta",
        about: "CIFAR-10 data_batch_1 images 0-931, exact (lossless) pixels",
    },
    DatasetName {
        name: "cifar10.1",
        fetch: "cifar10.1",
        about: "CIFAR-10.1 v6, 2,000 images",
    },
    DatasetName {
        name: "cifar10.1-v4",
        fetch: "cifar10.1",
        about: "CIFAR-10.1 v4, 2,021 images",
    },
    DatasetName {
        name: "cifair10",
        fetch: "cifair10",
        about: "ciFAIR-10 test set, 10,000 images",
    },
    DatasetName {
        name: "cifair10-train",
        fetch: "cifair10",
        about: "ciFAIR-10 training set (= CIFAR-10 train)",
    },
    DatasetName {
        name: "cifar100-train",
        fetch: "cifar100",
        about: "CIFAR-100 training set, fine labels",
    },
    DatasetName {
        name: "cifar100-test",
        fetch: "cifar100",
        about: "CIFAR-100 test set, fine labels",
    },
    DatasetName {
        name: "mnist-train",
        fetch: "mnist",
        about: "MNIST training set, 60,000 images",
    },
    DatasetName {
        name: "mnist-test",
        fetch: "mnist",
        about: "MNIST test set, 10,000 images",
    },
    DatasetName {
        name: "mnist32-train",
        fetch: "mnist",
        about: "MNIST training set as 32×32 RGB (2-px black border, gray copied to R, G, B)",
    },
    DatasetName {
        name: "mnist32-test",
        fetch: "mnist",
        about: "MNIST test set as 32×32 RGB (2-px black border, gray copied to R, G, B)",
    },
    DatasetName {
        name: "fashion-mnist-train",
        fetch: "fashion-mnist",
        about: "Fashion-MNIST training set",
    },
    DatasetName {
        name: "fashion-mnist-test",
        fetch: "fashion-mnist",
        about: "Fashion-MNIST test set",
    },
    DatasetName {
        name: "fashion-mnist32-train",
        fetch: "fashion-mnist",
        about:
            "Fashion-MNIST training set as 32×32 RGB (2-px black border, gray copied to R, G, B)",
    },
    DatasetName {
        name: "fashion-mnist32-test",
        fetch: "fashion-mnist",
        about: "Fashion-MNIST test set as 32×32 RGB (2-px black border, gray copied to R, G, B)",
    },
];

/// The workspace root this crate was compiled in (fallback for [`data_root`]).
const COMPILE_WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The data root: `cli` if given, else `$MR_DATA_DIR`, else `datasets/cache` under the workspace
/// root (found by walking up from the current folder to one holding `datasets/manifest.toml`;
/// falling back to the workspace this crate was compiled in).
pub fn data_root(cli: Option<&Path>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    if let Some(d) = std::env::var_os("MR_DATA_DIR") {
        if !d.is_empty() {
            return PathBuf::from(d);
        }
    }
    workspace_root().join("datasets").join("cache")
}

/// The workspace root: the nearest ancestor of the current folder with `datasets/manifest.toml`,
/// else the compile-time workspace.
pub fn workspace_root() -> PathBuf {
    if let Ok(mut dir) = std::env::current_dir() {
        loop {
            if dir.join("datasets").join("manifest.toml").is_file() {
                return dir;
            }
            if !dir.pop() {
                break;
            }
        }
    }
    let p = PathBuf::from(COMPILE_WORKSPACE);
    p.canonicalize().unwrap_or(p)
}

/// The exact command that fetches `target` into `root`.
pub fn fetch_command(target: &str, root: &Path) -> String {
    let from = match target {
        "cifar10" => " --from ../shared/data/CIFAR-10-images.tar",
        "cifar10-meta" => " --from ../shared/data",
        // only the official URLs serve these (downloaded with --online where there is internet)
        "cifar10.1" | "cifair10" | "cifar100" => " --online",
        _ => "",
    };
    let dir = if root == data_root(None) {
        String::new()
    } else {
        format!(" --data-dir {}", root.display())
    };
    format!("cargo xtask fetch {target}{from}{dir}")
}

fn missing(what: &str, target: &str, root: &Path) -> DataError {
    DataError::Missing {
        what: what.to_string(),
        root: root.to_path_buf(),
        command: fetch_command(target, root),
    }
}

/// Path of a fetched weight file (`name` is an embedder whose weights are fetched, see
/// [`EmbedderName::fetched`]), or an error with the `cargo xtask fetch` command.
pub fn weight_file(name: &str, root: &Path) -> Result<PathBuf, DataError> {
    let fetched = || {
        EmbedderName::ALL
            .into_iter()
            .filter(|e| e.fetched())
            .map(EmbedderName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let e = name
        .parse::<EmbedderName>()
        .ok()
        .filter(|e| e.fetched())
        .ok_or_else(|| {
            DataError::Invalid(format!(
                "unknown weight file '{name}' (known: {})",
                fetched()
            ))
        })?;
    let p = e.weights_path(root);
    if p.is_file() {
        Ok(p)
    } else {
        let rel = e.weights_rel();
        Err(missing(
            &format!("weights '{name}' ({})", rel.display()),
            name,
            root,
        ))
    }
}

/// A parsed dataset spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    /// Official batch indices (`#A..B` or `#i,j,…`), in the order given.
    pub indices: Option<Vec<usize>>,
    pub classes: Option<Vec<String>>,
    /// (count, seed)
    pub subset: Option<(usize, u64)>,
}

/// Parse `NAME#INDICES[CLASS,…]:K@SEED`.
pub fn parse_spec(spec: &str) -> Result<Spec, DataError> {
    let bad = |reason: &str| DataError::BadSpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let s = spec.trim();
    let (head, subset) = match s.rfind(':') {
        Some(i) if !s[i + 1..].contains(']') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    };
    let (name, classes) = match head.find('[') {
        Some(i) => {
            let inner = head[i + 1..]
                .strip_suffix(']')
                .ok_or_else(|| bad("'[' without a closing ']' at the end of the name"))?;
            let classes: Vec<String> = inner
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            if classes.is_empty() {
                return Err(bad("empty class list"));
            }
            (&head[..i], Some(classes))
        }
        None => (head, None),
    };
    let (name, indices) = match name.split_once('#') {
        Some((n, idx)) => (n, Some(parse_indices(idx).map_err(|r| bad(&r))?)),
        None => (name, None),
    };
    if name.is_empty() {
        return Err(bad("no dataset name"));
    }
    let subset = match subset {
        None => None,
        Some(t) => {
            let (k, seed) = match t.split_once('@') {
                Some((k, s)) => (
                    k,
                    s.parse::<u64>()
                        .map_err(|_| bad(&format!("seed '{s}' is not an integer")))?,
                ),
                None => (t, 0),
            };
            let k = k
                .parse::<usize>()
                .map_err(|_| bad(&format!("subset size '{k}' is not an integer")))?;
            Some((k, seed))
        }
    };
    Ok(Spec {
        name: name.to_string(),
        indices,
        classes,
        subset,
    })
}

/// `A..B` (half-open) or `i,j,k`.
fn parse_indices(text: &str) -> Result<Vec<usize>, String> {
    let int = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("index '{}' is not a non-negative integer", t.trim()))
    };
    let out = match text.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (int(a)?, int(b)?);
            if a >= b {
                return Err(format!("empty index range {a}..{b}"));
            }
            (a..b).collect()
        }
        None => text.split(',').map(int).collect::<Result<Vec<_>, _>>()?,
    };
    if out.is_empty() {
        return Err("empty index list".into());
    }
    Ok(out)
}

/// Which CIFAR-10 variant folder is present under `root` (`python`, `binary`, `jpeg-mirror`).
pub fn cifar10_variant(root: &Path) -> Option<(&'static str, PathBuf)> {
    ["python", "binary", "jpeg-mirror"]
        .iter()
        .map(|v| (*v, root.join("cifar10").join(v)))
        .find(|(_, p)| p.is_dir())
}

/// Which variant a registered name resolves to under `root`, if its files are present.
pub fn present_variant(name: &str, root: &Path) -> Option<String> {
    match name {
        "cifar10-train" | "cifar10-test" => cifar10_variant(root).map(|(v, _)| v.to_string()),
        // from the mirror it needs the batch order (and says so when loaded)
        "cifar10-test-dedup" => cifar10_variant(root)
            .filter(|(v, _)| *v != "jpeg-mirror" || meta_file(root, CIFAR10_TEST_LABELS).is_file())
            .map(|(v, _)| v.to_string()),
        "cifar10-test-exact" => meta_file(root, CIFAR10_TEST_EXACT)
            .is_file()
            .then(|| "exact".to_string()),
        "cifar10-train-exact" => meta_file(root, CIFAR10_TRAIN_EXACT)
            .is_file()
            .then(|| "exact".to_string()),
        "cifar100-train" | "cifar100-test" => ["python", "binary"]
            .iter()
            .find(|v| root.join("cifar100").join(v).is_dir())
            .map(|v| v.to_string()),
        "cifar10.1" => root
            .join("cifar10.1/cifar10.1_v6_data.npy")
            .is_file()
            .then(|| "npy-v6".to_string()),
        "cifar10.1-v4" => root
            .join("cifar10.1/cifar10.1_v4_data.npy")
            .is_file()
            .then(|| "npy-v4".to_string()),
        "cifair10" | "cifair10-train" => {
            root.join("cifair10").is_dir().then(|| "python".to_string())
        }
        "mnist-train" | "mnist-test" => root.join("mnist").is_dir().then(|| "idx".to_string()),
        "mnist32-train" | "mnist32-test" => root
            .join("mnist")
            .is_dir()
            .then(|| "idx-pad32-rgb".to_string()),
        "fashion-mnist32-train" | "fashion-mnist32-test" => root
            .join("fashion-mnist")
            .is_dir()
            .then(|| "idx-pad32-rgb".to_string()),
        "fashion-mnist-train" | "fashion-mnist-test" => root
            .join("fashion-mnist")
            .is_dir()
            .then(|| "idx".to_string()),
        _ => None,
    }
}

/// Load a dataset by spec (see the module docs) from `root`.
pub fn load(spec: &str, root: &Path) -> Result<ImageSet, DataError> {
    let as_path = Path::new(spec);
    if as_path.exists() && !DATASETS.iter().any(|d| d.name == spec) {
        return load_path(as_path);
    }
    let s = parse_spec(spec)?;
    let entry = DATASETS
        .iter()
        .find(|d| d.name == s.name)
        .ok_or_else(|| DataError::BadSpec {
            spec: spec.to_string(),
            reason: format!(
                "unknown dataset '{}' (known: {}; or give a folder/.npy/.npz path)",
                s.name,
                DATASETS
                    .iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    let mut set = load_name(entry, root)?;
    if let Some(indices) = &s.indices {
        set = select_batch_indices(set, indices, root)?;
    }
    if let Some(classes) = &s.classes {
        let names: Vec<&str> = classes.iter().map(|c| c.as_str()).collect();
        set = set.filter_classes(&names)?;
    }
    if let Some((k, seed)) = s.subset {
        set = set.sample(k, seed)?;
    }
    set.source = spec.to_string();
    Ok(set)
}

/// Read a folder, `.npy` or `.npz` path.
pub fn load_path(path: &Path) -> Result<ImageSet, DataError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if path.is_dir() {
        folder::read_image_folder(path)
    } else if ext == "npy" {
        crate::arrays::read_image_npy(path)
    } else if ext == "npz" {
        crate::arrays::read_image_npz(path, None)
    } else {
        Err(DataError::format(
            path,
            "not a folder, .npy or .npz (give a dataset name or one of those)",
        ))
    }
}

fn load_name(entry: &DatasetName, root: &Path) -> Result<ImageSet, DataError> {
    let name = entry.name;
    let need = |what: &Path| -> Result<(), DataError> {
        if what.exists() {
            Ok(())
        } else {
            Err(missing(name, entry.fetch, root))
        }
    };
    let mut set = match name {
        "cifar10-train" | "cifar10-test" | "cifar10-test-dedup" => {
            let (variant, dir) =
                cifar10_variant(root).ok_or_else(|| missing(name, "cifar10", root))?;
            let split = if name == "cifar10-train" {
                Split::Train
            } else {
                Split::Test
            };
            let mut set = if variant == "jpeg-mirror" {
                read_jpeg_mirror(&dir, split, root)?
            } else {
                let mut s = cifar::read_cifar(&dir, CifarKind::Cifar10, split)?;
                s.order = Order::Batch;
                s
            };
            set.variant = Some(variant.to_string());
            if name == "cifar10-test-dedup" {
                if set.order != Order::Batch {
                    return Err(DataError::Invalid(format!(
                        "cifar10-test-dedup needs CIFAR-10 test in test-batch order, and the JPEG mirror under {} \
                         has only the order within each class; {} is missing. Run `{}` (the batch label \
                         lists), or fetch the official batches (`cargo xtask fetch cifar10 --variant python --online`)",
                        dir.display(),
                        meta_file(root, CIFAR10_TEST_LABELS).display(),
                        fetch_command("cifar10-meta", root)
                    )));
                }
                set = remove_duplicates(set)?;
            }
            set
        }
        "cifar10-test-exact" | "cifar10-train-exact" => read_exact(name, root)?,
        "cifar100-train" | "cifar100-test" => {
            let v = present_variant(name, root).ok_or_else(|| missing(name, "cifar100", root))?;
            let split = if name.ends_with("train") {
                Split::Train
            } else {
                Split::Test
            };
            let mut set = cifar::read_cifar(
                &root.join("cifar100").join(&v),
                CifarKind::Cifar100 { coarse: false },
                split,
            )?;
            set.variant = Some(v);
            set
        }
        "cifar10.1" | "cifar10.1-v4" => {
            let version = if name == "cifar10.1" { "v6" } else { "v4" };
            let dir = root.join("cifar10.1");
            need(&dir.join(format!("cifar10.1_{version}_data.npy")))?;
            let mut set = cifar::read_cifar10_1(&dir, version)?;
            set.variant = Some(format!("npy-{version}"));
            set
        }
        "cifair10" | "cifair10-train" => {
            let dir = root.join("cifair10");
            need(&dir)?;
            let split = if name == "cifair10" {
                Split::Test
            } else {
                Split::Train
            };
            let mut set = cifar::read_cifar(&dir, CifarKind::Cifar10, split)?;
            set.variant = Some("python".into());
            set
        }
        "mnist-train"
        | "mnist-test"
        | "fashion-mnist-train"
        | "fashion-mnist-test"
        | "mnist32-train"
        | "mnist32-test"
        | "fashion-mnist32-train"
        | "fashion-mnist32-test" => {
            let fashion = name.starts_with("fashion");
            let dir = root.join(if fashion { "fashion-mnist" } else { "mnist" });
            need(&dir)?;
            let classes = if fashion {
                idx::FASHION_MNIST_CLASSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                idx::mnist_classes()
            };
            let mut set = idx::read_mnist_dir(&dir, name.ends_with("train"), classes)?;
            set.variant = Some("idx".into());
            if name.contains("mnist32") {
                set = set.pad_to_rgb(32)?;
                set.variant = Some("idx-pad32-rgb".into());
            }
            set
        }
        other => {
            return Err(DataError::BadSpec {
                spec: other.to_string(),
                reason: "registered but has no reader".into(),
            })
        }
    };
    set.source = name.to_string();
    Ok(set)
}

/// A file of the CIFAR-10 companion folder (`cifar10/meta/`).
pub fn meta_file(root: &Path, name: &str) -> PathBuf {
    root.join(CIFAR10_META).join(name)
}

/// The official batch label sequence of a CIFAR-10 split, if `cifar10/meta/` has it (labels
/// 0-9, one per line; 10,000 for test, 50,000 for train — checked against the images where used).
pub fn cifar10_batch_labels(root: &Path, split: Split) -> Result<Option<Vec<u32>>, DataError> {
    let file = match split {
        Split::Test => CIFAR10_TEST_LABELS,
        Split::Train => CIFAR10_TRAIN_LABELS,
    };
    let path = meta_file(root, file);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    let labels: Vec<u32> = text
        .split_whitespace()
        .map(|t| t.parse::<u32>().ok().filter(|&l| l < 10))
        .collect::<Option<_>>()
        .ok_or_else(|| DataError::format(&path, "not a list of integer labels 0-9"))?;
    Ok(Some(labels))
}

/// Where batch index `index` of a CIFAR-10 split is in the JPEG mirror:
/// `<split>/<class>/NNNN.jpg` relative to the mirror folder (NNNN = the count of that class's
/// labels before `index`), given the split's batch labels ([`cifar10_batch_labels`]).
pub fn cifar10_mirror_file(split: Split, labels: &[u32], index: usize) -> Option<PathBuf> {
    let label = *labels.get(index)?;
    let rank = labels[..index].iter().filter(|&&l| l == label).count();
    Some(
        PathBuf::from(split.name())
            .join(CIFAR10_CLASSES[label as usize])
            .join(format!("{rank:04}.jpg")),
    )
}

/// The JPEG mirror split: in batch order when `cifar10/meta/` has the split's batch labels, else
/// class-major (classes in label order, files in name order).
fn read_jpeg_mirror(dir: &Path, split: Split, root: &Path) -> Result<ImageSet, DataError> {
    let mut set = folder::read_class_folder(&dir.join(split.name()), Some(&CIFAR10_CLASSES))?;
    match cifar10_batch_labels(root, split)? {
        Some(labels) => {
            let file = meta_file(
                root,
                match split {
                    Split::Test => CIFAR10_TEST_LABELS,
                    Split::Train => CIFAR10_TRAIN_LABELS,
                },
            );
            let mut set =
                to_batch_order(&set, &labels).map_err(|reason| DataError::format(&file, reason))?;
            set.order = Order::Batch;
            Ok(set)
        }
        None => {
            set.order = Order::ClassMajor;
            Ok(set)
        }
    }
}

/// `cifar10-test-exact` / `cifar10-train-exact`: the lossless pixels in `cifar10/meta/`, labels
/// from the batch label list (test) or the label file beside the pixels (train).
fn read_exact(name: &str, root: &Path) -> Result<ImageSet, DataError> {
    let (file, split) = if name == "cifar10-test-exact" {
        (CIFAR10_TEST_EXACT, Split::Test)
    } else {
        (CIFAR10_TRAIN_EXACT, Split::Train)
    };
    let path = meta_file(root, file);
    if !path.is_file() {
        return Err(missing(name, "cifar10-meta", root));
    }
    let mut set = crate::arrays::read_image_npy(&path)?;
    let labels: Vec<u32> = match split {
        Split::Test => {
            let all = cifar10_batch_labels(root, Split::Test)?
                .ok_or_else(|| missing(name, "cifar10-meta", root))?;
            all.get(..set.len())
                .ok_or_else(|| {
                    DataError::format(
                        &path,
                        format!("more images than the {} test labels", all.len()),
                    )
                })?
                .to_vec()
        }
        Split::Train => {
            let lp = meta_file(root, CIFAR10_TRAIN_EXACT_LABELS);
            let arr = crate::npy::read_npy(&lp)?;
            let l = arr
                .to_i64()
                .ok_or_else(|| DataError::format(&lp, "labels are not integers"))?;
            l.into_iter()
                .map(|x| u32::try_from(x).ok().filter(|&x| x < 10))
                .collect::<Option<_>>()
                .ok_or_else(|| DataError::format(&lp, "a label is outside 0-9"))?
        }
    };
    if labels.len() != set.len() || set.shape()[1..] != [32, 32, 3] {
        return Err(DataError::format(
            &path,
            format!(
                "shape {:?} with {} labels, expected [N, 32, 32, 3] with N labels",
                set.shape(),
                labels.len()
            ),
        ));
    }
    set.labels = Some(labels);
    set.class_names = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
    set.variant = Some("exact".into());
    set.order = Order::Batch;
    Ok(set)
}

/// The images at official batch indices `indices` of a set in batch order.
fn select_batch_indices(
    set: ImageSet,
    indices: &[usize],
    root: &Path,
) -> Result<ImageSet, DataError> {
    if set.order != Order::Batch {
        return Err(DataError::Invalid(format!(
            "{}: '#' selects official batch indices, but this set is {} (run `{}` for CIFAR-10's batch order)",
            set.source,
            set.order.describe(),
            fetch_command("cifar10-meta", root)
        )));
    }
    if let Some(&bad) = indices.iter().find(|&&i| i >= set.len()) {
        return Err(DataError::Invalid(format!(
            "{}: index {bad} is out of range (the set has {} images)",
            set.source,
            set.len()
        )));
    }
    Ok(set.select(indices))
}

/// Reorder a class-major set (class c's k-th image = its k-th in batch order) into batch order.
pub fn to_batch_order(class_major: &ImageSet, batch_labels: &[u32]) -> Result<ImageSet, String> {
    let counts = class_major.class_counts();
    if batch_labels.len() != class_major.len() {
        return Err(format!(
            "{} labels for {} images",
            batch_labels.len(),
            class_major.len()
        ));
    }
    let mut start = vec![0usize; counts.len()];
    for c in 1..counts.len() {
        start[c] = start[c - 1] + counts[c - 1];
    }
    let mut idx = Vec::with_capacity(batch_labels.len());
    for (label, rank) in cifar::class_ranks(batch_labels) {
        let c = label as usize;
        if c >= counts.len() || rank >= counts[c] {
            return Err(format!(
                "label sequence does not match the per-class image counts {counts:?}"
            ));
        }
        idx.push(start[c] + rank);
    }
    Ok(class_major.select(&idx))
}

/// CIFAR-10 test (batch order) minus the ciFAIR duplicate TestIDs.
fn remove_duplicates(set: ImageSet) -> Result<ImageSet, DataError> {
    let ids = parse_duplicate_ids(DUPLICATES_CIFAR10_CSV).map_err(|reason| {
        DataError::Invalid(format!("built-in duplicates_cifar10.csv: {reason}"))
    })?;
    let mut drop = vec![false; set.len()];
    for id in ids {
        if id < drop.len() {
            drop[id] = true;
        }
    }
    let keep: Vec<usize> = (0..set.len()).filter(|&i| !drop[i]).collect();
    Ok(set.select(&keep))
}

/// ciFAIR-10's test–test near-duplicate pairs `(test index, other test index)`, as listed.
pub fn test_test_duplicates() -> Result<Vec<(usize, usize)>, String> {
    duplicate_pairs(DUPLICATES_CIFAR10_TEST_CSV)
}

/// ciFAIR-10's test–train duplicate pairs `(TestID, TrainID)` (official batch indices), as
/// listed: with [`cifar10_mirror_file`] each side resolves to its mirror file.
pub fn test_train_duplicates() -> Result<Vec<(usize, usize)>, String> {
    duplicate_pairs(DUPLICATES_CIFAR10_CSV)
}

fn duplicate_pairs(csv: &str) -> Result<Vec<(usize, usize)>, String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty duplicate list")?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("no {name} column"))
    };
    let (a, b) = (col("TestID")?, col("TrainID")?);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let get = |i: usize| {
                f.get(i)
                    .and_then(|x| x.parse::<usize>().ok())
                    .ok_or_else(|| format!("bad row '{line}'"))
            };
            Ok((get(a)?, get(b)?))
        })
        .collect()
}

/// The sorted distinct TestIDs of a ciFAIR duplicate list given as text.
pub fn parse_duplicate_ids(csv: &str) -> Result<Vec<usize>, String> {
    let mut lines = csv.lines();
    let header = lines.next().ok_or("empty duplicate list")?;
    let col = header
        .split(',')
        .position(|c| c.trim() == "TestID")
        .ok_or_else(|| format!("no TestID column in '{header}'"))?;
    let mut ids = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f = line.split(',').nth(col).unwrap_or("").trim();
        ids.push(
            f.parse::<usize>()
                .map_err(|_| format!("bad TestID '{f}'"))?,
        );
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar::tests::{row, write_cifar10_python};

    #[test]
    fn exact_sets_and_duplicate_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let e = load("cifar10-test-exact", root).unwrap_err().to_string();
        assert!(
            e.contains("cargo xtask fetch cifar10-meta --from ../shared/data"),
            "{e}"
        );
        let meta = root.join(CIFAR10_META);
        std::fs::create_dir_all(&meta).unwrap();
        let img = |n: usize| {
            crate::npy::NpyArray::new(
                vec![n, 32, 32, 3],
                crate::npy::NpyData::U8((0..n * 3072).map(|i| (i / 3072) as u8).collect()),
            )
        };
        crate::npy::write_npy(&meta.join(CIFAR10_TEST_EXACT), &img(3)).unwrap();
        crate::npy::write_npy(&meta.join(CIFAR10_TRAIN_EXACT), &img(2)).unwrap();
        let train_labels = crate::npy::NpyArray::new(vec![2], crate::npy::NpyData::I64(vec![6, 9]));
        crate::npy::write_npy(&meta.join(CIFAR10_TRAIN_EXACT_LABELS), &train_labels).unwrap();
        // test labels come from the batch label list
        assert!(load("cifar10-test-exact", root).is_err());
        std::fs::write(meta.join(CIFAR10_TEST_LABELS), "3\n8\n8\n0\n").unwrap();
        let t = load("cifar10-test-exact", root).unwrap();
        assert_eq!((t.len(), t.labels.clone().unwrap()), (3, vec![3, 8, 8]));
        assert_eq!(
            (t.order, t.variant.as_deref()),
            (Order::Batch, Some("exact"))
        );
        assert_eq!(load("cifar10-test-exact#2", root).unwrap().image(0)[0], 2);
        let tr = load("cifar10-train-exact[truck]", root).unwrap();
        assert_eq!((tr.len(), tr.image(0)[0]), (1, 1));
        assert_eq!(
            present_variant("cifar10-train-exact", root).as_deref(),
            Some("exact")
        );
        crate::npy::write_npy(
            &meta.join(CIFAR10_TRAIN_EXACT_LABELS),
            &crate::npy::NpyArray::new(vec![2], crate::npy::NpyData::I64(vec![6, 10])),
        )
        .unwrap();
        let e = load("cifar10-train-exact", root).unwrap_err().to_string();
        assert!(e.contains("outside 0-9"), "{e}");

        let tt = test_test_duplicates().unwrap();
        assert_eq!(tt.len(), 39);
        assert_eq!(tt[0], (2801, 5976));
        let ttrain = test_train_duplicates().unwrap();
        assert_eq!((ttrain.len(), ttrain[0]), (286, (6611, 49007)));
        assert!(duplicate_pairs("TestID,TrainID\n1,x\n").is_err());
    }

    #[test]
    fn spec_syntax() {
        let s = parse_spec("cifar10-train").unwrap();
        assert_eq!(
            (s.name.as_str(), s.classes, s.subset),
            ("cifar10-train", None, None)
        );
        let s = parse_spec("cifar10-train[cat, dog]:500@7").unwrap();
        assert_eq!(s.classes.unwrap(), vec!["cat", "dog"]);
        assert_eq!(s.subset, Some((500, 7)));
        assert_eq!(parse_spec("cifar10.1:20").unwrap().subset, Some((20, 0)));
        let s = parse_spec("cifar10-test#0..3[cat]:2@1").unwrap();
        assert_eq!(
            (s.name.as_str(), s.indices, s.subset),
            ("cifar10-test", Some(vec![0, 1, 2]), Some((2, 1)))
        );
        assert_eq!(parse_spec("x#7, 3").unwrap().indices, Some(vec![7, 3]));
        for bad in [
            "", "x[cat", "x[]", "x:abc", "x:5@y", "[cat]", "x#", "x#3..3", "x#a..4", "x#1,,2", "#1",
        ] {
            assert!(
                matches!(parse_spec(bad), Err(DataError::BadSpec { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_data_names_the_fetch_command() {
        let tmp = tempfile::tempdir().unwrap();
        let e = load("cifar10-train", tmp.path()).unwrap_err();
        assert!(matches!(e, DataError::Missing { .. }));
        let e = e.to_string();
        assert!(
            e.contains(
                "cargo xtask fetch cifar10 --from ../shared/data/CIFAR-10-images.tar --data-dir"
            ),
            "{e}"
        );
        let e = load("cifar10.1", tmp.path()).unwrap_err().to_string();
        assert!(e.contains("cargo xtask fetch cifar10.1 --online"), "{e}");
        let e = weight_file("effnet-lite0", tmp.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cargo xtask fetch effnet-lite0")
                && e.contains("efficientnet-lite0-57934424.pth"),
            "{e}"
        );
        assert!(weight_file("nope", tmp.path()).is_err());
        let w = tmp.path().join("weights/inception-fid/default_1.pt");
        std::fs::create_dir_all(w.parent().unwrap()).unwrap();
        std::fs::write(&w, b"x").unwrap();
        assert_eq!(weight_file("inception-fid", tmp.path()).unwrap(), w);
        let e = load("cifar11-train", tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("unknown dataset 'cifar11-train'") && e.contains("cifar10.1"),
            "{e}"
        );
    }

    #[test]
    fn data_root_order() {
        let cli = Path::new("/some/where");
        assert_eq!(data_root(Some(cli)), cli);
        // env and default: read only (other tests run in parallel; do not set the variable)
        match std::env::var_os("MR_DATA_DIR") {
            Some(d) if !d.is_empty() => assert_eq!(data_root(None), PathBuf::from(d)),
            _ => assert!(data_root(None).ends_with("datasets/cache")),
        }
        assert!(workspace_root().join("datasets/manifest.toml").is_file());
    }

    #[test]
    fn classes_subsets_and_dedup_on_official_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // test labels: a fixed pseudo-random sequence with 1000 per class
        let mut labels: Vec<i64> = (0..10_000).map(|i| (i % 10) as i64).collect();
        let perm = crate::imageset::sample_indices(10_000, 10_000, 42);
        labels = perm.iter().map(|&i| labels[i]).collect();
        write_cifar10_python(&root.join("cifar10/python"), 2, &labels);

        let train = load("cifar10-train", root).unwrap();
        assert_eq!(
            (train.len(), train.variant.as_deref()),
            (10, Some("python"))
        );
        let cats = load("cifar10-train[cat,airplane]", root).unwrap();
        assert_eq!(cats.class_names, vec!["cat", "airplane"]);
        assert_eq!(cats.labels.as_ref().unwrap(), &vec![1, 0]); // ids 0 (airplane), 3 (cat)
        let e = load("cifar10-train[cat,zebra]", root)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown class 'zebra'"), "{e}");
        let sub = load("cifar10-test:100@5", root).unwrap();
        assert_eq!((sub.len(), sub.seed), (100, Some(5)));
        assert_eq!(sub.source, "cifar10-test:100@5");
        assert_eq!(
            sub.content_hash(),
            load("cifar10-test:100@5", root).unwrap().content_hash()
        );
        assert_ne!(
            sub.content_hash(),
            load("cifar10-test:100@6", root).unwrap().content_hash()
        );

        let dedup = load("cifar10-test-dedup", root).unwrap();
        let ids = parse_duplicate_ids(DUPLICATES_CIFAR10_CSV).unwrap();
        assert_eq!(ids.len(), 286);
        assert_eq!(dedup.len(), 10_000 - 286);
        // the kept images are exactly the non-listed test ids, in order
        let kept: Vec<usize> = (0..10_000)
            .filter(|i| ids.binary_search(i).is_err())
            .collect();
        for (k, &i) in kept.iter().enumerate().step_by(997) {
            assert_eq!(
                dedup.image(k),
                crate::cifar::chw_to_hwc(&row(100_000 + i)).as_slice()
            );
        }

        // the JPEG-mirror order map: class-major set back to batch order
        let test = load("cifar10-test", root).unwrap();
        let l = test.labels.clone().unwrap();
        let mut order: Vec<usize> = (0..test.len()).collect();
        order.sort_by_key(|&i| (l[i], i)); // class-major, batch order within class
        let class_major = test.select(&order);
        let back = to_batch_order(&class_major, &l).unwrap();
        assert_eq!(back.content_hash(), test.content_hash());
        assert!(to_batch_order(&class_major, &l[..9999]).is_err());
    }

    #[test]
    fn jpeg_mirror_layout_order_and_labels_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let test = root.join("cifar10/jpeg-mirror/test");
        for (c, class) in CIFAR10_CLASSES.iter().enumerate() {
            for k in 0..2u8 {
                let d = test.join(class);
                std::fs::create_dir_all(&d).unwrap();
                image::RgbImage::from_pixel(4, 4, image::Rgb([c as u8, k, 0]))
                    .save(d.join(format!("{k:04}.png")))
                    .unwrap();
            }
        }
        let set = load("cifar10-test", root).unwrap();
        assert_eq!(set.variant.as_deref(), Some("jpeg-mirror"));
        assert_eq!(set.labels.as_ref().unwrap()[..4], [0, 0, 1, 1]);
        assert_eq!(set.order, Order::ClassMajor);
        assert!(present_variant("cifar10-test-dedup", root).is_none());
        let e = load("cifar10-test-dedup", root).unwrap_err().to_string();
        assert!(
            e.contains(CIFAR10_TEST_LABELS)
                && e.contains("cargo xtask fetch cifar10-meta --from ../shared/data")
                && e.contains("--variant python"),
            "{e}"
        );
        let e = load("cifar10-test#0..4", root).unwrap_err().to_string();
        assert!(
            e.contains("class-major") && e.contains("cifar10-meta"),
            "{e}"
        );
        // with the batch label sequence the test split comes back in batch order
        let seq: Vec<u32> = (0..20).map(|i| (i * 3 % 10) as u32).collect();
        let text: String = seq.iter().map(|l| format!("{l}\n")).collect();
        std::fs::create_dir_all(root.join(CIFAR10_META)).unwrap();
        let labels_file = meta_file(root, CIFAR10_TEST_LABELS);
        std::fs::write(&labels_file, text).unwrap();
        let set = load("cifar10-test", root).unwrap();
        assert_eq!(set.labels.as_ref().unwrap(), &seq);
        assert_eq!(set.order, Order::Batch);
        // first image of class 3 is batch index 1; the second (k = 1) is batch index 11
        assert_eq!(set.image(1)[..2], [3, 0]);
        assert_eq!(set.image(11)[..2], [3, 1]);
        // the file map agrees: batch index 11 is test/<class 3>/0001.jpg
        assert_eq!(
            cifar10_mirror_file(Split::Test, &seq, 11).unwrap(),
            PathBuf::from("test")
                .join(CIFAR10_CLASSES[3])
                .join("0001.jpg")
        );
        assert!(cifar10_mirror_file(Split::Test, &seq, 20).is_none());
        // '#' picks batch indices, before the class filter
        let pick = load("cifar10-test#11,1", root).unwrap();
        assert_eq!(
            (pick.image(0)[..2].to_vec(), pick.image(1)[..2].to_vec()),
            (vec![3, 1], vec![3, 0])
        );
        assert_eq!(load("cifar10-test#10..20", root).unwrap().len(), 10);
        let e = load("cifar10-test#15..25", root).unwrap_err().to_string();
        assert!(e.contains("index 20 is out of range"), "{e}");
        // the train split stays class-major until its own label list is there
        std::fs::write(&labels_file, "1 2 x").unwrap();
        let e = load("cifar10-test", root).unwrap_err().to_string();
        assert!(e.contains(CIFAR10_TEST_LABELS), "{e}");
        std::fs::write(&labels_file, "1 2").unwrap();
        let e = load("cifar10-test", root).unwrap_err().to_string();
        assert!(e.contains("2 labels for 20 images"), "{e}");
    }

    #[test]
    fn the_shared_duplicate_list_matches_the_compiled_one() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/duplicates_cifar10.csv");
        match std::fs::read_to_string(&p) {
            Ok(t) => assert_eq!(t, DUPLICATES_CIFAR10_CSV),
            Err(_) => println!("skipped: {} absent", p.display()),
        }
    }
}

//! CIFAR-10 / CIFAR-100 in their official layouts, ciFAIR (same layouts), and CIFAR-10.1.
//!
//! * Python version (`cifar-10-python.tar.gz`, `cifar-100-python.tar.gz`, or the extracted
//!   folders; ciFAIR's `ciFAIR-10.zip`): pickled dicts with `data` (uint8 `[N, 3072]`, each row
//!   the R, G and B planes of a 32×32 image) and `labels` (CIFAR-10) or `fine_labels` /
//!   `coarse_labels` (CIFAR-100); class names in `batches.meta` (`label_names`) or `meta`
//!   (`fine_label_names`, `coarse_label_names`).
//! * Binary version (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`): records of 1 label
//!   byte (CIFAR-100: coarse then fine) + 3072 pixel bytes; names in `batches.meta.txt` /
//!   `{fine,coarse}_label_names.txt`.
//! * CIFAR-10.1: `cifar10.1_{v6,v4}_data.npy` (uint8 `[N, 32, 32, 3]`) + `_labels.npy` (int).
//!
//! Images come out as `[N, 32, 32, 3]` (HWC) in batch order.

use std::path::Path;

use crate::archive::{member_path, read_members};
use crate::error::DataError;
use crate::imageset::ImageSet;
use crate::npy::{read_npy, NpyData};
use crate::pickle;

/// The CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which half of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// CIFAR-10, or CIFAR-100 with its fine (100) or coarse (20) labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    Cifar10,
    Cifar100 { coarse: bool },
}

const SIDE: usize = 32;
const IMG: usize = SIDE * SIDE * 3;

/// Planar rows `[N, 3, 32, 32]` → `[N, 32, 32, 3]`.
pub fn chw_to_hwc(planar: &[u8]) -> Vec<u8> {
    let plane = SIDE * SIDE;
    let mut out = vec![0u8; planar.len()];
    for (src, dst) in planar.chunks_exact(IMG).zip(out.chunks_exact_mut(IMG)) {
        for p in 0..plane {
            dst[3 * p] = src[p];
            dst[3 * p + 1] = src[plane + p];
            dst[3 * p + 2] = src[2 * plane + p];
        }
    }
    out
}

/// Does `path` (folder or archive) hold the python-pickle layout (vs the binary one)?
fn python_members(kind: CifarKind, split: Split) -> (Vec<&'static str>, &'static str) {
    match (kind, split) {
        (CifarKind::Cifar10, Split::Train) => (
            vec![
                "data_batch_1",
                "data_batch_2",
                "data_batch_3",
                "data_batch_4",
                "data_batch_5",
            ],
            "batches.meta",
        ),
        (CifarKind::Cifar10, Split::Test) => (vec!["test_batch"], "batches.meta"),
        (CifarKind::Cifar100 { .. }, Split::Train) => (vec!["train"], "meta"),
        (CifarKind::Cifar100 { .. }, Split::Test) => (vec!["test"], "meta"),
    }
}

fn binary_members(kind: CifarKind, split: Split) -> (Vec<&'static str>, Vec<&'static str>) {
    match (kind, split) {
        (CifarKind::Cifar10, Split::Train) => (
            vec![
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            vec!["batches.meta.txt"],
        ),
        (CifarKind::Cifar10, Split::Test) => (vec!["test_batch.bin"], vec!["batches.meta.txt"]),
        (CifarKind::Cifar100 { .. }, s) => (
            vec![if s == Split::Train {
                "train.bin"
            } else {
                "test.bin"
            }],
            vec!["fine_label_names.txt", "coarse_label_names.txt"],
        ),
    }
}

/// Read a CIFAR split from a folder or archive in either official layout (python pickles are
/// tried first, then binary batches).
pub fn read_cifar(path: &Path, kind: CifarKind, split: Split) -> Result<ImageSet, DataError> {
    let (py, py_meta) = python_members(kind, split);
    let (bin, bin_meta) = binary_members(kind, split);
    let mut wanted: Vec<&str> = py.clone();
    wanted.push(py_meta);
    wanted.extend(&bin);
    wanted.extend(&bin_meta);
    let mut members = read_members(path, &wanted)?;
    if py.iter().all(|m| members.contains_key(*m)) {
        read_python(path, kind, &py, py_meta, &mut members)
    } else if bin.iter().all(|m| members.contains_key(*m)) {
        read_binary(path, kind, &bin, &bin_meta, &mut members)
    } else {
        Err(DataError::format(
            path,
            format!(
                "no CIFAR {} batches: expected members {} (python) or {} (binary)",
                split.name(),
                py.join(", "),
                bin.join(", ")
            ),
        ))
    }
}

fn read_python(
    path: &Path,
    kind: CifarKind,
    batches: &[&str],
    meta: &str,
    members: &mut std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<ImageSet, DataError> {
    let label_key = match kind {
        CifarKind::Cifar10 => "labels",
        CifarKind::Cifar100 { coarse: false } => "fine_labels",
        CifarKind::Cifar100 { coarse: true } => "coarse_labels",
    };
    let mut planar = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    for b in batches {
        let p = member_path(path, b);
        let bytes = members.remove(*b).unwrap_or_default();
        let v = pickle::parse(&bytes).map_err(|e| DataError::format(&p, e.to_string()))?;
        let keys = || v.keys(v.root).join(", ");
        let data_id = v
            .dict_get(v.root, "data")
            .ok_or_else(|| DataError::format(&p, format!("no 'data' key (keys: {})", keys())))?;
        let data = v
            .ndarray(data_id)
            .ok_or_else(|| DataError::format(&p, "'data' is not a NumPy array"))?;
        if data.dtype.trim_start_matches(['|', '<', '=']) != "u1" {
            return Err(DataError::format(
                &p,
                format!("'data' has dtype {}, expected uint8", data.dtype),
            ));
        }
        let n = match data.shape.as_slice() {
            [n, 3072] => *n,
            [n, 3, 32, 32] => *n,
            s => {
                return Err(DataError::format(
                    &p,
                    format!("'data' has shape {s:?}, expected [N, 3072]"),
                ))
            }
        };
        if data.fortran {
            return Err(DataError::format(&p, "'data' is Fortran-ordered"));
        }
        if data.data.len() != n * IMG {
            return Err(DataError::format(
                &p,
                format!(
                    "'data' holds {} bytes, shape [{n}, 3072] needs {}",
                    data.data.len(),
                    n * IMG
                ),
            ));
        }
        let l = v
            .dict_get(v.root, label_key)
            .ok_or_else(|| {
                DataError::format(&p, format!("no '{label_key}' key (keys: {})", keys()))
            })
            .and_then(|id| {
                v.int_vec(id).ok_or_else(|| {
                    DataError::format(&p, format!("'{label_key}' is not a list of ints"))
                })
            })?;
        if l.len() != n {
            return Err(DataError::CountMismatch {
                path: p,
                labels: l.len(),
                images: n,
            });
        }
        if let Some(bad) = l.iter().find(|&&x| !(0..=255).contains(&x)) {
            return Err(DataError::format(&p, format!("label {bad} out of range")));
        }
        labels.extend(l.iter().map(|&x| x as u32));
        planar.extend_from_slice(&data.data);
    }
    let names = match members.remove(meta) {
        Some(bytes) => {
            let p = member_path(path, meta);
            let v = pickle::parse(&bytes).map_err(|e| DataError::format(&p, e.to_string()))?;
            let key = match kind {
                CifarKind::Cifar10 => "label_names",
                CifarKind::Cifar100 { coarse: false } => "fine_label_names",
                CifarKind::Cifar100 { coarse: true } => "coarse_label_names",
            };
            v.dict_get(v.root, key)
                .and_then(|x| v.text_vec(x))
                .ok_or_else(|| DataError::format(&p, format!("no list '{key}'")))?
        }
        None => default_names(kind, path)?,
    };
    let n = labels.len();
    ImageSet::new(
        chw_to_hwc(&planar),
        [n, SIDE, SIDE, 3],
        Some(labels),
        names,
        path.display().to_string(),
    )
}

fn default_names(kind: CifarKind, path: &Path) -> Result<Vec<String>, DataError> {
    match kind {
        CifarKind::Cifar10 => Ok(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()),
        _ => Err(DataError::format(
            path,
            "CIFAR-100 class names missing (no meta file)",
        )),
    }
}

fn read_binary(
    path: &Path,
    kind: CifarKind,
    batches: &[&str],
    meta: &[&str],
    members: &mut std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<ImageSet, DataError> {
    let (label_bytes, which) = match kind {
        CifarKind::Cifar10 => (1, 0),
        CifarKind::Cifar100 { coarse: true } => (2, 0),
        CifarKind::Cifar100 { coarse: false } => (2, 1),
    };
    let rec = label_bytes + IMG;
    let mut planar = Vec::new();
    let mut labels = Vec::new();
    for b in batches {
        let p = member_path(path, b);
        let bytes = members.remove(*b).unwrap_or_default();
        if bytes.is_empty() || bytes.len() % rec != 0 {
            return Err(DataError::format(
                &p,
                format!(
                    "{} bytes is not a whole number of {rec}-byte records (truncated?)",
                    bytes.len()
                ),
            ));
        }
        for r in bytes.chunks_exact(rec) {
            labels.push(r[which] as u32);
            planar.extend_from_slice(&r[label_bytes..]);
        }
    }
    let names_file = match kind {
        CifarKind::Cifar100 { coarse: true } => meta.get(1),
        _ => meta.first(),
    };
    let names = match names_file.and_then(|m| members.remove(*m)) {
        Some(bytes) => String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        None => default_names(kind, path)?,
    };
    let n = labels.len();
    let labels_ok = labels.iter().all(|&l| (l as usize) < Vec::len(&names));
    if !labels_ok {
        return Err(DataError::format(
            path,
            format!("a label is out of range for {} class names", names.len()),
        ));
    }
    ImageSet::new(
        chw_to_hwc(&planar),
        [n, SIDE, SIDE, 3],
        Some(labels),
        names,
        path.display().to_string(),
    )
}

/// CIFAR-10.1 from `dir/cifar10.1_{version}_data.npy` + `dir/cifar10.1_{version}_labels.npy`
/// (`version` is `v6` or `v4`).
pub fn read_cifar10_1(dir: &Path, version: &str) -> Result<ImageSet, DataError> {
    let dp = dir.join(format!("cifar10.1_{version}_data.npy"));
    let lp = dir.join(format!("cifar10.1_{version}_labels.npy"));
    let images = crate::arrays::read_image_npy(&dp)?;
    let labels = read_npy(&lp)?;
    if labels.shape.len() != 1 {
        return Err(DataError::format(
            &lp,
            format!("labels have shape {:?}, expected [N]", labels.shape),
        ));
    }
    let l = match labels.data {
        NpyData::F32(_) | NpyData::F64(_) => None,
        _ => labels.to_i64(),
    }
    .ok_or_else(|| DataError::format(&lp, "labels are not integers"))?;
    if l.len() != images.len() {
        return Err(DataError::CountMismatch {
            path: lp,
            labels: l.len(),
            images: images.len(),
        });
    }
    if let Some(bad) = l.iter().find(|&&x| !(0..10).contains(&x)) {
        return Err(DataError::format(
            &lp,
            format!("label {bad} is not a CIFAR-10 class (0..9)"),
        ));
    }
    if images.shape()[1..] != [32, 32, 3] {
        return Err(DataError::format(
            &dp,
            format!(
                "images have shape {:?}, expected [N, 32, 32, 3]",
                images.shape()
            ),
        ));
    }
    let n = images.len();
    ImageSet::new(
        images.pixels,
        [n, 32, 32, 3],
        Some(l.iter().map(|&x| x as u32).collect()),
        CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        dir.display().to_string(),
    )
}

/// Map each test-batch index to (class, rank of that index among the test images of its class),
/// given the test-batch labels in batch order. This is how the JPEG mirror's
/// `test/<class>/NNNN.jpg` relates to the test batch: file NNNN of a class is the NNNN-th image of
/// that class in batch order.
pub fn class_ranks(labels: &[u32]) -> Vec<(u32, usize)> {
    let mut seen = vec![0usize; labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0)];
    labels
        .iter()
        .map(|&l| {
            let r = seen[l as usize];
            seen[l as usize] += 1;
            (l, r)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pickle::tests::Py2Pickler;
    use std::fs;
    use std::path::PathBuf;

    /// A planar (CHW) row whose pixels encode (image id, channel, position).
    pub(crate) fn row(id: usize) -> Vec<u8> {
        (0..IMG)
            .map(|k| ((id * 7 + (k / 1024) * 50 + k % 1024) % 256) as u8)
            .collect()
    }

    pub(crate) fn batch_pickle(ids: &[usize], labels: &[i64], label_key: &str) -> Vec<u8> {
        let mut p = Py2Pickler::new();
        p.begin_dict();
        p.str(b"batch_label");
        p.str(b"synthetic batch");
        p.str(label_key.as_bytes());
        p.int_list(labels);
        p.str(b"data");
        let data: Vec<u8> = ids.iter().flat_map(|&i| row(i)).collect();
        p.u8_array(&[ids.len(), IMG], &data);
        p.str(b"filenames");
        p.str_list(&[]);
        p.end_dict();
        p.out
    }

    fn meta_pickle(key: &str, names: &[&str]) -> Vec<u8> {
        let mut p = Py2Pickler::new();
        p.begin_dict();
        p.str(key.as_bytes());
        p.str_list(names);
        p.str(b"num_cases_per_batch");
        p.int(10000);
        p.end_dict();
        p.out
    }

    /// `dir/cifar-10-batches-py/` with 5 train batches of `per_batch` images and a test batch of
    /// `n_test`; image id = global index (train 0.., test 100000..), label = id % 10 unless given.
    pub(crate) fn write_cifar10_python(
        dir: &Path,
        per_batch: usize,
        test_labels: &[i64],
    ) -> PathBuf {
        let d = dir.join("cifar-10-batches-py");
        fs::create_dir_all(&d).unwrap();
        for b in 0..5 {
            let ids: Vec<usize> = (b * per_batch..(b + 1) * per_batch).collect();
            let labels: Vec<i64> = ids.iter().map(|&i| (i % 10) as i64).collect();
            fs::write(
                d.join(format!("data_batch_{}", b + 1)),
                batch_pickle(&ids, &labels, "labels"),
            )
            .unwrap();
        }
        let ids: Vec<usize> = (0..test_labels.len()).map(|i| 100_000 + i).collect();
        fs::write(
            d.join("test_batch"),
            batch_pickle(&ids, test_labels, "labels"),
        )
        .unwrap();
        fs::write(
            d.join("batches.meta"),
            meta_pickle("label_names", &CIFAR10_CLASSES),
        )
        .unwrap();
        d
    }

    fn tar_gz(src: &Path, top: &str, out: &Path) {
        let f = fs::File::create(out).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        b.append_dir_all(top, src).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn python_batches_folder_and_tar_gz_agree() {
        let tmp = tempfile::tempdir().unwrap();
        let d = write_cifar10_python(tmp.path(), 3, &[3, 8, 8, 0]);
        let train = read_cifar(tmp.path(), CifarKind::Cifar10, Split::Train).unwrap();
        assert_eq!(train.shape(), [15, 32, 32, 3]);
        assert_eq!(train.labels.as_ref().unwrap()[..4], [0, 1, 2, 3]);
        assert_eq!(train.class_names[3], "cat");
        // HWC: pixel (y=0, x=1) of image 4 = (R, G, B) from the three planes
        let r = row(4);
        assert_eq!(&train.image(4)[3..6], &[r[1], r[1024 + 1], r[2048 + 1]]);
        let test = read_cifar(&d, CifarKind::Cifar10, Split::Test).unwrap();
        assert_eq!(test.labels.as_ref().unwrap(), &vec![3, 8, 8, 0]);

        let tgz = tmp.path().join("cifar-10-python.tar.gz");
        tar_gz(&d, "cifar-10-batches-py", &tgz);
        let from_tgz = read_cifar(&tgz, CifarKind::Cifar10, Split::Train).unwrap();
        assert_eq!(from_tgz.content_hash(), train.content_hash());

        // a truncated archive is one error naming it
        let bytes = fs::read(&tgz).unwrap();
        let cut = tmp.path().join("cut.tar.gz");
        fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_cifar(&cut, CifarKind::Cifar10, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cut.tar.gz") && (e.contains("truncated") || e.contains("corrupt")),
            "{e}"
        );
    }

    #[test]
    fn python_batch_errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let d = write_cifar10_python(tmp.path(), 2, &[1, 2]);
        // label/image count mismatch
        fs::write(
            d.join("test_batch"),
            batch_pickle(&[1, 2, 3], &[0, 1], "labels"),
        )
        .unwrap();
        let e = read_cifar(&d, CifarKind::Cifar10, Split::Test).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::CountMismatch {
                    labels: 2,
                    images: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("test_batch"), "{e}");
        // not a pickle
        fs::write(d.join("test_batch"), b"\x89PNG not a pickle").unwrap();
        let e = read_cifar(&d, CifarKind::Cifar10, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("test_batch") && e.contains("opcode"), "{e}");
        // truncated pickle
        let good = batch_pickle(&[1, 2], &[0, 1], "labels");
        fs::write(d.join("test_batch"), &good[..good.len() - 100]).unwrap();
        let e = read_cifar(&d, CifarKind::Cifar10, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("test_batch") && e.contains("truncated"), "{e}");
        // wrong key
        fs::write(
            d.join("test_batch"),
            batch_pickle(&[1, 2], &[0, 1], "fine_labels"),
        )
        .unwrap();
        let e = read_cifar(&d, CifarKind::Cifar10, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no 'labels' key") && e.contains("fine_labels"),
            "{e}"
        );
        // missing batch
        fs::remove_file(d.join("data_batch_3")).unwrap();
        let e = read_cifar(&d, CifarKind::Cifar10, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(e.contains("data_batch_3"), "{e}");
    }

    #[test]
    fn binary_batches_cifar10_and_cifar100() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("cifar-10-batches-bin");
        fs::create_dir_all(&d).unwrap();
        for b in 0..5 {
            let mut bytes = Vec::new();
            for i in 0..2 {
                bytes.push(((b * 2 + i) % 10) as u8);
                bytes.extend(row(b * 2 + i));
            }
            fs::write(d.join(format!("data_batch_{}.bin", b + 1)), bytes).unwrap();
        }
        let mut t = vec![9u8];
        t.extend(row(77));
        fs::write(d.join("test_batch.bin"), &t).unwrap();
        fs::write(
            d.join("batches.meta.txt"),
            CIFAR10_CLASSES.join("\n") + "\n\n",
        )
        .unwrap();
        let train = read_cifar(tmp.path(), CifarKind::Cifar10, Split::Train).unwrap();
        assert_eq!(train.len(), 10);
        assert_eq!(train.labels.as_ref().unwrap()[7], 7);
        let test = read_cifar(&d, CifarKind::Cifar10, Split::Test).unwrap();
        assert_eq!(test.labels.as_ref().unwrap(), &vec![9]);
        assert_eq!(test.class_names.len(), 10);
        assert_eq!(test.image(0)[0], row(77)[0]);
        // a truncated record
        fs::write(d.join("test_batch.bin"), &t[..t.len() - 1]).unwrap();
        let e = read_cifar(&d, CifarKind::Cifar10, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test_batch.bin") && e.contains("truncated"),
            "{e}"
        );

        // CIFAR-100 binary: coarse byte, fine byte
        let d = tmp.path().join("cifar-100-binary");
        fs::create_dir_all(&d).unwrap();
        let mut bytes = vec![4u8, 55];
        bytes.extend(row(1));
        fs::write(d.join("test.bin"), &bytes).unwrap();
        let fine: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
        let coarse: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        fs::write(d.join("fine_label_names.txt"), fine.join("\n")).unwrap();
        fs::write(d.join("coarse_label_names.txt"), coarse.join("\n")).unwrap();
        let f = read_cifar(&d, CifarKind::Cifar100 { coarse: false }, Split::Test).unwrap();
        assert_eq!(
            (f.labels.as_ref().unwrap()[0], f.class_names.len()),
            (55, 100)
        );
        let c = read_cifar(&d, CifarKind::Cifar100 { coarse: true }, Split::Test).unwrap();
        assert_eq!(
            (c.labels.as_ref().unwrap()[0], c.class_names.len()),
            (4, 20)
        );
    }

    #[test]
    fn cifar100_python_and_cifair_zip() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("cifar-100-python");
        fs::create_dir_all(&d).unwrap();
        let mut p = Py2Pickler::new();
        p.begin_dict();
        p.str(b"fine_labels");
        p.int_list(&[99, 0]);
        p.str(b"coarse_labels");
        p.int_list(&[19, 4]);
        p.str(b"data");
        let data: Vec<u8> = [row(0), row(1)].concat();
        p.u8_array(&[2, IMG], &data);
        p.end_dict();
        fs::write(d.join("test"), &p.out).unwrap();
        let fine: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
        let coarse: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let mut m = Py2Pickler::new();
        m.begin_dict();
        m.str(b"fine_label_names");
        m.str_list(&fine.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        m.str(b"coarse_label_names");
        m.str_list(&coarse.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        m.end_dict();
        fs::write(d.join("meta"), &m.out).unwrap();
        let f = read_cifar(&d, CifarKind::Cifar100 { coarse: false }, Split::Test).unwrap();
        assert_eq!(f.labels.as_ref().unwrap(), &vec![99, 0]);
        assert_eq!(f.class_names[99], "f99");
        let c = read_cifar(&d, CifarKind::Cifar100 { coarse: true }, Split::Test).unwrap();
        assert_eq!(c.labels.as_ref().unwrap(), &vec![19, 4]);

        // ciFAIR-10.zip: ciFAIR-10/{test_batch, batches.meta}
        let z = tmp.path().join("ciFAIR-10.zip");
        {
            let mut w = zip::ZipWriter::new(fs::File::create(&z).unwrap());
            let o = zip::write::SimpleFileOptions::default();
            use std::io::Write;
            w.start_file("ciFAIR-10/test_batch", o).unwrap();
            w.write_all(&batch_pickle(&[5, 6, 7], &[1, 2, 3], "labels"))
                .unwrap();
            w.start_file("ciFAIR-10/batches.meta", o).unwrap();
            w.write_all(&meta_pickle("label_names", &CIFAR10_CLASSES))
                .unwrap();
            w.finish().unwrap();
        }
        let t = read_cifar(&z, CifarKind::Cifar10, Split::Test).unwrap();
        assert_eq!(t.labels.as_ref().unwrap(), &vec![1, 2, 3]);
        assert_eq!(t.image(2)[0], row(7)[0]);
    }

    #[test]
    fn cifar10_1_npy_pairs_with_the_real_labels() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
        for (version, n) in [("v6", 2000usize), ("v4", 2021)] {
            let labels_src = shared.join(format!("cifar10.1_{version}_labels.npy"));
            let labels_dst = tmp.path().join(format!("cifar10.1_{version}_labels.npy"));
            if labels_src.is_file() {
                fs::copy(&labels_src, &labels_dst).unwrap();
            } else {
                println!("{} absent: using synthetic labels", labels_src.display());
                let l: Vec<i32> = (0..n as i32).map(|i| i % 10).collect();
                crate::npy::write_npy(
                    &labels_dst,
                    &crate::npy::NpyArray::new(vec![n], NpyData::I32(l)),
                )
                .unwrap();
            }
            // the image array exactly as np.save writes uint8 [N, 32, 32, 3]
            let pixels: Vec<u8> = (0..n * 32 * 32 * 3).map(|i| (i % 251) as u8).collect();
            let arr = crate::npy::NpyArray::new(vec![n, 32, 32, 3], NpyData::U8(pixels.clone()));
            crate::npy::write_npy(
                &tmp.path().join(format!("cifar10.1_{version}_data.npy")),
                &arr,
            )
            .unwrap();
            let set = read_cifar10_1(tmp.path(), version).unwrap();
            assert_eq!(set.shape(), [n, 32, 32, 3]);
            assert_eq!(set.pixels, pixels);
            let counts = set.class_counts();
            assert_eq!(counts.iter().sum::<usize>(), n);
            if version == "v6" && labels_src.is_file() {
                assert_eq!(
                    counts,
                    vec![200; 10],
                    "CIFAR-10.1 v6 has 200 images per class"
                );
            }
        }
        // v6 images with v4 labels: count mismatch naming the labels file
        fs::copy(
            tmp.path().join("cifar10.1_v4_labels.npy"),
            tmp.path().join("cifar10.1_v6_labels.npy"),
        )
        .unwrap();
        let e = read_cifar10_1(tmp.path(), "v6").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::CountMismatch {
                    labels: 2021,
                    images: 2000,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("cifar10.1_v6_labels.npy"));
        // float labels refused
        let fl = crate::npy::NpyArray::new(vec![2000], NpyData::F32(vec![0.0; 2000]));
        crate::npy::write_npy(&tmp.path().join("cifar10.1_v6_labels.npy"), &fl).unwrap();
        assert!(read_cifar10_1(tmp.path(), "v6")
            .unwrap_err()
            .to_string()
            .contains("not integers"));
    }

    #[test]
    fn class_ranks_count_per_class() {
        assert_eq!(
            class_ranks(&[3, 1, 3, 3, 1]),
            vec![(3, 0), (1, 0), (3, 1), (3, 2), (1, 1)]
        );
    }
}

//! MNIST / Fashion-MNIST IDX files (`*-images-idx3-ubyte`, `*-labels-idx1-ubyte`), plain or
//! gzip-compressed (detected by the gzip magic, not the name).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::imageset::ImageSet;

/// Read a whole file, gunzipping it if it starts with the gzip magic `1f 8b`.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt or truncated gzip: {e}")))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Parse IDX bytes of unsigned bytes (type 0x08) with `ndim` dimensions; returns dims and data.
pub fn parse_idx_u8(
    bytes: &[u8],
    ndim: u8,
    path: &Path,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::format(path, "not an IDX file (bad magic)"));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::format(
            path,
            format!(
                "IDX element type 0x{:02x}, expected 0x08 (unsigned byte)",
                bytes[2]
            ),
        ));
    }
    if bytes[3] != ndim {
        return Err(DataError::format(
            path,
            format!("IDX has {} dimensions, expected {ndim}", bytes[3]),
        ));
    }
    let head = 4 + 4 * ndim as usize;
    if bytes.len() < head {
        return Err(DataError::format(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..ndim as usize)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count: usize = dims.iter().product();
    let body = &bytes[head..];
    if body.len() < count {
        return Err(DataError::format(
            path,
            format!(
                "truncated: dims {dims:?} need {count} bytes, found {}",
                body.len()
            ),
        ));
    }
    Ok((dims, body[..count].to_vec()))
}

/// Find `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stems: &[&str]) -> Option<PathBuf> {
    stems
        .iter()
        .flat_map(|s| [dir.join(s), dir.join(format!("{s}.gz"))])
        .find(|p| p.is_file())
}

/// Read an IDX image file and its label file.
pub fn read_idx_pair(
    images: &Path,
    labels: &Path,
    class_names: Vec<String>,
) -> Result<ImageSet, DataError> {
    let (dims, pixels) = parse_idx_u8(&read_maybe_gz(images)?, 3, images)?;
    let (ldims, l) = parse_idx_u8(&read_maybe_gz(labels)?, 1, labels)?;
    if ldims[0] != dims[0] {
        return Err(DataError::CountMismatch {
            path: labels.to_path_buf(),
            labels: ldims[0],
            images: dims[0],
        });
    }
    if !class_names.is_empty() {
        if let Some(bad) = l.iter().find(|&&x| x as usize >= class_names.len()) {
            return Err(DataError::format(
                labels,
                format!("label {bad} out of range"),
            ));
        }
    }
    ImageSet::new(
        pixels,
        [dims[0], dims[1], dims[2], 1],
        Some(l.iter().map(|&x| x as u32).collect()),
        class_names,
        images.display().to_string(),
    )
}

/// Read the MNIST-style split (`train` → `train-*`, `test` → `t10k-*`) from `dir`.
pub fn read_mnist_dir(
    dir: &Path,
    train: bool,
    class_names: Vec<String>,
) -> Result<ImageSet, DataError> {
    let (i, l) = if train {
        (
            ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
            ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
        )
    } else {
        (
            ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
            ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
        )
    };
    let ip =
        find(dir, &i).ok_or_else(|| DataError::format(dir, format!("no {} (or .gz)", i[0])))?;
    let lp =
        find(dir, &l).ok_or_else(|| DataError::format(dir, format!("no {} (or .gz)", l[0])))?;
    read_idx_pair(&ip, &lp, class_names)
}

/// MNIST class names.
pub fn mnist_classes() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// Fashion-MNIST class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
];

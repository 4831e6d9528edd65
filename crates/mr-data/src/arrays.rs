//! uint8 image arrays in `.npy` / `.npz` files: `[N, H, W, C]` (C = 1, 3 or 4) or `[N, H, W]`
//! (grayscale, read as C = 1).

use std::path::Path;

use crate::error::DataError;
use crate::imageset::ImageSet;
use crate::npy::{read_npy, read_npz, NpyArray, NpyData};

fn to_image_set(arr: NpyArray, path: &Path, what: &str) -> Result<ImageSet, DataError> {
    let NpyData::U8(pixels) = arr.data else {
        return Err(DataError::format(
            path,
            format!(
                "{what} has dtype {}, expected uint8 images",
                arr.data.dtype().name()
            ),
        ));
    };
    let shape = match arr.shape.as_slice() {
        [n, h, w] => [*n, *h, *w, 1],
        [n, h, w, c] if [1, 3, 4].contains(c) => [*n, *h, *w, *c],
        [_, c, _, _] if [1, 3].contains(c) => {
            return Err(DataError::format(
                path,
                format!(
                    "{what} has shape {:?}: channels-first; expected [N, H, W, C] (transpose to channels-last)",
                    arr.shape
                ),
            ))
        }
        s => {
            return Err(DataError::format(
                path,
                format!("{what} has shape {s:?}, expected [N, H, W, C] with C in 1, 3, 4 or [N, H, W]"),
            ))
        }
    };
    ImageSet::new(pixels, shape, None, Vec::new(), path.display().to_string())
}

/// Read a uint8 image array from a `.npy` file.
pub fn read_image_npy(path: &Path) -> Result<ImageSet, DataError> {
    let arr = read_npy(path)?;
    to_image_set(arr, path, "array")
}

/// Read a uint8 image array from a `.npz` archive: member `key` if given, else the only member,
/// else the first of `x`, `images`, `arr_0`. Integer labels are taken from `y` or `labels` when
/// present (class names are then `0`, `1`, …).
pub fn read_image_npz(path: &Path, key: Option<&str>) -> Result<ImageSet, DataError> {
    let mut map = read_npz(path)?;
    let available = map.keys().cloned().collect::<Vec<_>>().join(", ");
    let name = match key {
        Some(k) => k.to_string(),
        None if map.len() == 1 => map.keys().next().cloned().unwrap_or_default(),
        None => ["x", "images", "arr_0"]
            .iter()
            .find(|k| map.contains_key(**k))
            .map(|k| k.to_string())
            .ok_or_else(|| {
                DataError::format(
                    path,
                    format!("which array holds the images? has: {available} (name one, or use x/images/arr_0)"),
                )
            })?,
    };
    let arr = map
        .remove(&name)
        .ok_or_else(|| DataError::format(path, format!("no array '{name}' (has: {available})")))?;
    let mut set = to_image_set(arr, path, &format!("array '{name}'"))?;
    if let Some(lab) = ["y", "labels"].iter().find_map(|k| map.remove(*k)) {
        let l = match lab.data {
            NpyData::F32(_) | NpyData::F64(_) => None,
            _ => lab.to_i64(),
        }
        .ok_or_else(|| DataError::format(path, "labels are not integers"))?;
        if l.len() != set.len() {
            return Err(DataError::CountMismatch {
                path: path.to_path_buf(),
                labels: l.len(),
                images: set.len(),
            });
        }
        if l.iter().any(|&x| !(0..=u32::MAX as i64).contains(&x)) {
            return Err(DataError::format(path, "negative label"));
        }
        let k = l.iter().max().map(|&m| m as usize + 1).unwrap_or(0);
        set.labels = Some(l.iter().map(|&x| x as u32).collect());
        set.class_names = (0..k).map(|i| i.to_string()).collect();
    }
    Ok(set)
}

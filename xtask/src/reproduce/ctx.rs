//! What every stage of a reproduction shares: the arguments, the profile, the data root, the
//! work folder, the built binaries, and the feature cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use mr_metrics::Features;

use super::plan::Needs;
use super::profile::Profile;
use super::runner::{build_bins, run_logged, Bins};
use super::util::{fetch_entry, read_labels};
use super::ReproduceArgs;
use crate::BadInput;

/// Everything the stages share.
pub(crate) struct Ctx<'a> {
    pub(crate) args: &'a ReproduceArgs,
    pub(crate) p: Profile,
    /// Data root (datasets, weights, feature cache).
    pub(crate) root: PathBuf,
    /// `<work>/<profile>`: runs, binaries, features, logs.
    pub(crate) work: PathBuf,
    /// The snapshot of the binaries (none under `--plan`).
    pub(crate) bins: Option<Bins>,
    pub(crate) class_names: Vec<String>,
    /// Each model's configuration file, in the profile's model order.
    pub(crate) configs: Vec<PathBuf>,
}

impl<'a> Ctx<'a> {
    /// The context of profile `p`: its training set (fetching CIFAR-10 first on a fresh
    /// machine) and each model's configuration written where `mr-train` reads it.
    pub(crate) fn new(args: &'a ReproduceArgs, p: Profile) -> Result<(Ctx<'a>, mr_data::ImageSet)> {
        let root = mr_data::registry::data_root(args.data_dir.as_deref());
        let train_set = match mr_data::registry::load(&p.train, &root) {
            Ok(s) => s,
            Err(e) => {
                // A fresh machine: fetch CIFAR-10 the way the manifest says (the local mirror
                // where there is one), then try again.
                eprintln!("{e}\nfetching CIFAR-10 first (cargo xtask fetch cifar10)");
                fetch_entry("cifar10", args.data_dir.clone())
                    .with_context(|| format!("training set {}: {e}", p.train))?;
                mr_data::registry::load(&p.train, &root)
                    .map_err(|e| BadInput(format!("training set {}: {e}", p.train)))?
            }
        };
        let work = args.work.join(p.name.as_str());
        let cfg_dir = work.join("configs");
        std::fs::create_dir_all(&cfg_dir)?;
        let mut configs = vec![];
        for m in &p.models {
            let path = cfg_dir.join(format!("{}.toml", m.name));
            if std::fs::read_to_string(&path).ok().as_deref() != Some(m.config.as_str()) {
                mr_data::atomic::write_atomic(&path, |w| {
                    use std::io::Write;
                    w.write_all(m.config.as_bytes())
                })?;
            }
            configs.push(path);
        }
        let ctx = Ctx {
            args,
            p,
            root,
            work,
            bins: None,
            class_names: train_set.class_names.clone(),
            configs,
        };
        Ok((ctx, train_set))
    }

    /// Fetch the embedders' weights that are missing, then build the binaries and snapshot them
    /// (`cuda`: with the CUDA backend).
    pub(crate) fn prepare(&mut self, needs: &Needs, cuda: bool) -> Result<()> {
        for w in mr_data::EmbedderName::ALL
            .into_iter()
            .filter(|e| e.fetched())
        {
            let needed = needs.embedders.contains(&w) || self.p.mr_embedder == w;
            if needed && !w.weights_path(&self.root).is_file() {
                eprintln!(
                    "{w} weights are not in {}; fetching them (cargo xtask fetch {w})",
                    self.root.display()
                );
                fetch_entry(w.as_str(), self.args.data_dir.clone())?;
            }
        }
        self.bins = Some(build_bins(self.args.release, cuda)?.snapshot(&self.work)?);
        Ok(())
    }

    /// The binaries (built by [`Ctx::prepare`]).
    pub(crate) fn bins(&self) -> &Bins {
        self.bins
            .as_ref()
            .expect("binaries are built before any stage runs")
    }

    /// Features of `input` (a dataset spec or a uint8 `.npy`) in `embedder` space, cached at
    /// `work/features/<embedder>/<slug>.npy` (and in the data root's feature cache).
    pub(crate) fn embed(
        &self,
        input: &str,
        embedder: &str,
        slug: &str,
        labels: bool,
    ) -> Result<Features> {
        embed_cached(
            &self.bins().metrics,
            &self.root,
            &self.work,
            input,
            embedder,
            slug,
            labels,
        )
    }

    /// Whether `embed` would read the cache (no binary needed).
    pub(crate) fn has_features(&self, embedder: &str, slug: &str) -> bool {
        let (out, lab) = feature_paths(&self.work, embedder, slug);
        out.is_file() && lab.is_file()
    }

    /// The labels written beside `slug`'s features in `embedder` space.
    pub(crate) fn labels_of(&self, embedder: &str, slug: &str) -> Result<Vec<i64>> {
        read_labels(&feature_paths(&self.work, embedder, slug).1)
    }
}

/// Where the features of `slug` in `embedder` space (and their labels) are cached under `work`.
pub(crate) fn feature_paths(work: &Path, embedder: &str, slug: &str) -> (PathBuf, PathBuf) {
    let dir = work.join("features").join(embedder);
    (
        dir.join(format!("{slug}.npy")),
        dir.join(format!("{slug}_labels.npy")),
    )
}

/// The `mr-metrics embed` command that writes the features of `input` in `embedder` space to
/// `out` (and the input's labels to `labels_out`).
pub(crate) fn embed_command(
    metrics_bin: &Path,
    root: &Path,
    input: &str,
    embedder: &str,
    out: &Path,
    labels_out: Option<&Path>,
) -> Command {
    let mut cmd = Command::new(metrics_bin);
    cmd.args(["embed", "--input", input, "--embed", embedder, "--out"])
        .arg(out)
        .arg("--data-dir")
        .arg(root);
    if let Some(lab) = labels_out {
        cmd.arg("--labels-out").arg(lab);
    }
    cmd
}

/// Features of `input` (a dataset spec or a uint8 `.npy`) in `embedder` space through
/// `mr-metrics embed`, cached at `work/features/<embedder>/<slug>.npy` (labels beside it when
/// `labels`; the embedder's own feature cache under the data root sits behind it).
pub(crate) fn embed_cached(
    metrics_bin: &Path,
    root: &Path,
    work: &Path,
    input: &str,
    embedder: &str,
    slug: &str,
    labels: bool,
) -> Result<Features> {
    let (out, lab) = feature_paths(work, embedder, slug);
    if !out.is_file() || (labels && !lab.is_file()) {
        let mut cmd = embed_command(
            metrics_bin,
            root,
            input,
            embedder,
            &out,
            labels.then_some(&*lab),
        );
        let log = work
            .join("logs")
            .join(format!("embed-{embedder}-{slug}.log"));
        run_logged(
            &mut cmd,
            &log,
            &format!("embedding {input} with {embedder}"),
        )?;
    }
    Features::load(&out).with_context(|| format!("reading {}", out.display()))
}

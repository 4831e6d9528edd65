//! Collecting the gate's evaluations: each run's `eval.csv` (or the committed copy where its work
//! folder is gone), the final checks of finished runs (Inception C_T, copies), and the
//! reference levels of KID and FID.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::runs::{finished, recorded_build, GateRun, BUILD_FILE};
use super::setups::SETUPS;
use super::{EMBEDDER, SAMPLES};
use crate::reproduce::runner::{run_logged, Bins};
use crate::reproduce::table::{Col, Table};

/// The index of column `name` in a CSV header read from `path`, or an error naming both.
pub(super) fn column(header: &[String], name: &str, path: &Path) -> Result<usize> {
    header
        .iter()
        .position(|h| h == name)
        .with_context(|| format!("{}: no column `{name}`", path.display()))
}

/// Rows of a CSV file as (header, rows of fields).
pub(super) fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    Ok((header, rows))
}

/// One evaluation row of a run.
#[derive(Debug, Clone)]
pub(super) struct EvalPoint {
    pub(super) step: usize,
    pub(super) ct: f64,
    pub(super) fid: f64,
    pub(super) kid: f64,
    pub(super) kid_std: f64,
    pub(super) nn_gen: f64,
    pub(super) nn_test: f64,
}

pub(super) fn read_evals(run_dir: &Path) -> Result<Vec<EvalPoint>> {
    let path = run_dir.join("eval.csv");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let (header, rows) = read_csv(&path)?;
    let col = |name: &str| column(&header, name, &path);
    let (i_step, i_ct, i_fid) = (col("step")?, col("ct")?, col("fid")?);
    let (i_kid, i_kid_std, i_gen, i_test) = (
        col("kid")?,
        col("kid_std")?,
        col("nn_gen")?,
        col("nn_test")?,
    );
    let num = |r: &[String], i: usize| -> f64 {
        r.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    rows.iter()
        .map(|r| {
            Ok(EvalPoint {
                step: r[i_step]
                    .parse()
                    .with_context(|| format!("{}: bad step", path.display()))?,
                ct: num(r, i_ct),
                fid: num(r, i_fid),
                kid: num(r, i_kid),
                kid_std: num(r, i_kid_std),
                nn_gen: num(r, i_gen),
                nn_test: num(r, i_test),
            })
        })
        .collect()
}

/// The noise and real-data levels of KID and FID in the evaluation space against each setup's
/// held-out set: uniform-noise images (seeded) and the setup's own training images.
pub(super) fn levels(metrics: &Path, work: &Path, root: &Path) -> Result<Value> {
    let noise = work.join("noise-1000.npy");
    if !noise.is_file() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let px: Vec<u8> = (0..SAMPLES * 32 * 32 * 3).map(|_| rng.random()).collect();
        std::fs::create_dir_all(work)?;
        mr_data::npy::write_npy(
            &noise,
            &mr_data::npy::NpyArray::new(vec![SAMPLES, 32, 32, 3], mr_data::npy::NpyData::U8(px)),
        )?;
    }
    let metric = |cmd: &str, a: &str, b: &str, embed: &str, extra: &[&str]| -> Result<Value> {
        let out = Command::new(metrics)
            .args([cmd, a, b, "--embed", embed, "--json", "--data-dir"])
            .arg(root)
            .args(extra)
            .output()
            .with_context(|| format!("cannot run {}", metrics.display()))?;
        if !out.status.success() {
            bail!(
                "mr-metrics {cmd} {a} {b} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let mut by_test = serde_json::Map::new();
    let tests: std::collections::BTreeSet<&str> = SETUPS.iter().map(|s| s.test).collect();
    let noise_s = noise.to_string_lossy().to_string();
    for test in tests {
        let embed = SETUPS
            .iter()
            .find(|s| s.test == test)
            .map_or(EMBEDDER, |s| s.embedder);
        let mut v = serde_json::Map::new();
        let mut sources = vec![("noise".to_string(), noise_s.clone(), SAMPLES)];
        for s in SETUPS.iter().filter(|s| s.test == test) {
            let label = format!("train:{}", s.train);
            if !sources.iter().any(|x| x.0 == label) {
                sources.push((label, s.train.to_string(), s.n_train));
            }
        }
        for (label, src, n) in sources {
            // the runs' KID uses subsets of half the smaller set (≤ 1,000 each)
            let subset = (n.min(SAMPLES) / 2).max(2).to_string();
            let kid = metric("kid", &src, test, embed, &["--subset-size", &subset])?;
            let fid = metric("fid", &src, test, embed, &[])?;
            v.insert(
                label,
                json!({"kid": kid["kid_mean"], "kid_std": kid["kid_std"], "fid": fid["fid"]}),
            );
        }
        by_test.insert(test.to_string(), Value::Object(v));
    }
    Ok(Value::Object(by_test))
}

/// The gate's committed results (`results/cpu-gate/`) as a source for runs whose work folder
/// is gone (a new machine: the work folder is not kept between sessions): their `eval.csv`,
/// `log.csv`, `build.txt` and sample grid are in `runs/<run>/`, their Inception C_T in
/// `inception.csv`, their copies summaries in `provenance.json`. Without this a table rewritten
/// on a fresh machine would silently drop every run it did not train itself.
pub(super) struct Committed {
    pub(super) inception: HashMap<(String, u64), f64>,
    pub(super) used: HashMap<String, Value>,
}

impl Committed {
    pub(super) fn read(dir: &Path) -> Result<Self> {
        let mut inception = std::collections::HashMap::new();
        let path = dir.join("inception.csv");
        if path.is_file() {
            let (header, rows) = read_csv(&path)?;
            let col = |name: &str| column(&header, name, &path);
            let (i_setup, i_seed, i_ct) = (col("setup")?, col("seed")?, col("ct_inception")?);
            for row in rows {
                let (Some(setup), Some(seed), Some(ct)) =
                    (row.get(i_setup), row.get(i_seed), row.get(i_ct))
                else {
                    continue;
                };
                if let (Ok(seed), Ok(ct)) = (seed.parse::<u64>(), ct.parse::<f64>()) {
                    inception.insert((setup.clone(), seed), ct);
                }
            }
        }
        let mut used = std::collections::HashMap::new();
        if let Ok(text) = std::fs::read_to_string(dir.join("provenance.json")) {
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}", dir.join("provenance.json").display()))?;
            for u in v["runs_used"].as_array().into_iter().flatten() {
                if let Some(k) = u["run"].as_str() {
                    used.insert(k.to_string(), u.clone());
                }
            }
        }
        Ok(Self { inception, used })
    }
}

/// The committed folder `keep` when the run's work folder has no evaluations of its own.
pub(super) fn committed_source(work: &Path, keep: &Path) -> Option<PathBuf> {
    let name = keep.file_name()?;
    let own = work.join(name).join("eval.csv").is_file();
    (!own && keep.join("eval.csv").is_file()).then(|| keep.to_path_buf())
}

/// The runs still to train: neither finished in the work folder nor — where the work folder has
/// no evaluations of a run — finished in the committed results (`dir/runs/<run>/`). A new machine
/// starts with an empty work folder; without the second check it would retrain every committed
/// run, hours each, to the same bits. To train them again, point `--results` at another folder.
pub(super) fn runs_to_train<'a>(
    all: &'a [GateRun],
    wanted: impl Fn(&GateRun) -> bool,
    work: &Path,
    dir: &Path,
) -> Vec<&'a GateRun> {
    all.iter()
        .filter(|r| wanted(r) && !finished(r, &r.dir(work)))
        .filter(|r| {
            committed_source(work, &dir.join("runs").join(&r.key))
                .is_none_or(|keep| !finished(r, &keep))
        })
        .collect()
}

/// For a finished run: C_T of its last checkpoint's 1,000 samples in `inception-fid` space (the
/// second embedding, same cells and sets), cached in the run folder; and for seed 0 the copies
/// report (the setup's evaluation embedding) into `results/cpu-gate/copies/<setup>/`.
pub(super) fn final_checks(
    bins: &Bins,
    work: &Path,
    root: &Path,
    dir: &Path,
    r: &GateRun,
    d: &Path,
) -> Result<(f64, Option<Value>)> {
    let gen = d.join(format!("samples-last-{SAMPLES}.npy"));
    let log = |what: &str| work.join("logs").join(format!("{}-{what}.log", r.key));
    if !gen.is_file() {
        let mut cmd = Command::new(&bins.train);
        cmd.args(["sample", "--run"])
            .arg(d)
            .args(["--n", &SAMPLES.to_string(), "--which", "last", "--out"])
            .arg(&gen);
        run_logged(&mut cmd, &log("sample1000"), &format!("sampling {}", r.key))?;
    }
    let inc = d.join("inception-ct.json");
    if !inc.is_file() {
        let out = Command::new(&bins.metrics)
            .args(["ct", "--json", "--cells", "5", "--embed", "inception-fid"])
            .args(["--train", r.setup.train, "--test", r.setup.test, "--gen"])
            .arg(&gen)
            .arg("--data-dir")
            .arg(root)
            .output()
            .context("cannot run mr-metrics ct")?;
        if !out.status.success() {
            bail!(
                "mr-metrics ct (inception) of {} failed: {}",
                r.key,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        mr_data::atomic::write_bytes_atomic(&inc, &out.stdout)?;
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&inc)?)?;
    let ct = v["ct"].as_f64().unwrap_or(f64::NAN);
    let mut copies = None;
    if r.seed == 0 {
        let out = dir.join("copies").join(r.setup.name);
        if out.exists() {
            std::fs::remove_dir_all(&out)?;
        }
        std::fs::create_dir_all(out.parent().unwrap())?;
        let o = Command::new(&bins.metrics)
            .args([
                "copies",
                "--json",
                "--embed",
                r.setup.embedder,
                "--train",
                r.setup.train,
            ])
            .arg("--gen")
            .arg(&gen)
            .arg("--out")
            .arg(&out)
            .arg("--data-dir")
            .arg(root)
            .output()
            .context("cannot run mr-metrics copies")?;
        if !o.status.success() {
            bail!(
                "mr-metrics copies of {} failed: {}",
                r.key,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        let s: Value = serde_json::from_slice(&o.stdout)?;
        copies = Some(json!({
            "within_tau": s["within_tau"], "ratio_below_one": s["ratio_below_one"],
            "tau": s["tau"], "distinct_train": s["distinct_train"],
        }));
    }
    Ok((ct, copies))
}

/// Whether `file` is missing or older than run `d`'s last checkpoint (a run trained on since the
/// file was drawn from it).
pub(super) fn older_than_last_checkpoint(file: &Path, d: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(file), modified(&d.join("checkpoints/last/g.mpk"))) {
        (None, _) => true,
        (Some(f), Some(c)) => f < c,
        (Some(_), None) => false,
    }
}

/// Every run's evaluations, as the tables and the provenance write them.
pub(super) struct Collected {
    /// One row per run and evaluation (`data.{csv,parquet}`).
    pub(super) evals: Table,
    /// Each finished run's final C_T in Inception space (`inception.{csv,parquet}`).
    pub(super) inception: Table,
    /// The runs used, with their build and copies report (`provenance.json`).
    pub(super) used: Vec<Value>,
}

/// Read every evaluation of every run that has one (unfinished runs are marked), copy each
/// run's logs and last sample grid into `dir/runs/<run>/`, and run the final checks of the
/// finished ones.
pub(super) fn collect(
    all: &[GateRun],
    dir: &Path,
    work: &Path,
    root: &Path,
    bins: &Bins,
) -> Result<Collected> {
    // every evaluation of every run that has one (unfinished runs are marked)
    let (mut setup_c, mut seed_c, mut step_c, mut done_c) = (vec![], vec![], vec![], vec![]);
    let (mut ntr, mut ct, mut fid, mut kid, mut kid_sd, mut nn_gen, mut nn_test) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut used = Vec::new();
    let mut finals: Vec<(GateRun, f64)> = Vec::new();
    // what the committed results already hold for runs whose work folder is gone
    let committed = Committed::read(dir)?;
    for r in all {
        let keep = dir.join("runs").join(&r.key);
        let (d, from_results) = match committed_source(work, &keep) {
            Some(src) => (src, true),
            None => (r.dir(work), false),
        };
        let evals = read_evals(&d)?;
        if evals.is_empty() {
            continue;
        }
        let done = finished(r, &d);
        let mut entry = json!({
            "run": r.key, "finished": done, "evaluations": evals.len(),
            "mr_train_build": recorded_build(&d),
        });
        if from_results {
            // its checkpoints are gone with the work folder that trained it: what was measured
            // on them (copies report) is carried over from the committed provenance
            if let Some(c) = committed.used.get(&r.key).and_then(|u| u.get("copies")) {
                entry["copies"] = c.clone();
            }
            entry["from_committed_results"] = json!(true);
        }
        used.push(entry);
        for e in evals {
            setup_c.push(r.setup.name.to_string());
            seed_c.push(r.seed as i64);
            step_c.push(e.step as i64);
            done_c.push(done as i64);
            ntr.push(r.setup.n_train as i64);
            ct.push(e.ct);
            fid.push(e.fid);
            kid.push(e.kid);
            kid_sd.push(e.kid_std);
            nn_gen.push(e.nn_gen);
            nn_test.push(e.nn_test);
        }
        if from_results {
            if done {
                let inc = committed.inception.get(&(r.setup.name.to_string(), r.seed));
                finals.push((r.clone(), inc.copied().unwrap_or(f64::NAN)));
            }
            continue;
        }
        std::fs::create_dir_all(&keep)?;
        for f in [
            "config.toml",
            "log.csv",
            "eval.csv",
            BUILD_FILE,
            "machines.csv",
        ] {
            if d.join(f).is_file() {
                std::fs::copy(d.join(f), keep.join(f))
                    .with_context(|| format!("copying {}", d.join(f).display()))?;
            }
        }
        // the last checkpoint's samples, for the grid
        let grid = d.join("samples-last-16.npy");
        let own = recorded_build(&d)
            .and_then(|b| Bins::of_build(work, &b))
            .unwrap_or_else(|| bins.clone());
        if older_than_last_checkpoint(&grid, &d) && d.join("config.toml").is_file() {
            let mut cmd = Command::new(&own.train);
            cmd.args(["sample", "--run"])
                .arg(&d)
                .args(["--n", "16", "--which", "last", "--out"])
                .arg(&grid);
            run_logged(
                &mut cmd,
                &work.join("logs").join(format!("{}-sample.log", r.key)),
                &format!("sampling {}", r.key),
            )?;
        }
        let npy = dir.join("runs").join(&r.key).join("samples-last-16.npy");
        std::fs::copy(&grid, &npy)?;
        if done {
            let (inc, copies) = final_checks(&own, work, root, dir, r, &d)?;
            finals.push((r.clone(), inc));
            if let Some(c) = copies {
                used.last_mut().unwrap()["copies"] = c;
            }
        }
    }
    anyhow::ensure!(
        !used.is_empty(),
        "no gate run has an evaluation in {}",
        work.display()
    );
    let t = Table::new()
        .with("setup", Col::Str(setup_c))
        .with("n_train", Col::I64(ntr))
        .with("seed", Col::I64(seed_c))
        .with("step", Col::I64(step_c))
        .with("finished", Col::I64(done_c))
        .with("ct", Col::F64(ct))
        .with("nn_gen", Col::F64(nn_gen))
        .with("nn_test", Col::F64(nn_test))
        .with("kid", Col::F64(kid))
        .with("kid_std", Col::F64(kid_sd))
        .with("fid", Col::F64(fid));
    let ft = Table::new()
        .with(
            "setup",
            Col::Str(
                finals
                    .iter()
                    .map(|(r, _)| r.setup.name.to_string())
                    .collect(),
            ),
        )
        .with(
            "seed",
            Col::I64(finals.iter().map(|(r, _)| r.seed as i64).collect()),
        )
        .with(
            "ct_inception",
            Col::F64(finals.iter().map(|f| f.1).collect()),
        );
    Ok(Collected {
        evals: t,
        inception: ft,
        used,
    })
}

//! The plan: which runs the requested figures need (models × τ grid × seeds), each keyed by what
//! determines its result, and what the sweep is expected to cost.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use mr_nn::Metric;

use super::ctx::Ctx;
use super::profile::{embed_rate, Profile, TauGrid};
use super::runner::pending;
use super::util::{remove_keys, slug};
use super::Fig;
use crate::BadInput;

/// The `[mr]` keys that change nothing at τ = 0 (every candidate is accepted).
const MR_INERT_AT_ZERO: [&str; 3] = ["policy", "max_draws", "exhausted"];

/// The configuration text a run is identified by: at τ = 0 rejection never fires, so the batch
/// policy keys are dropped and every policy variant shares its τ = 0 runs.
pub(crate) fn canonical_config(config: &str, tau: f64) -> String {
    if tau != 0.0 {
        return config.to_string();
    }
    // Text that is not TOML keeps its key as it is: mr-train rejects it with a clear error
    // before any run of it exists.
    remove_keys(config, "mr", &MR_INERT_AT_ZERO).unwrap_or_else(|_| config.to_string())
}

/// What determines a run's result: its canonical configuration, τ and seed (hashed).
pub(crate) fn run_key(config: &str, tau: f64, seed: u64) -> String {
    let key = format!(
        "{}\n# reproduce: tau={tau:.4} mr=g seed={seed}\n",
        canonical_config(config, tau)
    );
    mr_data::imageset::sha256_bytes(key.as_bytes())[..10].to_string()
}

/// A run's key in the plan: `run_key` once τ is known; before the guideline is measured
/// (`--plan` on a fresh work folder) a placeholder per guideline factor, so that runs at
/// different factors stay apart (and are counted apart in the time estimate).
fn plan_key(config: &str, tau: f64, factor: f64, seed: u64) -> String {
    if tau.is_nan() {
        format!("unmeasured-x{factor}-{}", run_key(config, factor, seed))
    } else {
        run_key(config, tau, seed)
    }
}

/// Folder name of one run: model, τ, seed and its `run_key`.
fn run_name(model: &str, tau: f64, seed: u64, key: &str) -> String {
    format!("{model}-tau-{tau:.4}-seed-{seed}-{key}")
}

/// One training run of the sweep.
#[derive(Debug, Clone)]
pub(crate) struct RunSpec {
    /// Index into the profile's models.
    pub(crate) model: usize,
    /// Index into the τ grid.
    pub(crate) tau_i: usize,
    pub(crate) tau: f64,
    pub(crate) seed: u64,
    pub(crate) dir: PathBuf,
    pub(crate) name: String,
}

impl RunSpec {
    /// Whether the run has finished (its `summary.json` is written).
    pub(crate) fn done(&self) -> bool {
        self.dir.join("summary.json").is_file()
    }
}

/// What the requested figures need beyond the main model, embedder and reference set.
pub(crate) struct Needs {
    /// Models to train (figure 9 and the table need them all).
    pub(crate) models: usize,
    /// Evaluation embedders (figure 10 and the table need them all).
    pub(crate) embedders: Vec<mr_data::EmbedderName>,
    /// Whether every reference set is needed (figures 5, 11 and the table).
    pub(crate) all_refs: bool,
}

impl Needs {
    pub(crate) fn of(figs: &[Fig], p: &Profile) -> Needs {
        let any = |fs: &[Fig]| fs.iter().any(|f| figs.contains(f));
        Needs {
            models: if any(&[Fig::Fig9, Fig::Table]) {
                p.models.len()
            } else {
                1
            },
            embedders: if any(&[Fig::Fig10, Fig::Table]) {
                p.eval_embedders.clone()
            } else {
                p.eval_embedders[..1].to_vec()
            },
            all_refs: any(&[Fig::Fig5, Fig::Fig11, Fig::Table]),
        }
    }
}

/// The sweep: the τ grid (absolute and as multiples of the guideline) and its runs.
pub(crate) struct Plan {
    /// The guideline τ in the MR embedding (NaN under `--plan` before the training set has
    /// been embedded once).
    pub(crate) guide_mr: f64,
    pub(crate) taus: Vec<f64>,
    pub(crate) factors: Vec<f64>,
    pub(crate) seeds: usize,
    pub(crate) runs: Vec<RunSpec>,
}

impl Plan {
    /// The guideline τ in the MR embedding (the τ grid is multiples of it; `--plan` uses it
    /// when the training set's features are already cached), and the runs. Variants whose run
    /// would be identical (τ = 0 of every batch policy) share it, in the folder of the first
    /// variant that has it.
    pub(crate) fn new(ctx: &Ctx, needs: &Needs, seeds: usize) -> Result<Plan> {
        let p = &ctx.p;
        let guide_mr =
            if ctx.bins.is_some() || ctx.has_features(p.mr_embedder.as_str(), &slug(&p.train)) {
                let f = ctx.embed(&p.train, p.mr_embedder.as_str(), &slug(&p.train), true)?;
                mr_metrics::nnd::tau_guide(&f, None, Metric::Cosine)?.tau
            } else {
                f64::NAN
            };
        let (taus, factors): (Vec<f64>, Vec<f64>) = match &p.taus {
            // τ = 0 is known before the guideline is (0 × NaN would hide its shared runs)
            TauGrid::GuideFactors(fs) => (
                fs.iter()
                    .map(|&f| {
                        if f == 0.0 {
                            0.0
                        } else {
                            (f * guide_mr * 1e4).round() / 1e4
                        }
                    })
                    .collect(),
                fs.clone(),
            ),
            TauGrid::Absolute(ts) => (ts.clone(), ts.iter().map(|t| t / guide_mr).collect()),
        };
        let mut runs = Vec::new();
        let mut seen: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
        for (mi, m) in p.models.iter().enumerate().take(needs.models) {
            let model_seeds = m.max_seeds.map_or(seeds, |k| k.min(seeds));
            for (ti, &tau) in taus
                .iter()
                .enumerate()
                .take(m.max_taus.unwrap_or(usize::MAX))
            {
                for seed in 0..model_seeds as u64 {
                    let key = plan_key(&m.config, tau, factors[ti], seed);
                    let (dir, name) = seen
                        .entry(key.clone())
                        .or_insert_with(|| {
                            let name = run_name(m.name, tau, seed, &key);
                            (ctx.work.join("runs").join(m.name).join(&name), name)
                        })
                        .clone();
                    runs.push(RunSpec {
                        model: mi,
                        tau_i: ti,
                        tau,
                        seed,
                        dir,
                        name,
                    });
                }
            }
        }
        Ok(Plan {
            guide_mr,
            taus,
            factors,
            seeds,
            runs,
        })
    }

    /// One line: the runs, how many are left to train, and the expected time.
    pub(crate) fn announce(&self, ctx: &Ctx, needs: &Needs, figs: &[Fig], gpu: bool) {
        let p = &ctx.p;
        let left = pending(&self.runs);
        let classes = ctx.class_names.len().max(1);
        let mut images = 0.0;
        for e in &needs.embedders {
            let n = if *e == p.eval_embedders[0] {
                p.gen_per_class
            } else {
                p.gen_per_class_other
            };
            images += (n * classes * self.runs.len()) as f64 / embed_rate(*e, gpu);
        }
        // each model's steps and run time, read from its config once
        let per_model: Vec<(u64, f64)> = (0..p.models.len())
            .map(|i| (p.steps(i), p.est_seconds(i)))
            .collect();
        let steps: u64 = left.iter().map(|r| per_model[r.model].0).sum();
        let train_s: f64 = left.iter().map(|r| per_model[r.model].1).sum();
        let human = |sec: f64| {
            if sec > 2.0 * 86_400.0 {
                format!("{:.0} days", sec / 86_400.0)
            } else if sec > 7_200.0 {
                format!("{:.1} h", sec / 3_600.0)
            } else {
                format!("{:.0} min", sec / 60.0)
            }
        };
        eprintln!(
            "{} runs ({} to train, {steps} G steps in all) × figures {:?}: training ≈ {}{}, sampling and embedding ≈ {} (cached work excluded)",
            self.runs.len(),
            left.len(),
            figs.iter().map(|f| f.name()).collect::<Vec<_>>(),
            human(train_s / p.parallel.max(1) as f64),
            if p.cpu_iteration_seconds.is_some() {
                " on one GPU (a guess: not measured)"
            } else {
                " on this machine"
            },
            human(images)
        );
        if let Some(it) = p.cpu_iteration_seconds {
            eprintln!(
                "on this machine's CPU instead (one iteration measured at {it:.0} s, 2 threads): ≈ {:.0} days",
                steps as f64 * it / 86_400.0
            );
        }
    }

    /// `--plan`: every run with its state and the `mr-train` command that trains it.
    pub(crate) fn print(&self, ctx: &Ctx) {
        let p = &ctx.p;
        for r in &self.runs {
            if r.tau.is_nan() {
                eprintln!(
                    "  todo {} τ = {} × guideline, seed {}: mr-train --config {} (τ and run folder once the guideline is measured)",
                    p.models[r.model].name,
                    self.factors[r.tau_i],
                    r.seed,
                    ctx.configs[r.model].display(),
                );
                continue;
            }
            eprintln!(
                "  {} {}: mr-train --config {} --tau {:.4} --mr g --seed {} --out {}",
                if r.done() { "done" } else { "todo" },
                r.name,
                ctx.configs[r.model].display(),
                r.tau,
                r.seed,
                r.dir.display()
            );
        }
        if self.guide_mr.is_nan() {
            eprintln!(
                "  (the guideline τ is measured on the first run without --plan: the training set is embedded with {})",
                p.mr_embedder
            );
        }
    }

    /// `--finished-only`: keep the runs that have finished (an error when none has).
    pub(crate) fn keep_finished(&mut self) -> Result<()> {
        let before = self.runs.len();
        self.runs.retain(RunSpec::done);
        eprintln!(
            "--finished-only: {} of {before} runs have finished; using those",
            self.runs.len()
        );
        if self.runs.is_empty() {
            return Err(BadInput("--finished-only: no run has finished yet".into()).into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::profile::{profile, ProfileName};

    #[test]
    fn policy_variants_share_their_tau_zero_runs_only() {
        let p = profile(ProfileName::Cpu);
        let refill = &p.models[0].config;
        let shrink = super::super::util::set_key(refill, "mr", "policy", "shrink").unwrap();
        assert_ne!(refill, &shrink);
        assert_eq!(
            run_key(refill, 0.0, 1),
            run_key(&shrink, 0.0, 1),
            "at τ = 0 the batch policy changes nothing"
        );
        assert_ne!(run_key(refill, 0.05, 1), run_key(&shrink, 0.05, 1));
        assert_ne!(run_key(refill, 0.0, 0), run_key(refill, 0.0, 1));
        // only the [mr] section loses those keys
        let other = "[x]\npolicy = 1\n[mr]\npolicy = \"shrink\"\nmode = \"g\"\n";
        assert_eq!(
            canonical_config(other, 0.0),
            "[x]\npolicy = 1\n[mr]\nmode = \"g\"\n"
        );
        assert_eq!(canonical_config(other, 0.1), other);
    }

    /// Before the guideline is measured, runs at different guideline factors keep apart
    /// (they once all keyed to τ = NaN: at two seeds per τ `--plan` counted 5 runs to train
    /// instead of 18);
    /// τ = 0 keys as itself, shared by the batch policies.
    #[test]
    fn unmeasured_guideline_keeps_factors_apart() {
        let p = profile(ProfileName::Cpu);
        let refill = &p.models[0].config;
        let shrink = &p.models[1].config;
        let nan = f64::NAN;
        assert_ne!(plan_key(refill, nan, 0.5, 0), plan_key(refill, nan, 1.0, 0));
        assert_ne!(plan_key(refill, nan, 0.5, 0), plan_key(refill, nan, 0.5, 1));
        assert_ne!(plan_key(refill, nan, 0.5, 0), plan_key(shrink, nan, 0.5, 0));
        assert_eq!(plan_key(refill, 0.0, 0.0, 0), plan_key(shrink, 0.0, 0.0, 0));
        assert_eq!(plan_key(refill, 0.05, 0.5, 0), run_key(refill, 0.05, 0));
    }

    /// The configurations (and so the run keys) of the committed cpu results are still what the
    /// profile writes: the text edits are format-preserving.
    #[test]
    fn cpu_profile_configs_match_the_committed_results() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../results/cpu/fig6/provenance.json"
        );
        let prov: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let p = profile(ProfileName::Cpu);
        for m in &p.models {
            assert_eq!(
                prov["configs"][m.name].as_str(),
                Some(m.config.as_str()),
                "config of {}",
                m.name
            );
        }
        // at τ = 0 the inert [mr] lines go, nothing else changes
        let c = &p.models[2].config;
        let canon = canonical_config(c, 0.0);
        let kept: Vec<&str> = c
            .lines()
            .filter(|l| {
                !["policy =", "max_draws =", "exhausted ="]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .collect();
        assert_eq!(canon, kept.join("\n") + "\n");
    }
}

//! The gate's tests: builds and resumption, continuations, committed results, setup keys.

use std::path::Path;

use super::evals::*;
use super::runs::*;
use super::setups::*;
use super::*;
use crate::reproduce::runner::Bins;

#[test]
fn a_run_is_resumed_only_by_the_build_that_started_it() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let fake = work.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    for (name, body) in [("mr-train", "build A"), ("mr-metrics", "metrics")] {
        std::fs::write(fake.join(name), body).unwrap();
    }
    let built = Bins {
        train: fake.join("mr-train"),
        metrics: fake.join("mr-metrics"),
    };
    let a = built.snapshot(work).unwrap();
    let build_a = a.build().unwrap();
    assert_eq!(build_a.len(), 12);
    // a new run is started by the current snapshot and records it
    let run = work.join("run-s0");
    assert_eq!(training_bins(work, &a, &run).unwrap().train, a.train);
    assert_eq!(recorded_build(&run).as_deref(), Some(build_a.as_str()));
    // once started, it resumes with its own build even when a newer one is current
    std::fs::write(run.join("config.toml"), "").unwrap();
    std::fs::write(fake.join("mr-train"), "build B, longer").unwrap();
    let b = built.snapshot(work).unwrap();
    assert_ne!(b.build(), a.build());
    assert_eq!(training_bins(work, &b, &run).unwrap().train, a.train);
    // its build gone: refused, with the way out in the message
    std::fs::remove_dir_all(work.join("bin").join(&build_a)).unwrap();
    let e = format!("{:#}", training_bins(work, &b, &run).unwrap_err());
    assert!(
        e.contains("no longer in") && e.contains("delete the folder"),
        "{e}"
    );
    // started before builds were recorded: refused too
    std::fs::remove_file(run.join(BUILD_FILE)).unwrap();
    let e = format!("{:#}", training_bins(work, &b, &run).unwrap_err());
    assert!(e.contains("before runs recorded"), "{e}");
}

#[test]
fn a_continuation_is_seeded_with_its_base_run_and_build() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let ext = SETUPS
        .iter()
        .find(|s| s.extends.is_some())
        .copied()
        .unwrap();
    let r = GateRun::new(ext, 0);
    let base = base_run(&r).unwrap();
    let from = work.join(&base.key);
    let out = work.join(&r.key);
    std::fs::create_dir_all(from.join("checkpoints/last")).unwrap();
    std::fs::write(from.join("config.toml"), "x").unwrap();
    std::fs::write(from.join("log.csv"), "step\n").unwrap();
    std::fs::write(from.join("checkpoints/last/g.mpk"), "weights").unwrap();
    // an unfinished base is refused
    let header =
        "step,fid,ct,ct_mr,nn_mean_mr,within_guide_mr,seconds,kid,kid_std,nn_gen,nn_test\n";
    let row = |step: usize| format!("{step},1,0,,,,1,0.1,0.01,0.05,0.05\n");
    std::fs::write(from.join("eval.csv"), format!("{header}{}", row(500))).unwrap();
    let e = format!("{:#}", seed_from_base(work, &r, &out).unwrap_err());
    assert!(e.contains("has not finished"), "{e}");
    assert!(!out.exists());
    // a finished one is copied with the build that trained it
    let last = row(base.setup.steps);
    std::fs::write(from.join("eval.csv"), format!("{header}{last}")).unwrap();
    std::fs::write(from.join(BUILD_FILE), "0123456789ab\n").unwrap();
    seed_from_base(work, &r, &out).unwrap();
    assert_eq!(recorded_build(&out).as_deref(), Some("0123456789ab"));
    assert_eq!(
        std::fs::read_to_string(out.join("checkpoints/last/g.mpk")).unwrap(),
        "weights"
    );
}

#[test]
fn a_sample_grid_older_than_the_last_checkpoint_is_redrawn() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let grid = d.join("samples-last-16.npy");
    assert!(older_than_last_checkpoint(&grid, d), "missing");
    std::fs::write(&grid, "old").unwrap();
    assert!(
        !older_than_last_checkpoint(&grid, d),
        "no checkpoint to compare"
    );
    std::fs::create_dir_all(d.join("checkpoints/last")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(d.join("checkpoints/last/g.mpk"), "newer").unwrap();
    assert!(older_than_last_checkpoint(&grid, d), "trained on since");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&grid, "redrawn").unwrap();
    assert!(!older_than_last_checkpoint(&grid, d));
}

#[test]
fn every_setup_has_a_distinct_key_and_a_valid_config() {
    let keys: std::collections::BTreeSet<String> = SETUPS.iter().map(setup_key).collect();
    assert_eq!(keys.len(), SETUPS.len());
    for s in SETUPS {
        let v: toml::Table = toml::from_str(&config(s)).unwrap();
        assert_eq!(v["data"]["train"].as_str(), Some(s.train));
        assert_eq!(v["mr"]["mode"].as_str(), Some("none"));
        assert_eq!(v["eval"]["samples"].as_integer(), Some(SAMPLES as i64));
        // a set below the issue's floor is a probe, and says so in its reason
        assert!(
            !s.below_floor() || s.why.starts_with("below the floor"),
            "{}: below the issue's floor of {FLOOR} images without saying so",
            s.name
        );
    }
}

#[test]
fn runs_whose_work_folder_is_gone_are_read_from_the_committed_results() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, dir) = (tmp.path().join("work"), tmp.path().join("results"));
    let keep = dir.join("runs").join("setup-abc-s1");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        dir.join("inception.csv"),
        "setup,seed,ct_inception\nsetup,1,9.5\nsetup,2,x\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("provenance.json"),
        r#"{"runs_used": [{"run": "setup-abc-s1", "copies": {"within_tau": 0.5}}]}"#,
    )
    .unwrap();
    let c = Committed::read(&dir).unwrap();
    assert_eq!(c.inception.get(&("setup".to_string(), 1)), Some(&9.5));
    assert_eq!(c.inception.len(), 1, "an unparsable value is left out");
    assert_eq!(c.used["setup-abc-s1"]["copies"]["within_tau"], 0.5);
    // no committed evaluations: nothing to read
    assert_eq!(committed_source(&work, &keep), None);
    std::fs::write(keep.join("eval.csv"), "step,ct\n500,1\n").unwrap();
    assert_eq!(committed_source(&work, &keep), Some(keep.clone()));
    // a work folder with its own evaluations wins (it is the newer, and has checkpoints)
    std::fs::create_dir_all(work.join("setup-abc-s1")).unwrap();
    std::fs::write(work.join("setup-abc-s1/eval.csv"), "step,ct\n500,1\n").unwrap();
    assert_eq!(committed_source(&work, &keep), None);
    // a fresh results folder reads as empty
    let none = Committed::read(&tmp.path().join("nothing")).unwrap();
    assert!(none.inception.is_empty() && none.used.is_empty());
}

#[test]
fn every_committed_run_folder_still_has_its_setup_key() {
    // a change to `config` that moved an existing setup's key would orphan its runs
    let runs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/cpu-gate/runs");
    let keys: Vec<String> = SETUPS.iter().map(setup_key).collect();
    let mut seen = 0;
    for e in std::fs::read_dir(&runs).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let key = name.rsplit_once("-s").map(|(k, _)| k).unwrap();
        assert!(
            keys.iter().any(|k| k == key),
            "{name}: no setup has key {key}"
        );
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} committed runs");
    let ema = SETUPS.iter().find(|s| s.ema.is_some()).unwrap();
    let v: toml::Table = toml::from_str(&config(ema)).unwrap();
    assert_eq!(v["train"]["ema"].as_bool(), Some(true));
    assert_eq!(v["train"]["ema_decay"].as_float(), ema.ema.map(|e| e.0));
    assert!(v["train"].get("ema_average_bn_stats").is_none());
    let avg = SETUPS.iter().find(|s| s.ema.is_some_and(|e| e.2)).unwrap();
    let v: toml::Table = toml::from_str(&config(avg)).unwrap();
    assert_eq!(v["train"]["ema_average_bn_stats"].as_bool(), Some(true));
}

#[test]
fn an_extending_setup_differs_from_its_base_only_in_more_steps() {
    for s in SETUPS.iter().filter(|s| s.extends.is_some()) {
        let base = base_run(&GateRun::new(*s, 1))
            .unwrap_or_else(|| panic!("{} extends an unknown setup", s.name));
        assert_eq!(base.key, format!("{}-s1", setup_key(&base.setup)));
        let b = &base.setup;
        assert_eq!(Some(b.name), s.extends);
        assert!(
            s.steps > b.steps,
            "{} must train longer than {}",
            s.name,
            b.name
        );
        let (mut cs, mut cb): (toml::Table, toml::Table) = (
            toml::from_str(&config(s)).unwrap(),
            toml::from_str(&config(b)).unwrap(),
        );
        cs["train"].as_table_mut().unwrap().remove("steps");
        cb["train"].as_table_mut().unwrap().remove("steps");
        assert_eq!(cs, cb, "{} and {} differ beyond steps", s.name, b.name);
    }
}

#[test]
fn plan_raises_seeds_but_never_lowers_them() {
    let base = plan(None).len();
    assert_eq!(base, SETUPS.iter().map(|s| s.seeds).sum::<usize>());
    assert!(plan(Some(1)).len() >= base);
    assert!(plan(Some(1)).len() <= base + SETUPS.len());
    assert!(plan(Some(5)).len() >= base);
}

#[test]
fn a_run_finished_in_the_committed_results_is_not_trained_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, dir) = (tmp.path().join("work"), tmp.path().join("results"));
    let s = SETUPS[0];
    let all: Vec<GateRun> = (0..3).map(|seed| GateRun::new(s, seed)).collect();
    let evals = |to: usize| {
        let mut t = String::from("step,ct,nn_gen,nn_test,kid,kid_std,fid\n");
        for step in (s.eval_every..=to).step_by(s.eval_every) {
            t += &format!("{step},1,0.05,0.05,0.1,0.01,2\n");
        }
        t
    };
    let put = |root: &Path, r: &GateRun, to: usize| {
        let d = root.join(&r.key);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("eval.csv"), evals(to)).unwrap();
    };
    let keys = |todo: Vec<&GateRun>| todo.iter().map(|r| r.seed).collect::<Vec<_>>();
    // nothing anywhere: all three
    assert_eq!(keys(runs_to_train(&all, |_| true, &work, &dir)), [0, 1, 2]);
    // seed 0 finished and seed 1 part-way in the committed results, seed 2 nowhere
    put(&dir.join("runs"), &all[0], s.steps);
    put(&dir.join("runs"), &all[1], s.eval_every);
    assert_eq!(keys(runs_to_train(&all, |_| true, &work, &dir)), [1, 2]);
    // a work folder with evaluations of its own decides for itself (here: part-way, so trained)
    put(&work, &all[0], s.eval_every);
    assert_eq!(keys(runs_to_train(&all, |_| true, &work, &dir)), [0, 1, 2]);
    // finished in the work folder
    put(&work, &all[2], s.steps);
    assert_eq!(keys(runs_to_train(&all, |_| true, &work, &dir)), [0, 1]);
    // only the wanted ones
    assert_eq!(keys(runs_to_train(&all, |r| r.seed == 1, &work, &dir)), [1]);
    // another results folder: the committed runs do not count
    let fresh = tmp.path().join("elsewhere");
    assert_eq!(keys(runs_to_train(&all, |_| true, &work, &fresh)), [0, 1]);
}

#[test]
fn an_unfinished_seed_is_listed_but_not_averaged_with_the_finished_ones() {
    let s = *SETUPS.iter().find(|s| s.seeds == 3).unwrap();
    // seeds 0 and 1 finished at C_T −1 and −2, seed 2 stopped part-way at +5
    let rows = [
        (0, s.steps, 1, -1.0),
        (1, s.steps, 1, -2.0),
        (2, s.eval_every, 0, 5.0),
    ];
    let row = table_row(s, &rows);
    // mean and std of −1 and −2 only; the last step is the finished seeds'
    assert!(row.contains("| -1.50 ± 0.71 |"), "{row}");
    assert!(row.contains(&format!("| {} |", s.steps)), "{row}");
    assert!(
        row.contains("-1.00, -2.00, (+5.00 at step 500, unfinished: not counted)"),
        "{row}"
    );
    assert!(row.contains("| 3 (2) |"), "{row}");
    assert!(row.contains("2 of 3 declared finished"), "{row}");
}

#[test]
fn a_probe_below_the_floor_never_passes() {
    let s = *SETUPS.iter().find(|s| s.below_floor()).unwrap();
    let rows: Vec<_> = (0..3).map(|seed| (seed, s.steps, 1, -6.0)).collect();
    let row = table_row(s, &rows);
    assert!(!row.contains("pass**"), "{row}");
    assert!(
        row.contains("probe below the 128-image floor (cannot pass): copies"),
        "{row}"
    );
}

/// The `table.md` row of setup `s` from `(seed, step, finished, C_T)` final evaluations.
fn table_row(s: Setup, rows: &[(i64, usize, i64, f64)]) -> String {
    use crate::reproduce::table::{Col, Table};
    let n = rows.len();
    let t = Table::new()
        .with("setup", Col::Str(vec![s.name.to_string(); n]))
        .with("n_train", Col::I64(vec![s.n_train as i64; n]))
        .with("seed", Col::I64(rows.iter().map(|r| r.0).collect()))
        .with("step", Col::I64(rows.iter().map(|r| r.1 as i64).collect()))
        .with("finished", Col::I64(rows.iter().map(|r| r.2).collect()))
        .with("ct", Col::F64(rows.iter().map(|r| r.3).collect()))
        .with("nn_gen", Col::F64(vec![0.05; n]))
        .with("nn_test", Col::F64(vec![0.05; n]))
        .with("kid", Col::F64(vec![0.01; n]))
        .with("kid_std", Col::F64(vec![0.0; n]))
        .with("fid", Col::F64(vec![1.0; n]));
    let inception = Table::new()
        .with("setup", Col::Str(vec![]))
        .with("seed", Col::I64(vec![]))
        .with("ct_inception", Col::F64(vec![]));
    let levels = serde_json::json!({ (s.test): {"noise": {"kid": 2.0, "fid": 50.0}} });
    let md = super::report::summary_md(&t, &inception, &levels).unwrap();
    md.lines()
        .find(|l| l.starts_with(&format!("| {} |", s.name)))
        .unwrap()
        .to_string()
}

#[test]
fn the_plan_rate_falls_back_to_the_committed_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, committed) = (tmp.path().join("work"), tmp.path().join("runs"));
    let s = SETUPS[0];
    let log = |root: &Path, seed: u64, wall: f64| {
        let d = root.join(GateRun::new(s, seed).key);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("log.csv"),
            format!("step,loss_d,wall_s\n50,1,5\n100,1,{wall}\n"),
        )
        .unwrap();
    };
    assert_eq!(measured_rate(&[&work, &committed], &s), None);
    // the median over the committed runs: 0.1, 0.2, 0.3 s per step
    for (seed, wall) in [(0, 10.0), (1, 30.0), (2, 20.0)] {
        log(&committed, seed, wall);
    }
    assert_eq!(measured_rate(&[&work, &committed], &s), Some(0.2));
    // the work folder's own runs come first
    log(&work, 0, 50.0);
    assert_eq!(measured_rate(&[&work, &committed], &s), Some(0.5));
}

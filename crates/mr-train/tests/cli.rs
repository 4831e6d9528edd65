//! The `mr-train` command line: bad input gives one `error:` line and exit 2; a tiny run on real
//! CIFAR-10 images trains with rejection, resumes, and samples PNGs and `.npy` files.

use std::path::Path;

use assert_cmd::Command;

fn mr_train() -> Command {
    Command::cargo_bin("mr-train").unwrap()
}

fn one_error_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "stderr: {err}");
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    lines[0].to_string()
}

const TINY: &str = r#"
seed = 3
[model]
preset = "dcgan-small"
z_dim = 16
g_width = 8
d_width = 8
[data]
train = "cifar10-train[automobile]:24@0"
[train]
steps = 2
batch = 8
n_dis = 1
[mr]
mode = "g"
tau = "guide"
embedder = "small-cnn"
[eval]
every = 0
[log]
every = 1
"#;

#[test]
fn bad_input_is_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[mr]\ntau = \"median\"\n").unwrap();
    let out = mr_train()
        .args(["--config", cfg.to_str().unwrap(), "--out"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("mr.tau"));

    let out = mr_train()
        .args(["--config", "/nonexistent/c.toml", "--out", "x"])
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("/nonexistent/c.toml"));

    std::fs::write(&cfg, TINY).unwrap();
    let out = mr_train()
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("--out"));

    let out = mr_train()
        .args(["--config", cfg.to_str().unwrap(), "--mr", "both", "--out"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(line.contains("--mr") && line.contains("`gd`"), "{line}");

    let out = mr_train()
        .args(["--config", cfg.to_str().unwrap(), "--train", "no-such-set"])
        .arg("--out")
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("no-such-set"));
    assert!(
        !tmp.path().join("r").exists(),
        "no run folder for a failed start"
    );

    let out = mr_train()
        .args(["sample", "--run"])
        .arg(tmp.path())
        .args(["--n", "2", "--out"])
        .arg(tmp.path().join("s"))
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("no checkpoint"));
}

#[test]
fn default_config_round_trips() {
    let out = mr_train().arg("default-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let cfg = mr_train::TrainConfig::from_toml(&text).unwrap();
    assert_eq!(cfg, mr_train::TrainConfig::default());
}

fn sample(run: &Path, n: usize, out: &Path) -> std::process::Output {
    mr_train()
        .args(["sample", "--run"])
        .arg(run)
        .args(["--n", &n.to_string(), "--out"])
        .arg(out)
        .output()
        .unwrap()
}

fn cifar_present() -> bool {
    let root = mr_data::registry::data_root(None);
    if mr_data::registry::cifar10_variant(&root).is_none() {
        eprintln!(
            "skipping: CIFAR-10 not fetched under {} (run `cargo xtask fetch cifar10`)",
            root.display()
        );
        return false;
    }
    true
}

#[test]
fn trains_with_rejection_resumes_and_samples_on_cifar10() {
    if !cifar_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let run = tmp.path().join("run");
    let cache = tmp.path().join("data");
    let out = mr_train()
        .env("RAYON_NUM_THREADS", "1")
        .args(["--config", cfg.to_str().unwrap(), "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning: steps"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["steps"], 2);
    assert!(summary["tau_guide"].as_f64().unwrap() > 0.0);
    assert!(summary["mr_embedder"]
        .as_str()
        .unwrap()
        .starts_with("small-cnn"));
    for f in [
        "config.toml",
        "log.csv",
        "summary.json",
        "checkpoints/last/g.mpk",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let _ = cache;

    // the same folder again without --resume is refused; with it (and more steps) it continues
    let out = mr_train()
        .args(["--config", cfg.to_str().unwrap(), "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("--resume"));
    // resumed with another thread count: it continues, says so, and records both machines
    let out = mr_train()
        .env("RAYON_NUM_THREADS", "2")
        .args(["--config"])
        .arg(run.join("config.toml"))
        .args(["--steps", "3", "--resume", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: steps 0..2 of this run were trained with")
            && stderr.contains("1 thread(s)")
            && stderr.contains("2 thread(s)"),
        "{stderr}"
    );
    let machines = std::fs::read_to_string(run.join("machines.csv")).unwrap();
    let rows: Vec<&str> = machines.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{machines}");
    assert!(
        rows[0].starts_with("0,") && rows[1].starts_with("2,"),
        "{machines}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["steps"], 3);
    let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 4, "header + one row per step: {log}");

    // samples: a PNG folder and a uint8 .npy with labels
    let pngs = tmp.path().join("pngs");
    let out = sample(&run, 5, &pngs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&pngs).unwrap().count(), 5);
    let npy = tmp.path().join("gen.npy");
    let out = sample(&run, 4, &npy);
    assert!(out.status.success());
    let arr = mr_data::npy::read_npy(&npy).unwrap();
    assert_eq!(arr.shape, vec![4, 32, 32, 3]);
    assert!(Path::new(&tmp.path().join("gen_labels.npy")).is_file());
    // an existing folder is not overwritten
    let out = sample(&run, 5, &pngs);
    assert!(one_error_line(&out).contains("exists"));
}

#[test]
fn averaging_ema_bn_statistics_is_recorded_only_when_on() {
    let mut cfg = mr_train::TrainConfig::default();
    // off (the default): the recorded TOML and resume key are those of configs written before
    // the option existed
    let off = cfg.to_toml();
    assert!(!off.contains("ema_average_bn_stats"), "{off}");
    let key_off = cfg.resume_key();
    cfg.train.ema_average_bn_stats = true;
    let on = cfg.to_toml();
    assert!(on.contains("ema_average_bn_stats = true"), "{on}");
    assert_ne!(cfg.resume_key(), key_off);
    assert_eq!(mr_train::TrainConfig::from_toml(&on).unwrap(), cfg);
}

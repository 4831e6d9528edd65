//! `cargo xtask bench metrics`: FID, C_T and exact NN search against the Python reference tools
//! (pytorch-fid's formula on scipy, data-copying on scikit-learn, faiss-cpu), side by side on the
//! same seeded feature files in one run; plus the machine's GEMM speed (faer vs ndarray), the
//! k-d tree vs the GEMM scan at low dimension, and the IVF index. Writes
//! `results/bench/metrics.json` and `results/bench/metrics.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use mr_data::atomic::write_bytes_atomic;
use mr_data::npy::{read_npy, write_npy, NpyArray, NpyData};
use mr_metrics::ct::{ct, CtParams};
use mr_metrics::fid::{fid, fid_features, Stats};
use mr_metrics::fidelity::{authpct, prdc, vendi, vendi_f32};
use mr_metrics::Features;
use mr_nn::{ExactIndex, IvfIndex, IvfParams, KMeansParams, KdIndex, Metric, NnIndex, View};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct BenchMetricsArgs {
    /// Small sizes (a minute in all) instead of the sizes.
    #[arg(long)]
    pub quick: bool,
    /// Timed repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Python with numpy/scipy/scikit-learn/faiss-cpu for the reference side.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Skip the Python reference side.
    #[arg(long)]
    pub no_reference: bool,
    /// Output folder.
    #[arg(long, default_value = "results/bench")]
    pub out: PathBuf,
    /// Only these parts (comma-separated: fid, ct, nn, gemm, kd, ivf, fidelity, memory); the
    /// report is then `metrics-only-<parts>.{md,json}`, so the full one is never overwritten by
    /// a partial run.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

const PARTS: [&str; 8] = ["fid", "ct", "nn", "gemm", "kd", "ivf", "fidelity", "memory"];

struct Sizes {
    train: usize,
    gen: usize,
    test: usize,
    fid: usize,
    d: usize,
}

/// Non-negative clustered features (post-ReLU-like), seeded.
fn features(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut crng = ChaCha8Rng::seed_from_u64(99);
    let centres: Vec<f32> = (0..32 * d).map(|_| crng.random::<f32>()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(n * d);
    for _ in 0..n {
        let c = rng.random_range(0..32);
        for j in 0..d {
            v.push((centres[c * d + j] + 0.7 * (rng.random::<f32>() - 0.5)).max(0.0));
        }
    }
    v
}

fn ensure(dir: &Path, name: &str, n: usize, d: usize, seed: u64) -> Result<Features> {
    let p = dir.join(name);
    if let Ok(a) = read_npy(&p) {
        if a.shape == [n, d] {
            return Ok(Features::from_npy(a, name)?);
        }
    }
    let v = features(n, d, seed);
    write_npy(&p, &NpyArray::new(vec![n, d], NpyData::F32(v.clone())))?;
    Ok(Features::new(v, d, name)?)
}

/// A `[n, d]` float32 `.npy` of [`features`] written in blocks of 10,000 rows (never all in
/// memory), kept between runs.
fn ensure_big(p: &Path, n: usize, d: usize) -> Result<()> {
    use std::io::Write;
    if p.is_file() && std::fs::metadata(p)?.len() as usize > n * d * 4 {
        return Ok(());
    }
    let header = mr_data::npy::npy_header(&[n, d], mr_data::npy::DType::F32);
    mr_data::atomic::write_atomic(p, |w| {
        w.write_all(&header)?;
        let mut done = 0;
        while done < n {
            let m = 10_000.min(n - done);
            for x in features(m, d, 1000 + done as u64) {
                w.write_all(&x.to_le_bytes())?;
            }
            done += m;
        }
        Ok(())
    })
    .with_context(|| format!("writing {}", p.display()))
}

/// Run `cmd` to completion: its wall time and its peak resident memory (MB), polled from
/// `/proc/<pid>/status` (`VmHWM`, a high-water mark, so the last read is the peak up to a few
/// milliseconds before exit; `None` where /proc does not exist).
fn child_peak(cmd: &mut Command) -> Result<(f64, Option<f64>)> {
    let t = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cannot start mr-metrics")?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = None;
    loop {
        if let Some(st) = child.try_wait()? {
            anyhow::ensure!(st.success(), "mr-metrics failed ({st})");
            break;
        }
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
            {
                peak = Some(kb / 1024.0);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok((t.elapsed().as_secs_f64(), peak))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `repeats` runs and the last value.
fn time<T>(repeats: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, Vec<f64>, T)> {
    let mut times = vec![];
    let mut last = None;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        last = Some(f()?);
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((median(times.clone()), times, last.expect("repeats >= 1")))
}

/// GFLOP/s of faer's `n³` GEMM in the scalar type `of` converts to (f32 or f64).
fn gemm_gflops_faer<T: faer::traits::ComplexField + Copy>(
    n: usize,
    repeats: usize,
    of: impl Fn(f32) -> T,
) -> Result<f64> {
    let a = Mat::<T>::from_fn(n, n, |i, j| of(((i * 7 + j * 3) % 13) as f32 * 0.1));
    let mut c = Mat::<T>::zeros(n, n);
    let (s, _, _) = time(repeats, || {
        matmul(
            c.as_mut(),
            Accum::Replace,
            a.as_ref(),
            a.as_ref(),
            of(1.0),
            Par::rayon(0),
        );
        Ok(())
    })?;
    Ok(2.0 * (n as f64).powi(3) / s / 1e9)
}

fn gemm_gflops_ndarray(n: usize, repeats: usize) -> Result<f64> {
    let a =
        ndarray::Array2::<f32>::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.1);
    let (s, _, _) = time(repeats, || Ok(a.dot(&a)))?;
    Ok(2.0 * (n as f64).powi(3) / s / 1e9)
}

pub fn run(args: &BenchMetricsArgs) -> Result<()> {
    let sz = if args.quick {
        Sizes {
            train: 5000,
            gen: 1000,
            test: 500,
            fid: 2000,
            d: 512,
        }
    } else {
        Sizes {
            train: 50_000,
            gen: 10_000,
            test: 2000,
            fid: 10_000,
            d: 2048,
        }
    };
    let dir = PathBuf::from("target/bench-metrics").join(if args.quick { "quick" } else { "full" });
    std::fs::create_dir_all(&dir)?;
    eprintln!(
        "bench metrics: generating seeded features in {}",
        dir.display()
    );
    let d = sz.d;
    let train = ensure(&dir, "ct_train.npy", sz.train, d, 1)?;
    let gen = ensure(&dir, "ct_gen.npy", sz.gen, d, 2)?;
    let test = ensure(&dir, "ct_test.npy", sz.test, d, 3)?;
    let fa = ensure(&dir, "fid_a.npy", sz.fid, d, 4)?;
    let fb = ensure(&dir, "fid_b.npy", sz.fid, d, 5)?;
    let threads = rayon::current_num_threads();
    let r = args.repeats;
    let mut ours = serde_json::Map::new();
    if let Some(bad) = args.only.iter().find(|p| !PARTS.contains(&p.as_str())) {
        anyhow::bail!("--only: unknown part {bad} (parts: {})", PARTS.join(", "));
    }
    let want = |part: &str| args.only.is_empty() || args.only.iter().any(|p| p == part);

    if want("fid") {
        eprintln!("FID {}x{d} vs {}x{d} ...", sz.fid, sz.fid);
        let (s, t, v) = time(r, || Ok(fid_features(&fa, &fb)?.fid))?;
        // its two parts: μ, Σ of both sets (two syrks), then Tr √(Σ1Σ2) (Cholesky, two triangular
        // products, the eigenvalues of one symmetric matrix)
        let (ss, _, (sa, sb)) = time(r, || {
            Ok((Stats::from_features(&fa)?, Stats::from_features(&fb)?))
        })?;
        let (ts, _, _) = time(r, || Ok(fid(&sa, &sb)?))?;
        let f64_rate = gemm_gflops_faer(2048, r, f64::from)?;
        // the covariances' flops: n·d·(d+1) per set (lower triangle, FMA = 2)
        let cov_flops = 2.0 * sz.fid as f64 * d as f64 * (d as f64 + 1.0);
        ours.insert(
            "fid".into(),
            json!({"median_s": s, "times_s": t, "value": v, "stats_s": ss, "trace_sqrt_s": ts,
                   "f64_gemm_gflops": f64_rate,
                   "cov_gemm_bound_s": cov_flops / (f64_rate * 1e9)}),
        );
    }

    if want("ct") {
        eprintln!(
            "C_T train {} test {} gen {}, 10 cells ...",
            sz.train, sz.test, sz.gen
        );
        let p = CtParams {
            cells: 10,
            metric: Metric::L2,
            n_init: 4,
            ..CtParams::default()
        };
        let (s, t, res) = time(r, || Ok(ct(&train, &test, &gen, &p)?))?;
        // its parts: the k-means cells (all restarts), and the exact NN of every test and generated
        // sample within its cell, whose GEMM flops bound the whole from below
        let (ks, _, _) = time(r, || {
            Ok(KMeansParams::new(p.cells)
                .with_n_init(p.n_init)
                .with_seed(p.seed)
                .check()?
                .fit(train.view())?)
        })?;
        let nn_flops: f64 = res
            .cells
            .iter()
            .map(|c| 2.0 * ((c.n_gen + c.n_test) * c.n_train * d) as f64)
            .sum();
        ours.insert(
            "ct".into(),
            json!({"median_s": s, "times_s": t, "value": res.ct, "metric": "l2",
                   "kmeans_s": ks, "nn_gflop": nn_flops / 1e9}),
        );
    }

    if want("nn") {
        eprintln!("exact cosine 1-NN {} x {} ...", sz.gen, sz.train);
        let (s, t, v) = time(r, || {
            let idx = ExactIndex::new(train.view(), Metric::Cosine)?;
            let nn = idx.search(gen.view(), 1)?;
            Ok(nn.distances.iter().sum::<f64>() / nn.distances.len() as f64)
        })?;
        ours.insert(
            "nn".into(),
            json!({"median_s": s, "times_s": t, "value": v}),
        );
    }

    if want("gemm") {
        // the machine's GEMM speed on the same product (10k x 50k x 2048 in 4096-row blocks)
        eprintln!("plain GEMM of the same size ...");
        let (gs, _, _) = time(1, || {
            let q = faer::MatRef::from_row_major_slice(gen.data(), sz.gen, d);
            let mut out = Mat::<f32>::zeros(sz.gen, 4096);
            let mut start = 0;
            while start < sz.train {
                let end = (start + 4096).min(sz.train);
                let x = faer::MatRef::from_row_major_slice(
                    &train.data()[start * d..end * d],
                    end - start,
                    d,
                );
                matmul(
                    out.as_mut().subcols_mut(0, end - start),
                    Accum::Replace,
                    q,
                    x.transpose(),
                    1.0f32,
                    Par::rayon(0),
                );
                start = end;
            }
            Ok(())
        })?;
        let gemm_flops = 2.0 * sz.gen as f64 * sz.train as f64 * d as f64;
        ours.insert(
            "gemm_same_size".into(),
            json!({"seconds": gs, "gflops": gemm_flops / gs / 1e9}),
        );

        eprintln!("GEMM speed faer vs ndarray (1024^3) ...");
        let (gf, gn) = (
            gemm_gflops_faer(1024, r, |x| x)?,
            gemm_gflops_ndarray(1024, r)?,
        );
        ours.insert("gemm_gflops".into(), json!({"faer": gf, "ndarray": gn}));
    }

    if want("kd") {
        eprintln!("k-d tree vs GEMM scan at low dimension ...");
        let mut kd = vec![];
        let (kn, kq) = if args.quick {
            (5000, 1000)
        } else {
            (50_000, 10_000)
        };
        for dim in [4usize, 8, 16, 32, 64] {
            let x = features(kn, dim, 11);
            let q = features(kq, dim, 12);
            let (xv, qv) = (View::new(&x, dim)?, View::new(&q, dim)?);
            let (ts, _, a) = time(r, || Ok(KdIndex::new(xv, Metric::L2)?.search(qv, 1)?))?;
            let (es, _, b) = time(r, || Ok(ExactIndex::new(xv, Metric::L2)?.search(qv, 1)?))?;
            anyhow::ensure!(
                a.distances == b.distances,
                "k-d tree and exact disagree at {dim} dims"
            );
            kd.push(
                json!({"dim": dim, "kdtree_s": ts, "exact_gemm_s": es, "kdtree_speedup": es / ts}),
            );
        }
        ours.insert("kdtree_vs_exact".into(), Value::Array(kd));
    }

    if want("ivf") {
        eprintln!("IVF approximate index ...");
        let (bs, _, ivf) = time(1, || {
            Ok(IvfIndex::new(
                train.view(),
                Metric::Cosine,
                &IvfParams::default(),
            )?)
        })?;
        let (ss, _, _) = time(r, || Ok(ivf.search(gen.view(), 1)?))?;
        let recall = ivf.recall(gen.view().rows(0, 1000.min(sz.gen)), 1)?;
        ours.insert(
            "ivf".into(),
            json!({"build_s": bs, "search_s": ss, "recall_at_1": recall, "nlist": ivf.nlist(), "nprobe": ivf.nprobe()}),
        );
    }

    if want("fidelity") {
        eprintln!("prdc, AuthPct, Vendi {}x{d} vs {}x{d} ...", sz.fid, sz.fid);
        let (s, t, v) = time(r, || Ok(prdc(&fa, &fb, 5)?))?;
        ours.insert(
            "prdc".into(),
            json!({"median_s": s, "times_s": t, "value": v}),
        );
        let (s, t, v) = time(r, || Ok(authpct(&fa, &fb)?))?;
        ours.insert(
            "authpct".into(),
            json!({"median_s": s, "times_s": t, "value": v}),
        );
        let (s, t, v) = time(r, || Ok(vendi(&fb, 1.0)?))?;
        ours.insert(
            "vendi".into(),
            json!({"median_s": s, "times_s": t, "value": v}),
        );
        let (s, t, v) = time(r, || Ok(vendi_f32(&fb, 1.0)?))?;
        ours.insert(
            "vendi_f32".into(),
            json!({"median_s": s, "times_s": t, "value": v}),
        );
    }

    let reference = if args.no_reference {
        Value::Null
    } else {
        eprintln!("Python reference ({}) ...", args.python);
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/metrics_ref.py");
        let out = Command::new(&args.python)
            .arg(&script)
            .arg(&dir)
            .arg(r.to_string())
            .env("OMP_NUM_THREADS", threads.to_string())
            .env("OPENBLAS_NUM_THREADS", threads.to_string())
            .env("MKL_NUM_THREADS", threads.to_string())
            .env("CT_CELLS", "10")
            .env("CT_N_INIT", "4")
            .env("ONLY", args.only.join(","))
            .output()
            .with_context(|| format!("cannot run {}", args.python))?;
        anyhow::ensure!(
            out.status.success(),
            "reference script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).context("reference script output is not JSON")?
    };

    let ratio = |k: &str| -> Option<f64> {
        let theirs = reference.get(k)?.get("median_s")?.as_f64()?;
        let mine = ours.get(k)?.get("median_s")?.as_f64()?;
        Some(theirs / mine)
    };
    let speedups = json!({
        "fid_vs_pytorch_fid_scipy": ratio("fid"),
        "fid_vs_torch_fidelity_eigvals": reference
            .get("fid_eigvals")
            .and_then(|v| v.get("median_s"))
            .and_then(Value::as_f64)
            .zip(ours.get("fid").and_then(|v| v["median_s"].as_f64()))
            .map(|(t, m)| t / m),
        "ct_vs_data_copying_sklearn": ratio("ct"),
        "nn_vs_faiss_flat_ip": ratio("nn"),
        "nn_time_over_plain_gemm": ours
            .get("nn")
            .and_then(|v| v["median_s"].as_f64())
            .zip(ours.get("gemm_same_size").and_then(|v| v["seconds"].as_f64()))
            .map(|(s, g)| s / g),
        "prdc_vs_prdc_package": ratio("prdc"),
        "authpct_vs_dgm_eval_formula": ratio("authpct"),
        "vendi_vs_vendi_score": ratio("vendi"),
        "vendi_float32_vs_vendi_score": reference
            .get("vendi")
            .and_then(|v| v.get("median_s"))
            .and_then(Value::as_f64)
            .zip(ours.get("vendi_f32").and_then(|v| v["median_s"].as_f64()))
            .map(|(t, m)| t / m),
    });
    drop((train, gen, test, fa, fb));
    if want("memory") {
        // memory at scale: FID statistics of 200,000 rows (1.6 GB of float32) by the CLI a user runs
        // (`mr-metrics fid BIG.npy --save-stats OUT.npz`, which streams feature files), its whole
        // process's peak RSS read from /proc while it runs (Linux; else null); then, in this process,
        // that the streamed statistics equal those of the loaded file
        let big_n = if args.quick { 20_000 } else { 200_000 };
        let big = dir.join(format!("fid_{big_n}.npy"));
        ensure_big(&big, big_n, d)?;
        let bin = crate::reproduce::runner::build_bins(false, false)?.metrics;
        let out_stats = dir.join("fid_big_stats.npz");
        let (ss, peak_mb) = child_peak(
            Command::new(&bin)
                .arg("fid")
                .arg(&big)
                .arg("--save-stats")
                .arg(&out_stats),
        )?;
        // exact 1-NN of 1,000 queries against the same file (`mr-metrics nnd`, which reads a
        // feature-file index in blocks of 16,384 rows)
        let queries = dir.join("nnd_queries.npy");
        let mut q = mr_data::npy::NpyRows::open(&big)?.read(big_n - 1000, 1000)?;
        q.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v += 0.01 * ((i % 7) as f32 - 3.0));
        write_npy(
            &queries,
            &NpyArray::new(vec![1000, d], NpyData::F32(q.clone())),
        )?;
        let nn_out = dir.join("nnd_big_dist.npy");
        let (ns, nn_peak_mb) = child_peak(
            Command::new(&bin)
                .args(["nnd", "--distance", "cosine", "--query"])
                .arg(&queries)
                .arg("--index")
                .arg(&big)
                .arg("--out")
                .arg(&nn_out),
        )?;
        let loaded_f = Features::load(&big)?;
        let streamed = Stats::load_npz(&out_stats)?;
        let loaded = Stats::from_features(&loaded_f)?;
        anyhow::ensure!(
            streamed.mu == loaded.mu && streamed.sigma == loaded.sigma,
            "streamed and loaded statistics differ"
        );
        let whole = ExactIndex::new(loaded_f.view(), Metric::Cosine)?
            .search(View::new(&q, d)?, 1)?
            .distances;
        anyhow::ensure!(
            read_npy(&nn_out)?.to_f64() == whole,
            "blocked and in-memory NN distances differ"
        );
        ours.insert(
            "memory".into(),
            json!({"rows": big_n, "dim": d, "file_gb": (big_n * d * 4) as f64 / 1e9,
                   "cli_seconds": ss, "cli_peak_rss_mb": peak_mb,
                   "nnd_queries": 1000, "nnd_cli_seconds": ns, "nnd_cli_peak_rss_mb": nn_peak_mb}),
        );
    }

    let report = json!({
        "sizes": {"train": sz.train, "gen": sz.gen, "test": sz.test, "fid": sz.fid, "dim": d},
        "threads": threads,
        "repeats": r,
        "only": args.only,
        "ours": ours,
        "reference": reference,
        "speedup": speedups,
    });
    std::fs::create_dir_all(&args.out)?;
    let name = match (args.only.is_empty(), args.quick) {
        (true, false) => "metrics".to_string(),
        (true, true) => "metrics-quick".to_string(),
        (false, q) => format!(
            "metrics{}-only-{}",
            if q { "-quick" } else { "" },
            args.only.join("-")
        ),
    };
    write_bytes_atomic(
        &args.out.join(format!("{name}.json")),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let md = markdown(&report);
    write_bytes_atomic(&args.out.join(format!("{name}.md")), md.as_bytes())?;
    println!("{md}");
    Ok(())
}

fn f(v: &Value) -> String {
    v.as_f64().map_or("n/a".into(), |x| format!("{x:.3}"))
}

fn markdown(r: &Value) -> String {
    let o = &r["ours"];
    let p = &r["reference"];
    let s = &r["speedup"];
    let only: Vec<&str> = r["only"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let command = if only.is_empty() {
        "`cargo xtask bench metrics`".to_string()
    } else {
        format!(
            "`cargo xtask bench metrics --only {}` (only what these parts measure is shown)",
            only.join(",")
        )
    };
    let mut m = format!(
        "# mr-metrics benchmark\n\nSizes: train {} x {d}, gen {}, test {}, FID sets {} (dim {d}); {} threads; \
         median of {} runs. Command: {command}.\n\n\
         | task | ours (s) | reference (s) | speed-up |\n|---|---|---|---|\n",
        r["sizes"]["train"],
        r["sizes"]["gen"],
        r["sizes"]["test"],
        r["sizes"]["fid"],
        r["threads"],
        r["repeats"],
        d = r["sizes"]["dim"],
    );
    for (k, name, reference) in [
        (
            "fid",
            "FID from features",
            "pytorch-fid formula (numpy cov + scipy sqrtm)",
        ),
        (
            "ct",
            "C_T, 10 k-means cells (L2)",
            "data-copying on scikit-learn",
        ),
        ("nn", "exact cosine 1-NN", "faiss-cpu IndexFlatIP"),
        (
            "prdc",
            "precision/recall/density/coverage (k 5, FID sets)",
            "the prdc package's compute_prdc",
        ),
        (
            "authpct",
            "AuthPct (FID sets)",
            "dgm-eval's formula on scikit-learn pairwise_distances",
        ),
        (
            "vendi",
            "Vendi score (q 1, second FID set)",
            "vendi-score's score_dual",
        ),
    ] {
        if o[k].is_null() {
            continue;
        }
        let key = match k {
            "fid" => "fid_vs_pytorch_fid_scipy",
            "ct" => "ct_vs_data_copying_sklearn",
            "prdc" => "prdc_vs_prdc_package",
            "authpct" => "authpct_vs_dgm_eval_formula",
            "vendi" => "vendi_vs_vendi_score",
            _ => "nn_vs_faiss_flat_ip",
        };
        m += &format!(
            "| {name} vs {reference} | {} | {} | {}x |\n",
            f(&o[k]["median_s"]),
            f(&p[k]["median_s"]),
            f(&s[key])
        );
    }
    // rows beside the main ones: (ours, reference, speed-up key, label)
    for (ours, reference, speedup, label) in [
        (
            "vendi_f32",
            "vendi",
            "vendi_float32_vs_vendi_score",
            "Vendi score `--float32` (float32 Gram, float64 eigenvalues) vs vendi-score's score_dual",
        ),
        (
            "fid",
            "fid_eigvals",
            "fid_vs_torch_fidelity_eigvals",
            "FID from features vs torch-fidelity 0.4.0's route (np.cov + np.linalg.eigvals)",
        ),
    ] {
        if o[ours].is_null() {
            continue;
        }
        m += &format!(
            "| {label} | {} | {} | {}x |\n",
            f(&o[ours]["median_s"]),
            f(&p[reference]["median_s"]),
            f(&s[speedup])
        );
    }
    if !o["fid"].is_null() {
        m += &format!(
        "\nFID, ours in parts: μ and Σ of both sets {} s, Tr √(Σ1Σ2) {} s. The covariances alone are \
         {} s of float64 GEMM at this machine's measured float64 rate ({} GFLOP/s, faer 2048³): \
         ours reaches {} of that bound for the whole FID. (float64 throughout, as pytorch-fid: \
         float32 GEMMs would be twice as fast and lose the 1e-12 agreement.) torch-fidelity's value: {}.\n",
        f(&o["fid"]["stats_s"]),
        f(&o["fid"]["trace_sqrt_s"]),
        f(&o["fid"]["cov_gemm_bound_s"]),
        f(&o["fid"]["f64_gemm_gflops"]),
        o["fid"]["cov_gemm_bound_s"]
            .as_f64()
            .zip(o["fid"]["median_s"].as_f64())
            .map_or("n/a".into(), |(b, t)| format!("{:.0} %", 100.0 * b / t)),
        f(&p["fid_eigvals"]["value"]),
    );
    }
    if ["prdc", "authpct", "vendi"]
        .iter()
        .any(|k| !o[*k].is_null())
    {
        m += &format!(
        "\nFidelity values: ours precision {} recall {} density {} coverage {} vs the prdc package {} {} {} {}; \
         AuthPct ours {} vs reference {}; Vendi ours {} (`--float32` {}) vs vendi-score {}.\n",
        f(&o["prdc"]["value"]["precision"]),
        f(&o["prdc"]["value"]["recall"]),
        f(&o["prdc"]["value"]["density"]),
        f(&o["prdc"]["value"]["coverage"]),
        f(&p["prdc"]["value"]["precision"]),
        f(&p["prdc"]["value"]["recall"]),
        f(&p["prdc"]["value"]["density"]),
        f(&p["prdc"]["value"]["coverage"]),
        f(&o["authpct"]["value"]),
        f(&p["authpct"]["value"]),
        f(&o["vendi"]["value"]),
        f(&o["vendi_f32"]["value"]),
        f(&p["vendi"]["value"]),
    );
    }
    let mem = &o["memory"];
    if !mem.is_null() {
        m += &format!(
        "\nMemory: `mr-metrics fid BIG.npy --save-stats OUT.npz` on {} × {} float32 features ({} GB \
         file; the CLI streams feature files in blocks of 1,024 rows): {} s, peak RSS of the whole \
         process {} MB. The statistics equal those of the loaded file bit for bit (checked). \
         `mr-metrics nnd --query Q.npy --index BIG.npy` (exact cosine 1-NN of {} queries; the \
         index file read in blocks of 16,384 rows): {} s, peak RSS {} MB; the distances equal an \
         in-memory search's bit for bit (checked).\n",
        mem["rows"],
        mem["dim"],
        f(&mem["file_gb"]),
        f(&mem["cli_seconds"]),
        f(&mem["cli_peak_rss_mb"]),
        mem["nnd_queries"],
        f(&mem["nnd_cli_seconds"]),
        f(&mem["nnd_cli_peak_rss_mb"]),
    );
    }
    let rate = o["gemm_same_size"]["gflops"].as_f64();
    let ct_bound = o["ct"]["nn_gflop"].as_f64().zip(rate).map(|(g, r)| g / r);
    if !o["ct"].is_null() {
        m += &format!(
        "\nC_T, ours in parts: the k-means cells (4 restarts, in lockstep) {} s; the within-cell exact \
         NN searches are {} GFLOP of float32 GEMM, {} s at this machine's measured GEMM rate ({} \
         GFLOP/s, the NN product below) — a bound on any exact method that scans, the reference's \
         included: ours reaches {} of it for the whole C_T.\n",
        f(&o["ct"]["kmeans_s"]),
        f(&o["ct"]["nn_gflop"]),
        ct_bound.map_or("n/a".into(), |b| format!("{b:.3}")),
        rate.map_or("n/a".into(), |r| format!("{r:.1}")),
        ct_bound
            .zip(o["ct"]["median_s"].as_f64())
            .map_or("n/a".into(), |(b, t)| format!("{:.0} %", 100.0 * b / t)),
    );
    }
    let agree: Vec<String> = [
        ("fid", "FID", "reference", ""),
        (
            "ct",
            "C_T",
            "reference",
            " (cells are fitted by different k-means implementations, so C_T differs slightly)",
        ),
        ("nn", "mean NN distance", "faiss", ""),
    ]
    .iter()
    .filter(|(k, ..)| !o[*k].is_null())
    .map(|(k, name, theirs, why)| {
        format!(
            "{name} ours {} vs {theirs} {}{why}",
            f(&o[*k]["value"]),
            f(&p[*k]["value"])
        )
    })
    .collect();
    if !agree.is_empty() {
        m += &format!("\nValues agree: {}.\n", agree.join("; "));
    }
    if !o["gemm_same_size"].is_null() {
        m += &format!(
            "\nPlain GEMM of the NN product: {} s ({} GFLOP/s); exact NN search / plain GEMM = {}.\n",
            f(&o["gemm_same_size"]["seconds"]),
            f(&o["gemm_same_size"]["gflops"]),
            f(&s["nn_time_over_plain_gemm"]),
        );
    }
    if !o["gemm_gflops"].is_null() {
        m += &format!(
            "GEMM 1024^3 f32: faer {} GFLOP/s, ndarray {} GFLOP/s.\n",
            f(&o["gemm_gflops"]["faer"]),
            f(&o["gemm_gflops"]["ndarray"]),
        );
    }
    if !o["ivf"].is_null() {
        m += &format!(
            "IVF (cosine, nlist {}, nprobe {}): build {} s, search {} s, recall@1 {}.\n",
            o["ivf"]["nlist"],
            o["ivf"]["nprobe"],
            f(&o["ivf"]["build_s"]),
            f(&o["ivf"]["search_s"]),
            f(&o["ivf"]["recall_at_1"]),
        );
    }
    if o["kdtree_vs_exact"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        m += "\n| dim | k-d tree (s) | GEMM scan (s) | k-d speed-up |\n|---|---|---|---|\n";
    }
    for row in o["kdtree_vs_exact"].as_array().into_iter().flatten() {
        m += &format!(
            "| {} | {} | {} | {}x |\n",
            row["dim"],
            f(&row["kdtree_s"]),
            f(&row["exact_gemm_s"]),
            f(&row["kdtree_speedup"])
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full run's markdown shows every row; a run of some parts (`--only`) shows only what they
    /// measured — no rows or sentences of n/a and null.
    #[test]
    fn markdown_shows_what_ran() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let read = |name: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(root.join(name)).unwrap()).unwrap()
        };
        let full = markdown(&read("results/bench/metrics.json"));
        for want in [
            "FID from features vs pytorch-fid",
            "C_T, 10 k-means cells",
            "exact cosine 1-NN",
            "FID, ours in parts",
            "C_T, ours in parts",
            "Values agree: FID ours",
            "Plain GEMM of the NN product",
            "| dim | k-d tree (s)",
        ] {
            assert!(full.contains(want), "full run: {want}");
        }
        let mem = markdown(&read("results/bench/metrics-only-memory.json"));
        assert!(mem.contains("Memory: `mr-metrics fid BIG.npy"));
        for absent in [
            "n/a",
            "null",
            "FID, ours in parts",
            "| FID from",
            "Values agree",
        ] {
            assert!(
                !mem.contains(absent),
                "--only memory shows {absent:?}:\n{mem}"
            );
        }
        let fid = markdown(&read("results/bench/metrics-only-fidelity.json"));
        assert!(fid.contains("Fidelity values: ours precision"));
        assert!(!fid.contains("null") && !fid.contains("Memory:"), "{fid}");
    }
}

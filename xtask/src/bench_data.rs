//! `cargo xtask bench data [--python PATH] [--limit N] [--repeats R]`: JPEG decode throughput
//! (images/s, file read + decode into one uint8 `[N, H, W, C]` array) of `mr-data` (pinned
//! zune-jpeg) against Python PIL + numpy (`np.stack([np.asarray(Image.open(f).convert('RGB'))])`)
//! on the same files — the CIFAR-10 JPEG-mirror test split — run side by side. Also compares the
//! decoded pixels (the two decoders are different JPEG implementations). Writes
//! `results/bench/data.json` and `results/bench/data.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mr_data::folder::{decode_files, list_images};
use mr_data::registry::{data_root, fetch_command, workspace_root};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct BenchDataArgs {
    /// Python interpreter with numpy and Pillow.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Use only the first N files (0 = all 10,000 test JPEGs).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Timed repetitions after one warm-up run (best and median are reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Data root (default: $MR_DATA_DIR, else datasets/cache in the workspace).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output folder (default: results/bench in the workspace).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

const PY: &str = r#"
import sys, time, json, hashlib
try:
    import numpy as np
    import PIL
    from PIL import Image
except ImportError as e:
    print(json.dumps({"error": "missing Python module: %s" % e.name}))
    sys.exit(3)
files = [l.rstrip("\n") for l in open(sys.argv[1], encoding="utf-8")]
repeats = int(sys.argv[2])
def run():
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
arr = run()
times = []
for _ in range(repeats):
    t = time.perf_counter()
    arr = run()
    times.append(time.perf_counter() - t)
np.save(sys.argv[3], arr)
print(json.dumps({"times": times, "pil": PIL.__version__, "numpy": np.__version__,
                  "python": sys.version.split()[0],
                  "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}))
"#;

fn stats(times: &[f64], n: usize) -> serde_json::Value {
    let mut t = times.to_vec();
    t.sort_by(|a, b| a.total_cmp(b));
    let best = t[0];
    let median = t[t.len() / 2];
    json!({"times_s": times, "best_s": best, "median_s": median,
           "images_per_s": n as f64 / median})
}

fn time_rust(files: &[PathBuf], threads: usize, repeats: usize) -> Result<(Vec<f64>, Vec<u8>)> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| -> Result<(Vec<f64>, Vec<u8>)> {
        let (mut pixels, _) = decode_files(files, "warm-up")?;
        let mut times = Vec::new();
        for _ in 0..repeats {
            let t = Instant::now();
            let (p, _) = decode_files(files, "decoding")?;
            times.push(t.elapsed().as_secs_f64());
            pixels = p;
        }
        Ok((times, pixels))
    })
}

pub fn run(args: &BenchDataArgs) -> Result<()> {
    let root = data_root(args.data_dir.as_deref());
    let test = root.join("cifar10/jpeg-mirror/test");
    if !test.is_dir() {
        bail!(
            "no CIFAR-10 JPEG mirror under {}: run `{}`",
            root.display(),
            fetch_command("cifar10", &root)
        );
    }
    let mut files = Vec::new();
    for class in mr_data::cifar::CIFAR10_CLASSES {
        files.extend(list_images(&test.join(class))?);
    }
    if args.limit > 0 {
        files.truncate(args.limit);
    }
    let n = files.len();
    let repeats = args.repeats.max(1);
    let threads = rayon::current_num_threads();
    println!(
        "decoding {n} JPEGs from {}, {repeats} timed runs each",
        test.display()
    );

    let (t1, rust_pixels) = time_rust(&files, 1, repeats)?;
    let (tn, _) = time_rust(&files, threads, repeats)?;
    let rust1 = stats(&t1, n);
    let rustn = stats(&tn, n);
    println!(
        "mr-data (zune-jpeg, 1 thread): {:.0} images/s; {threads} threads: {:.0} images/s",
        rust1["images_per_s"].as_f64().unwrap_or(0.0),
        rustn["images_per_s"].as_f64().unwrap_or(0.0)
    );

    let scratch = std::env::temp_dir().join(format!("mr-bench-data-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let list = scratch.join("files.txt");
    let script = scratch.join("bench_pil.py");
    let npy = scratch.join("pil.npy");
    let listing: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    std::fs::write(&list, listing)?;
    std::fs::write(&script, PY)?;
    let out = Command::new(&args.python)
        .arg(&script)
        .arg(&list)
        .arg(repeats.to_string())
        .arg(&npy)
        .output();
    let python = match out {
        Err(e) => json!({"error": format!("cannot run {}: {e}", args.python)}),
        Ok(o) => {
            let stdout = String::from_utf8_lossy(&o.stdout);
            match stdout
                .lines()
                .last()
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            {
                Some(v) => v,
                None => json!({"error": format!("{} failed: {}", args.python,
                    String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").trim())}),
            }
        }
    };
    let mut report = json!({
        "what": "read + decode CIFAR-10 JPEG-mirror test files into one uint8 [N,32,32,3] array",
        "files": n,
        "source": test.display().to_string(),
        "repeats": repeats,
        "machine_threads": threads,
        // the machine is shared: a load above the core count slows (and flattens) the numbers
        "load_average_at_start": std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_string)),
        "rust": {
            "decoder": "zune-jpeg =0.5.15 (portable path, strict), via mr_data::folder::decode_files",
            "threads_1": rust1,
            format!("threads_{threads}"): rustn,
        },
    });
    if let Some(err) = python.get("error") {
        println!("Python side skipped: {}", err.as_str().unwrap_or(""));
        report["python"] = json!({"interpreter": args.python, "error": err});
    } else {
        let times: Vec<f64> = python["times"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        let py = stats(&times, n);
        let py_rate = py["images_per_s"].as_f64().unwrap_or(f64::NAN);
        let r1 = rust1["images_per_s"].as_f64().unwrap_or(f64::NAN);
        let rn = rustn["images_per_s"].as_f64().unwrap_or(f64::NAN);
        report["python"] = json!({
            "interpreter": args.python,
            "python": python["python"], "pil": python["pil"], "numpy": python["numpy"],
            "code": "np.stack([np.asarray(Image.open(f).convert('RGB')) for f in files])",
            "single_thread": py,
        });
        report["ratio_rust_1thread_over_pil"] = json!(r1 / py_rate);
        report["ratio_rust_all_threads_over_pil"] = json!(rn / py_rate);
        // pixel agreement between the two decoders
        if let Ok(arr) = mr_data::npy::read_npy(&npy) {
            if let mr_data::npy::NpyData::U8(p) = arr.data {
                if p.len() == rust_pixels.len() {
                    let diffs: Vec<u32> = p
                        .iter()
                        .zip(&rust_pixels)
                        .map(|(a, b)| a.abs_diff(*b) as u32)
                        .collect();
                    let equal = diffs.iter().filter(|&&d| d == 0).count();
                    let sum: u64 = diffs.iter().map(|&d| d as u64).sum();
                    report["pixel_agreement"] = json!({
                        "equal_fraction": equal as f64 / diffs.len() as f64,
                        "mean_abs_diff": sum as f64 / diffs.len() as f64,
                        "max_abs_diff": diffs.iter().max(),
                        "pil_sha256": python["sha256"],
                        "rust_sha256": mr_data::imageset::sha256_bytes(&rust_pixels),
                    });
                }
            }
        }
        println!(
            "PIL + numpy (1 thread): {py_rate:.0} images/s; ratio mr-data/PIL: {:.2}x (1 thread), {:.2}x ({threads} threads)",
            r1 / py_rate,
            rn / py_rate
        );
    }
    std::fs::remove_dir_all(&scratch).ok();
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("results/bench"));
    write_outputs(&dir, &report)?;
    Ok(())
}

fn write_outputs(dir: &Path, r: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json_path = dir.join("data.json");
    mr_data::atomic::write_bytes_atomic(&json_path, serde_json::to_string_pretty(r)?.as_bytes())?;
    let threads = r["machine_threads"].as_u64().unwrap_or(1);
    let rate = |v: &serde_json::Value| {
        v["images_per_s"]
            .as_f64()
            .map(|x| format!("{x:.0}"))
            .unwrap_or("-".into())
    };
    let median = |v: &serde_json::Value| {
        v["median_s"]
            .as_f64()
            .map(|x| format!("{x:.3}"))
            .unwrap_or("-".into())
    };
    let rn = &r["rust"][format!("threads_{threads}")];
    let mut md = format!(
        "# Image decode throughput: mr-data vs PIL + numpy\n\n\
         {} CIFAR-10 JPEG-mirror test files (32x32), read + decoded into one uint8 array; \
         median of {} runs after a warm-up, machine load average {} at the start. \
         `cargo xtask bench data`.\n\n\
         | decoder | threads | median s | images/s |\n|---|---|---|---|\n\
         | mr-data (zune-jpeg 0.5.15) | 1 | {} | {} |\n| mr-data (zune-jpeg 0.5.15) | {threads} | {} | {} |\n",
        r["files"],
        r["repeats"],
        r["load_average_at_start"].as_str().unwrap_or("?"),
        median(&r["rust"]["threads_1"]), rate(&r["rust"]["threads_1"]), median(rn), rate(rn)
    );
    if let Some(e) = r["python"].get("error") {
        md.push_str(&format!(
            "\nPython side not run: {}\n",
            e.as_str().unwrap_or("")
        ));
    } else {
        let p = &r["python"]["single_thread"];
        md.push_str(&format!(
            "| PIL {} + numpy {} (Python {}) | 1 | {} | {} |\n\n\
             Ratio mr-data / PIL: {:.2}x single-threaded, {:.2}x with {threads} threads.\n",
            r["python"]["pil"].as_str().unwrap_or("?"),
            r["python"]["numpy"].as_str().unwrap_or("?"),
            r["python"]["python"].as_str().unwrap_or("?"),
            median(p),
            rate(p),
            r["ratio_rust_1thread_over_pil"]
                .as_f64()
                .unwrap_or(f64::NAN),
            r["ratio_rust_all_threads_over_pil"]
                .as_f64()
                .unwrap_or(f64::NAN),
        ));
        if let Some(a) = r.get("pixel_agreement") {
            md.push_str(&format!(
                "\nPixel agreement (zune-jpeg vs PIL's libjpeg): {:.2}% of bytes equal, mean |diff| {:.3}, max {}. \
                 The two are different JPEG implementations (IDCT and chroma upsampling differ), so features \
                 computed from JPEG input depend on the decoder; mr-data pins one.\n",
                a["equal_fraction"].as_f64().unwrap_or(0.0) * 100.0,
                a["mean_abs_diff"].as_f64().unwrap_or(0.0),
                a["max_abs_diff"]
            ));
        }
    }
    mr_data::atomic::write_bytes_atomic(&dir.join("data.md"), md.as_bytes())?;
    println!("wrote {} and data.md", json_path.display());
    Ok(())
}

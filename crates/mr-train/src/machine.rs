//! Which machine trained which steps of a run: `machines.csv` in the run folder, one row per
//! start or resume.
//!
//! A run is bit-exact only on one kind of CPU. The matrix kernels pick their SIMD path at run time
//! (AVX-512, AVX2 + FMA, …), and a different path sums in a different order: the gate's seed 2 of
//! `auto128-dcgan32-diffaug-50k`, trained once on an AVX-512 machine and once on an AVX2-only one
//! at the same code, logged D losses of 1.5935 and 1.5945 at step 50 and drifted apart from there
//! (session 22). Resuming a run elsewhere is allowed, but then its steps after the resume are not
//! the steps an uninterrupted run would have taken; this file says where that happened.

use std::path::Path;

use mr_data::atomic::write_bytes_atomic;

use crate::error::{Context, Result};

/// File name of the record in a run folder.
pub const FILE: &str = "machines.csv";
const HEADER: &str = "step,unix_s,arch,simd,threads,device,cpu";

/// The facts of this machine that decide a run's arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `x86_64`, `aarch64`, …
    pub arch: String,
    /// The SIMD levels the kernels dispatch on, detected at run time, `+`-joined (`avx512f+avx2+fma`).
    pub simd: String,
    /// Threads the CPU kernels may use (`RAYON_NUM_THREADS`, else the available cores).
    pub threads: usize,
    /// The training device, as burn names it.
    pub device: String,
    /// The CPU's model name (`/proc/cpuinfo`), empty where unknown.
    pub cpu: String,
}

impl Machine {
    /// This machine, training on `device`.
    pub fn this(device: &str) -> Self {
        let threads = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_default();
        Self {
            arch: std::env::consts::ARCH.to_string(),
            simd: simd(),
            threads,
            device: device.to_string(),
            cpu,
        }
    }

    /// Whether a run's arithmetic on `self` is the arithmetic on `other` (same SIMD path, thread
    /// count and device; the CPU's name alone does not change it).
    pub fn same_arithmetic(&self, other: &Machine) -> bool {
        (&self.arch, &self.simd, self.threads, &self.device)
            == (&other.arch, &other.simd, other.threads, &other.device)
    }

    fn row(&self, step: usize, unix_s: u64) -> String {
        // commas would break the columns: the free-text fields are written without them
        let clean = |s: &str| s.replace([',', '\n', '\r'], ";");
        format!(
            "{step},{unix_s},{},{},{},{},{}",
            clean(&self.arch),
            clean(&self.simd),
            self.threads,
            clean(&self.device),
            clean(&self.cpu)
        )
    }

    fn parse(line: &str) -> Option<(usize, Machine)> {
        let f: Vec<&str> = line.splitn(7, ',').collect();
        if f.len() != 7 {
            return None;
        }
        Some((
            f[0].parse().ok()?,
            Machine {
                arch: f[2].into(),
                simd: f[3].into(),
                threads: f[4].parse().ok()?,
                device: f[5].into(),
                cpu: f[6].into(),
            },
        ))
    }
}

/// The SIMD levels detected at run time, widest first.
fn simd() -> String {
    #[allow(unused_mut)]
    let mut v: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
        ] {
            if on {
                v.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            v.push("neon");
        }
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join("+")
    }
}

/// Appends `m` starting at `step` to the run's record (the file rewritten atomically) and returns the machine of the row before it — the one that trained the steps up to
/// here — where there is one.
pub fn record(run: &Path, step: usize, m: &Machine) -> Result<Option<(usize, Machine)>> {
    let path = run.join(FILE);
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut rows: Vec<&str> = old.lines().skip(1).filter(|l| !l.is_empty()).collect();
    // rows from `step` on belong to steps that are being trained again (a fresh start clears all)
    rows.retain(|l| Machine::parse(l).is_some_and(|(s, _)| s < step));
    let before = rows.last().and_then(|l| Machine::parse(l));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut text = format!("{HEADER}\n");
    for r in &rows {
        text += r;
        text.push('\n');
    }
    text += &m.row(step, now);
    text.push('\n');
    write_bytes_atomic(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(simd: &str) -> Machine {
        Machine {
            arch: "x86_64".into(),
            simd: simd.into(),
            threads: 1,
            device: "Cpu".into(),
            cpu: "AMD EPYC, rev 2".into(),
        }
    }

    #[test]
    fn each_start_is_a_row_and_a_resume_names_the_machine_before() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        assert_eq!(record(run, 0, &m("avx512f+avx2+fma")).unwrap(), None);
        let before = record(run, 500, &m("avx2+fma")).unwrap().unwrap();
        assert_eq!(before.0, 0);
        assert!(!before.1.same_arithmetic(&m("avx2+fma")));
        assert!(before.1.same_arithmetic(&m("avx512f+avx2+fma")));
        // the comma in the CPU's name does not break the columns
        assert_eq!(before.1.cpu, "AMD EPYC; rev 2");
        let text = std::fs::read_to_string(run.join(FILE)).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.starts_with(HEADER));
        // resuming at 500 again (killed before the next checkpoint) replaces that row
        let before = record(run, 500, &m("avx2+fma")).unwrap().unwrap();
        assert_eq!(before.0, 0);
        assert_eq!(
            std::fs::read_to_string(run.join(FILE))
                .unwrap()
                .lines()
                .count(),
            3
        );
        // a fresh start clears the record
        assert_eq!(record(run, 0, &m("avx2+fma")).unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(run.join(FILE))
                .unwrap()
                .lines()
                .count(),
            2
        );
    }

    #[test]
    fn this_machine_is_described() {
        let me = Machine::this("Cpu");
        assert!(!me.simd.is_empty() && me.threads >= 1);
        assert!(me.same_arithmetic(&me.clone()));
    }
}

//! `cargo xtask gpu-check`: builds the device check (`mr-train`'s `gpu_check` example) with
//! `--features cuda` and stages it in `target-gpu/` (git-ignored) with the parity fixture, ready
//! to be carried to a GPU machine and run there as one short script.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct GpuCheckArgs {
    /// Staging folder (git-ignored).
    #[arg(long, default_value = "target-gpu")]
    pub out: PathBuf,
    /// Build with the CPU backend instead (to try the script here).
    #[arg(long)]
    pub cpu: bool,
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

pub fn run(args: &GpuCheckArgs) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "-p",
        "mr-train",
        "--example",
        "gpu_check",
    ]);
    if !args.cpu {
        cmd.args(["--features", "cuda"]);
    }
    let status = cmd.status().context("cannot run cargo build")?;
    ensure!(
        status.success(),
        "building the gpu_check example failed ({status})"
    );
    let bin = Path::new(&target_dir).join("release/examples/gpu_check");
    std::fs::create_dir_all(&args.out)?;
    std::fs::copy(&bin, args.out.join("gpu_check"))
        .with_context(|| format!("copying {}", bin.display()))?;
    copy_dir(
        Path::new("../shared/fixtures/inception-fid"),
        &args.out.join("fixtures"),
    )?;
    let out = args.out.display();
    println!(
        "staged {out}/gpu_check and {out}/fixtures.\n\
         On the device machine (carry [\"{out}\", \"datasets/cache/weights/inception-fid\", \"datasets/cache/cifar10\"]), run:\n  \
         {out}/gpu_check datasets/cache {out}/fixtures $OUT\n\
         It prints one JSON line and writes $OUT/gpu_check.json (parity, Inception images/s, device NN check, \
         MR / plain step time). Note: the Inception archive is 87 MB, above the device's 64 MiB carry limit; \
         carry a smaller data root or add a weights conversion before relying on it."
    );
    Ok(())
}

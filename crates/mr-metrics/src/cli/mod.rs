//! Binary-only modules of `mr-metrics` (behind the `cli` feature; the library never sees them).

pub mod copies;
pub mod ct;
pub mod embed;
pub mod fid;
pub mod fidelity;
pub mod inputs;
pub mod kid;
pub mod nnd;
pub mod tau;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Map, Value};

use inputs::Ready;

/// `--bootstrap N [--level L] [--bootstrap-seed S]`, shared by the metrics that offer it.
#[derive(Args, Debug)]
pub struct BootstrapOpts {
    /// Bootstrap replicates: std and percentile interval in the output.
    #[arg(long, value_name = "N")]
    pub bootstrap: Option<usize>,
    /// Level of the bootstrap interval.
    #[arg(long, default_value_t = 0.95, requires = "bootstrap")]
    pub level: f64,
    /// Seed of the bootstrap resampling.
    #[arg(long, default_value_t = 0, requires = "bootstrap")]
    pub bootstrap_seed: u64,
}

impl BootstrapOpts {
    /// `(replicates, level, seed)` when `--bootstrap` was given.
    pub fn spec(&self) -> Option<(usize, f64, u64)> {
        self.bootstrap.map(|n| (n, self.level, self.bootstrap_seed))
    }
}

/// The text line of a bootstrap result.
pub fn print_bootstrap(
    replicates: usize,
    dropped: Option<usize>,
    std: f64,
    level: f64,
    lh: (f64, f64),
) {
    let dropped = dropped.map_or(String::new(), |d| format!(", {d} dropped"));
    println!(
        "bootstrap ({replicates} replicates{dropped}): std {std:.4}, {:.0} % interval [{:.4}, {:.4}]",
        100.0 * level,
        lh.0,
        lh.1
    );
}

/// The workspace's progress bar (`mr_data::progress`).
pub use mr_data::progress::bar as progress;

pub fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Record where every input came from and, for image inputs, the embedder id.
pub fn add_provenance(v: &mut Value, inputs: &[&Ready], embedder: &Option<String>) {
    let m: Map<String, Value> = inputs
        .iter()
        .map(|r| (r.role.to_string(), r.info.clone()))
        .collect();
    v["inputs"] = Value::Object(m);
    v["embedder"] = json!(embedder);
}

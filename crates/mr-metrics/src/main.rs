//! `mr-metrics`: FID, KID, C_T, NN distances and the τ guideline from the command line.
//!
//! Inputs are `.npy` feature arrays `[N, D]` (float32/float64), for FID pytorch-fid `.npz`
//! statistics, or images — a uint8 `.npy` `[N, H, W, 3]`, an image folder (class subfolders give
//! labels) or a named dataset — embedded with `--embed <model>` through the feature cache (see
//! [`cli::inputs`]). Bad input prints one `error: …` line on stderr and exits 2; other failures
//! exit 1.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mr_metrics::MetricsError;

#[derive(Parser, Debug)]
#[command(
    name = "mr-metrics",
    version,
    about = "Memorization and quality metrics for generative models"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Fréchet Inception Distance between two feature sets or pytorch-fid stats files.
    Fid(cli::fid::FidArgs),
    /// Kernel Inception Distance (mean ± std over random subsets).
    Kid(cli::kid::KidArgs),
    /// Meehan et al.'s data-copying statistic C_T (negative = copying).
    Ct(cli::ct::CtArgs),
    /// Nearest-neighbour distances of queries to an index set.
    Nnd(cli::nnd::NndArgs),
    /// The τ guideline: mean leave-one-out NN distance of the training set.
    Tau(cli::tau::TauArgs),
    /// Embed images (dataset name, folder or uint8 `.npy`) into a features `.npy`.
    Embed(cli::embed::EmbedArgs),
    /// Which generated samples copy which training samples: nearest pairs, distances, ratios,
    /// within τ (CSV, .npy, JSON) and grids of the closest and farthest pairs (PNG, SVG).
    Copies(cli::copies::CopiesArgs),
    /// Precision, recall (Kynkäänniemi et al.), density and coverage (Naeem et al.) on k-NN balls.
    Prdc(cli::fidelity::PrdcArgs),
    /// AuthPct (Alaa et al.): the percentage of generated samples that are authentic.
    Authpct(cli::fidelity::AuthPctArgs),
    /// The Vendi score (Friedman & Dieng) of one set, cosine kernel.
    Vendi(cli::fidelity::VendiArgs),
    /// The Feature Likelihood Divergence (Jiralerspong et al.): test, train and gap.
    Fld(cli::fidelity::FldArgs),
}

/// A command-line usage error as one `error: …` line: clap's message up to its first blank line
/// (the help hint and usage follow it), its lines joined.
fn one_line_usage_error(rendered: &str) -> String {
    rendered
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version: printed on stdout, exit 0
        Err(e) => {
            eprintln!("{}", one_line_usage_error(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let r = match cli.cmd {
        Cmd::Fid(a) => cli::fid::run(a),
        Cmd::Kid(a) => cli::kid::run(a),
        Cmd::Ct(a) => cli::ct::run(a),
        Cmd::Nnd(a) => cli::nnd::run(a),
        Cmd::Tau(a) => cli::tau::run(a),
        Cmd::Embed(a) => cli::embed::run(a),
        Cmd::Copies(a) => cli::copies::run(a),
        Cmd::Prdc(a) => cli::fidelity::run_prdc(a),
        Cmd::Authpct(a) => cli::fidelity::run_authpct(a),
        Cmd::Vendi(a) => cli::fidelity::run_vendi(a),
        Cmd::Fld(a) => cli::fidelity::run_fld(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let bad_input = e
                .downcast_ref::<MetricsError>()
                .is_none_or(|m| m.is_bad_input());
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn context_is_kept_on_one_line() {
        let e: anyhow::Error = anyhow::anyhow!("inner").context("outer");
        assert_eq!(format!("{e:#}"), "outer: inner");
    }
}

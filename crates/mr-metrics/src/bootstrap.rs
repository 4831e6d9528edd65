//! Percentile bootstrap summaries shared by the metrics' `--bootstrap` options.

use crate::{input, Result};

/// Std (N − 1) and the central percentile interval at `level` of bootstrap replicates.
pub(crate) fn summarize(mut reps: Vec<f64>, level: f64) -> (f64, f64, f64) {
    reps.sort_by(f64::total_cmp);
    let n = reps.len() as f64;
    let mean = reps.iter().sum::<f64>() / n;
    let var = reps.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0).max(1.0);
    let q = (1.0 - level) / 2.0;
    (
        var.sqrt(),
        crate::nnd::quantile_sorted(&reps, q),
        crate::nnd::quantile_sorted(&reps, 1.0 - q),
    )
}

/// The checks every `--bootstrap` shares: at least 2 replicates, a level in (0, 1).
pub(crate) fn check(replicates: usize, level: f64) -> Result<()> {
    if replicates < 2 {
        return input(format!(
            "--bootstrap needs at least 2 replicates, got {replicates}"
        ));
    }
    if !(level > 0.0 && level < 1.0) {
        return input(format!("the interval level must be in (0, 1), got {level}"));
    }
    Ok(())
}

/// `n` indices drawn uniformly with replacement from `0..n`.
pub(crate) fn resample(rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> Vec<usize> {
    use rand::RngExt;
    (0..n).map(|_| rng.random_range(0..n)).collect()
}

/// The spread of a mean over bootstrap resamples of its per-sample values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Interval {
    /// Std of the replicates (N − 1).
    pub std: f64,
    /// Percentile interval at the level asked for.
    pub low: f64,
    pub high: f64,
}

/// Means of `values` over resamples: one replicate per row of `draws` (indices into `values`).
pub(crate) fn resampled_means(values: &[f64], draws: &[Vec<usize>], level: f64) -> Interval {
    let reps: Vec<f64> = draws
        .iter()
        .map(|idx| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64)
        .collect();
    let (std, low, high) = summarize(reps, level);
    Interval { std, low, high }
}

/// What the bootstrap tests of several metrics share.
#[cfg(test)]
pub(crate) mod testing {
    use crate::Features;

    /// `n` rows of `d` seeded uniform values in `[shift, shift + 1)`.
    pub(crate) fn uniform(n: usize, d: usize, seed: u64, shift: f32) -> Features {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let v = (0..n * d).map(|_| rng.random::<f32>() + shift).collect();
        Features::new(v, d, "t").unwrap()
    }

    /// The std (N − 1) of a metric over `draws` fresh draws of its sets (`value(s)` computes it
    /// on the draw `s`): what a bootstrap std should come near.
    pub(crate) fn fresh_std(draws: u64, value: impl Fn(u64) -> f64) -> f64 {
        super::summarize((0..draws).map(value).collect(), 0.5).0
    }
}

//! Figure 12: t-SNE map of the training set and of generated features (main model, τ = 0,
//! seed 0), generated points split at the guideline distance.

use std::path::Path;

use anyhow::{Context, Result};

use super::{Figure, Sweep};
use crate::reproduce::measure::{gen_space, nn_to};
use crate::reproduce::plot::{self, both, MapPoint};
use crate::reproduce::table::{Col, Table};
use crate::reproduce::tsne;

pub(crate) struct Fig12;

impl Figure for Fig12 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        let p = &s.ctx.p;
        let guide = s.guide();
        let r0 = s
            .plan
            .runs
            .iter()
            .find(|r| r.model == 0 && r.seed == 0 && r.tau_i == 0)
            .context("no τ = 0 run")?;
        let gen = gen_space(s.ctx, r0, p.gen_per_class, s.main_embedder())?;
        let train = &s.m.train_spaces[s.main_embedder()];
        let n_gen = gen.f.n().min(p.tsne_points);
        let pick = mr_data::imageset::sample_indices(gen.f.n(), n_gen, 0);
        let g = gen.f.select(&pick);
        let d = nn_to(&train.f, &g)?;
        let dim = g.dim();
        let mut x: Vec<f32> = Vec::with_capacity((n_gen + train.f.n()) * dim);
        let mut kind = vec![];
        for i in 0..train.f.n() {
            x.extend_from_slice(train.f.row(i));
            kind.push("train".to_string());
        }
        for i in 0..n_gen {
            x.extend_from_slice(g.row(i));
            kind.push("generated".to_string());
        }
        for row in x.chunks_mut(dim) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        let n = kind.len();
        let map = tsne::tsne(&x, n, dim, &tsne::TsneParams::default())?;
        let mut dist = vec![0.0; train.f.n()];
        dist.extend_from_slice(&d);
        let within: Vec<i64> = (0..n)
            .map(|i| i64::from(i >= train.f.n() && dist[i] <= guide))
            .collect();
        Ok(Table::new()
            .with("kind", Col::Str(kind))
            .with("x", Col::F64(map.iter().map(|p| p[0]).collect()))
            .with("y", Col::F64(map.iter().map(|p| p[1]).collect()))
            .with("distance", Col::F64(dist))
            .with("within", Col::I64(within))
            .with("split", Col::F64(vec![guide; n])))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let kind = t.str("kind")?;
        let (x, y) = (t.f64("x")?, t.f64("y")?);
        let within = t.i64("within")?;
        let split = t.f64("split")?.first().copied().unwrap_or(f64::NAN);
        let pts: Vec<MapPoint> = (0..t.len())
            .map(|i| MapPoint {
                x: x[i],
                y: y[i],
                train: kind[i] == "train",
                within: within[i] == 1,
            })
            .collect();
        let title = format!("t-SNE of generated features split at the guideline ({profile})");
        both!(base, (1200, 620), plot::tsne_plot, &title, split, &pts)
    }
}

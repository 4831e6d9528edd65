//! Figure 7: uncurated generated samples, one row per τ (main model, seed 0), each sample's NN
//! distance beside it in the table.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::{Figure, Sweep};
use crate::reproduce::plot::{self, both};
use crate::reproduce::runner::samples;
use crate::reproduce::table::{Col, Table};

pub(crate) struct Fig7;

impl Figure for Fig7 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        let p = &s.ctx.p;
        let classes = s.ctx.class_names.len().max(1);
        let (mut row_l, mut file, mut index, mut tau_c, mut nn) =
            (vec![], vec![], vec![], vec![], vec![]);
        let per_class = (p.grid_per_tau / classes).max(1);
        for (ti, &tau) in s.plan.taus.iter().enumerate() {
            let Some(r) = s
                .plan
                .runs
                .iter()
                .find(|r| r.model == 0 && r.seed == 0 && r.tau_i == ti)
            else {
                continue;
            };
            let path = samples(s.ctx, r, p.gen_per_class)?;
            let row =
                s.m.rows
                    .iter()
                    .find(|x| s.is_main(x) && x.seed == 0 && x.tau == tau);
            for c in 0..classes {
                for k in 0..per_class {
                    let i = c * p.gen_per_class + k;
                    row_l.push(format!("τ = {tau:.3}"));
                    file.push(path.to_string_lossy().into_owned());
                    index.push(i as i64);
                    tau_c.push(tau);
                    nn.push(
                        row.and_then(|x| x.eval.nn.get(i).copied())
                            .unwrap_or(f64::NAN),
                    );
                }
            }
        }
        Ok(Table::new()
            .with("row", Col::Str(row_l))
            .with("tau", Col::F64(tau_c))
            .with("file", Col::Str(file))
            .with("index", Col::I64(index))
            .with("nn_distance", Col::F64(nn)))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let files = t.str("file")?;
        let idx = t.i64("index")?;
        let rows_label = t.str("row")?;
        let mut rows: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        let mut cache: BTreeMap<String, mr_data::ImageSet> = BTreeMap::new();
        for i in 0..t.len() {
            if !cache.contains_key(&files[i]) {
                let set = mr_data::registry::load_path(Path::new(&files[i]))?;
                cache.insert(files[i].clone(), set);
            }
            let img = cache[&files[i]].image(idx[i] as usize).to_vec();
            match rows.last_mut() {
                Some((l, v)) if *l == rows_label[i] => v.push(img),
                _ => rows.push((rows_label[i].clone(), vec![img])),
            }
        }
        let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(1);
        let size = plot::grid_size(rows.len(), cols, 2);
        let title = format!("Generated samples per τ ({profile}; uncurated)");
        both!(base, size, plot::image_grid, &title, &rows, 2)
    }
}

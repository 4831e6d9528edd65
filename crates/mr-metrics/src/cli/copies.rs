//! `mr-metrics copies`: the copies report a person can look at — every generated sample's
//! nearest training sample (CSV, `.npy` columns, JSON summary) and, for image inputs, grids of the
//! closest and the farthest (generated, training) pairs as PNG and SVG (the SVG labels each pair
//! with its distance and ratio).

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use mr_data::npy::{write_npy, NpyArray, NpyData};
use mr_data::ImageSet;
use mr_metrics::copies::{copies, CopiesReport, CopyRow};
use mr_metrics::MetricsError;
use mr_nn::Metric;
use serde_json::{json, Value};

use super::add_provenance;
use super::inputs::{EmbedOpts, Inputs};

#[derive(Args, Debug)]
pub struct CopiesArgs {
    /// Training set: features `.npy` or images (uint8 `.npy`, folder, dataset name).
    #[arg(long)]
    pub train: String,
    /// Generated set: features `.npy` or images.
    #[arg(long)]
    pub gen: String,
    /// Threshold τ of "within τ" [default: the guideline, the training set's mean leave-one-out
    /// NN distance].
    #[arg(long)]
    pub tau: Option<f64>,
    #[arg(long, default_value = "cosine")]
    pub distance: Metric,
    /// Pairs in each grid (closest and farthest).
    #[arg(long, default_value_t = 16)]
    pub pairs: usize,
    /// Output folder (new, or empty): copies.csv, nearest_train.npy, distance.npy, ratio.npy,
    /// within_tau.npy, summary.json and, for images, closest.{png,svg} and farthest.{png,svg}.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embed: EmbedOpts,
}

pub fn run(a: CopiesArgs) -> Result<()> {
    if a.pairs == 0 {
        bail!(MetricsError::Input("--pairs must be at least 1".into()));
    }
    if a.out.exists() {
        let empty = a.out.is_dir()
            && std::fs::read_dir(&a.out)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
        if !empty {
            bail!(MetricsError::Input(format!(
                "--out {}: already exists and is not an empty folder; choose a new one",
                a.out.display()
            )));
        }
    }
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.keep_images();
    inputs.load("train", &a.train, false)?;
    inputs.load("gen", &a.gen, false)?;
    let (ready, embedder) = inputs.finish()?;
    let (train_r, gen_r) = (&ready[0], &ready[1]);
    let report = copies(train_r.features(), gen_r.features(), a.distance, a.tau)?;

    // everything is written into a sibling folder first, then renamed into place
    let parent = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = a
        .out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "copies".into());
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let written = (|| -> Result<Value> {
        std::fs::create_dir_all(&tmp)?;
        write_tables(&tmp, &report)?;
        let grids = match (&train_r.images, &gen_r.images) {
            (Some(t), Some(g)) if t.height == g.height && t.width == g.width => {
                let closest = report.closest_first();
                let n = a.pairs.min(closest.len());
                let farthest: Vec<&CopyRow> = closest.iter().rev().take(n).copied().collect();
                grid(&tmp.join("closest"), "closest", &closest[..n], g, t)?;
                grid(&tmp.join("farthest"), "farthest", &farthest, g, t)?;
                json!(["closest.png", "closest.svg", "farthest.png", "farthest.svg"])
            }
            (Some(_), Some(_)) => json!("not drawn: generated and training images differ in size"),
            _ => json!("not drawn: an input is features, not images"),
        };
        let mut v = serde_json::to_value(&report.summary)?;
        v["grids"] = grids;
        add_provenance(&mut v, &[train_r, gen_r], &embedder);
        let text = serde_json::to_string_pretty(&v)?;
        std::fs::write(tmp.join("summary.json"), text.as_bytes())?;
        Ok(v)
    })();
    let v = match written {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if a.out.exists() {
        std::fs::remove_dir(&a.out)
            .with_context(|| format!("replacing the empty folder {}", a.out.display()))?;
    }
    std::fs::rename(&tmp, &a.out)
        .with_context(|| format!("moving the report into {}", a.out.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let s = &report.summary;
        println!(
            "{} generated vs {} training samples ({}): {:.1} % within τ = {:.6} ({}), {:.1} % \
             nearer their training neighbour than its own nearest training sample (ratio < 1); \
             {} distinct training samples matched; report in {}",
            s.n_gen,
            s.n_train,
            s.distance,
            100.0 * s.within_tau,
            s.tau,
            s.tau_source,
            100.0 * s.ratio_below_one,
            s.distinct_train,
            a.out.display()
        );
    }
    Ok(())
}

fn write_tables(dir: &Path, r: &CopiesReport) -> Result<()> {
    let mut csv = String::from("gen,train,distance,train_loo,ratio,within_tau\n");
    for x in &r.rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{}",
            x.gen, x.train, x.distance, x.train_loo, x.ratio, x.within_tau as u8
        );
    }
    std::fs::write(dir.join("copies.csv"), csv)?;
    let n = r.rows.len();
    let col = |f: &dyn Fn(&CopyRow) -> f64| r.rows.iter().map(f).collect::<Vec<f64>>();
    write_npy(
        &dir.join("nearest_train.npy"),
        &NpyArray::new(
            vec![n],
            NpyData::I64(r.rows.iter().map(|x| x.train as i64).collect()),
        ),
    )?;
    write_npy(
        &dir.join("distance.npy"),
        &NpyArray::new(vec![n], NpyData::F64(col(&|x| x.distance))),
    )?;
    write_npy(
        &dir.join("ratio.npy"),
        &NpyArray::new(vec![n], NpyData::F64(col(&|x| x.ratio))),
    )?;
    write_npy(
        &dir.join("within_tau.npy"),
        &NpyArray::new(
            vec![n],
            NpyData::U8(r.rows.iter().map(|x| x.within_tau as u8).collect()),
        ),
    )?;
    Ok(())
}

/// Pairs per grid row.
const PER_ROW: usize = 8;
/// Pixels between the two images of a pair.
const INNER: u32 = 2;
/// Pixels between pairs.
const OUTER: u32 = 10;
/// The label strip under each row of pairs (text in the SVG, blank in the PNG).
const LABEL: u32 = 30;

/// `base.png` (the pairs, generated left, training right) and `base.svg` (the same picture with
/// each pair's indices, distance and ratio written under it).
fn grid(
    base: &Path,
    what: &str,
    pairs: &[&CopyRow],
    gen: &ImageSet,
    train: &ImageSet,
) -> Result<()> {
    let (h, w) = (gen.height as u32, gen.width as u32);
    let scale = (96 / h.max(w)).clamp(1, 4);
    let (ph, pw) = (h * scale, w * scale);
    let cell_w = 2 * pw + INNER + OUTER;
    let cell_h = ph + LABEL;
    let cols = pairs.len().clamp(1, PER_ROW) as u32;
    let rows = pairs.len().div_ceil(PER_ROW).max(1) as u32;
    let (width, height) = (OUTER + cols * cell_w, OUTER + rows * cell_h);
    let mut img = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let mut put = |set: &ImageSet, i: usize, x0: u32, y0: u32| {
        let px = set.image(i);
        let c = set.channels;
        for y in 0..ph {
            for x in 0..pw {
                let o = ((y / scale) as usize * set.width + (x / scale) as usize) * c;
                let rgb = if c >= 3 {
                    [px[o], px[o + 1], px[o + 2]]
                } else {
                    [px[o]; 3]
                };
                img.put_pixel(x0 + x, y0 + y, image::Rgb(rgb));
            }
        }
    };
    let mut labels = String::new();
    for (k, p) in pairs.iter().enumerate() {
        let (c, r) = ((k % PER_ROW) as u32, (k / PER_ROW) as u32);
        let (x0, y0) = (OUTER + c * cell_w, OUTER + r * cell_h);
        put(gen, p.gen, x0, y0);
        put(train, p.train, x0 + pw + INNER, y0);
        let _ = writeln!(
            labels,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" font-family=\"sans-serif\">gen {} · train {}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" font-family=\"sans-serif\">d {:.4} · ratio {:.2}</text>",
            x0,
            y0 + ph + 11,
            p.gen,
            p.train,
            x0,
            y0 + ph + 23,
            p.distance,
            p.ratio
        );
    }
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding the grid")?;
    std::fs::write(base.with_extension("png"), &png)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" viewBox=\"0 0 {width} {}\">\n\
         <title>{what} (generated, training) pairs: generated left, training right</title>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{OUTER}\" y=\"16\" font-size=\"13\" font-family=\"sans-serif\">{what} pairs (generated left, nearest training image right)</text>\n\
         <image x=\"0\" y=\"22\" width=\"{width}\" height=\"{height}\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{b64}\"/>\n\
         <g transform=\"translate(0 22)\">\n{labels}</g>\n</svg>\n",
        height + 22,
        height + 22,
    );
    std::fs::write(base.with_extension("svg"), svg)?;
    Ok(())
}

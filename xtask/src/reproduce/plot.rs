//! Drawing (plotters, PNG + SVG with the bundled DejaVu Sans). Every function here draws from
//! plain numbers that the caller has just read back from a figure's raw table.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Register the bundled font once (plotters' `ab_glyph` backend has no system fonts).
pub fn init_fonts() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
            && plotters::style::register_font("sans-serif", FontStyle::Bold, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the bundled DejaVu Sans font could not be loaded"))
    }
}

fn pe<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Series colours (colour-blind-friendly order).
pub fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(80, 80, 80),
        RGBColor(240, 228, 66),
    ];
    C[i % C.len()]
}

fn tmp_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}.tmp{}.{ext}", std::process::id()))
}

/// Draw with `draw` into `<base>.png` and `<base>.svg` (each written to a temporary file, then
/// renamed into place).
pub fn save_both(
    base: &Path,
    size: (u32, u32),
    draw_png: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
    draw_svg: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
) -> Result<()> {
    init_fonts()?;
    if let Some(dir) = base.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let png = base.with_extension("png");
    let svg = base.with_extension("svg");
    let (tp, ts) = (tmp_path(&png), tmp_path(&svg));
    let result = (|| -> Result<()> {
        {
            let root = BitMapBackend::new(&tp, size).into_drawing_area();
            root.fill(&WHITE).map_err(pe)?;
            draw_png(&root)?;
            root.present().map_err(pe)?;
        }
        {
            let root = SVGBackend::new(&ts, size).into_drawing_area();
            root.fill(&WHITE).map_err(pe)?;
            draw_svg(&root)?;
            root.present().map_err(pe)?;
        }
        std::fs::rename(&tp, &png)?;
        std::fs::rename(&ts, &svg)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tp);
        let _ = std::fs::remove_file(&ts);
    }
    result.with_context(|| format!("writing {}", png.display()))
}

/// Draw the same figure into PNG and SVG: `both!(base, size, function, args…)` calls
/// `function(&area, args…)` once per backend.
macro_rules! both {
    ($base:expr, $size:expr, $f:path $(, $arg:expr)* $(,)?) => {
        $crate::reproduce::plot::save_both(
            $base,
            $size,
            |a| $f(a $(, $arg)*),
            |a| $f(a $(, $arg)*),
        )
    };
}
pub(crate) use both;

/// One point with error bars and an optional annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub x_err: f64,
    pub y_err: f64,
    pub note: String,
}

/// A named series of points, drawn in the given order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let span = (hi - lo).abs().max(1e-6);
    (lo - 0.08 * span, hi + 0.08 * span)
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The house style of a single-panel chart: caption, margins, mesh, axis descriptions.
fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    x_label: &str,
    y_label: &str,
) -> Result<Chart<'a, DB>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_label_formatter(&x_tick)
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    Ok(chart)
}

/// An x-axis tick: thousands as `12k` / `2.5k` (step axes), other values as plotters writes them
/// but without trailing zeros.
fn x_tick(v: &f64) -> String {
    let trim = |t: String| {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    };
    if v.abs() >= 1000.0 {
        format!("{}k", trim(format!("{:.1}", v / 1000.0)))
    } else {
        trim(format!("{v:.4}"))
    }
}

/// The legend box of the series drawn so far.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    font_size: u32,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", font_size))
        .position(position)
        .draw()
        .map_err(pe)
}

/// Lines with error bars (x and y), points annotated, a legend. `zero_line` draws a dashed
/// vertical line at x = 0 (C_T = 0: no memorization) or horizontal at y = 0.
pub fn xy_plot<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    zero_x: bool,
    zero_y: bool,
) -> Result<()> {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in pts {
        if p.x.is_finite() && p.y.is_finite() {
            x0 = x0.min(p.x - p.x_err.max(0.0));
            x1 = x1.max(p.x + p.x_err.max(0.0));
            y0 = y0.min(p.y - p.y_err.max(0.0));
            y1 = y1.max(p.y + p.y_err.max(0.0));
        }
    }
    if zero_x {
        x0 = x0.min(0.0);
        x1 = x1.max(0.0);
    }
    if zero_y {
        y0 = y0.min(0.0);
        y1 = y1.max(0.0);
    }
    let (x0, x1) = padded(x0, x1);
    let (y0, y1) = padded(y0, y1);
    let mut chart = chart(area, title, (x0, x1), (y0, y1), x_label, y_label)?;
    let dash = ShapeStyle::from(&RGBColor(150, 150, 150)).stroke_width(1);
    if zero_x {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, y0), (0.0, y1)],
                6,
                4,
                dash,
            ))
            .map_err(pe)?;
    }
    if zero_y {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, 0.0), (x1, 0.0)],
                6,
                4,
                dash,
            ))
            .map_err(pe)?;
    }
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let pts: Vec<&Point> = s
            .points
            .iter()
            .filter(|p| p.x.is_finite() && p.y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.x, p.y)),
                c.stroke_width(2),
            ))
            .map_err(pe)?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
        chart
            .draw_series(pts.iter().filter(|p| p.y_err > 0.0).map(|p| {
                ErrorBar::new_vertical(p.x, p.y - p.y_err, p.y, p.y + p.y_err, c.filled(), 8)
            }))
            .map_err(pe)?;
        chart
            .draw_series(pts.iter().filter(|p| p.x_err > 0.0).map(|p| {
                ErrorBar::new_horizontal(p.y, p.x - p.x_err, p.x, p.x + p.x_err, c.filled(), 8)
            }))
            .map_err(pe)?;
        chart
            .draw_series(pts.iter().map(|p| Circle::new((p.x, p.y), 4, c.filled())))
            .map_err(pe)?;
        chart
            .draw_series(pts.iter().filter(|p| !p.note.is_empty()).map(|p| {
                Text::new(
                    p.note.clone(),
                    (p.x, p.y),
                    ("sans-serif", 13).into_font().color(&c),
                )
            }))
            .map_err(pe)?;
    }
    let marks: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .flat_map(|p| {
            let (dx, dy) = (p.x_err.max(0.0), p.y_err.max(0.0));
            [
                (p.x, p.y),
                (p.x, p.y + dy),
                (p.x, p.y - dy),
                (p.x + dx, p.y),
                (p.x - dx, p.y),
            ]
        })
        .collect();
    let corner = emptiest_corner(&marks, (x0, x1), (y0, y1), series.len());
    legend(&mut chart, 15, corner)
}

/// The corner of the plot area where a legend of `entries` lines covers the fewest of `marks`
/// (points and error-bar ends); ties go to the upper right, then upper left, lower right, lower
/// left. The legend box is taken as half the width and ≈ 7 % of the height per entry.
pub fn emptiest_corner(
    marks: &[(f64, f64)],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    entries: usize,
) -> SeriesLabelPosition {
    let fw = 0.5;
    let fh = (0.05 + 0.07 * entries as f64).min(0.9);
    let (w, h) = (x1 - x0, y1 - y0);
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let covered = |right: bool, upper: bool| {
        marks
            .iter()
            .filter(|&&(x, y)| {
                let in_x = if right {
                    x >= x1 - fw * w
                } else {
                    x <= x0 + fw * w
                };
                let in_y = if upper {
                    y >= y1 - fh * h
                } else {
                    y <= y0 + fh * h
                };
                in_x && in_y
            })
            .count()
    };
    let mut best = (SeriesLabelPosition::UpperRight, usize::MAX);
    for (pos, right, upper) in corners {
        let n = covered(right, upper);
        if n < best.1 {
            best = (pos, n);
        }
    }
    best.0
}

/// Density histograms (as step lines over shared bins) of several samples, with an optional
/// dashed vertical marker (the τ guideline).
pub fn hist_plot<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    series: &[(String, Vec<f64>)],
    marker: Option<(f64, String)>,
) -> Result<()> {
    let all = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = all
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    let bins = 40usize;
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let mut curves = Vec::new();
    let mut ymax = 0.0f64;
    for (label, v) in series {
        let mut h = vec![0.0f64; bins];
        let n = v.iter().filter(|x| x.is_finite()).count().max(1) as f64;
        for &x in v.iter().filter(|x| x.is_finite()) {
            let b = (((x - lo) / width) as usize).min(bins - 1);
            h[b] += 1.0 / (n * width);
        }
        ymax = ymax.max(h.iter().copied().fold(0.0, f64::max));
        let mut pts = vec![(lo, 0.0)];
        for (b, &d) in h.iter().enumerate() {
            pts.push((lo + b as f64 * width, d));
            pts.push((lo + (b + 1) as f64 * width, d));
        }
        pts.push((hi, 0.0));
        curves.push((format!("{label} (n = {})", v.len()), pts));
    }
    let (x0, x1) = padded(lo, hi);
    let mut chart = chart(
        area,
        title,
        (x0, x1),
        (0.0, ymax * 1.1 + 1e-9),
        x_label,
        "density",
    )?;
    for (i, (label, pts)) in curves.into_iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(pe)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
    }
    if let Some((m, label)) = marker {
        let grey = RGBColor(90, 90, 90);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(m, 0.0), (m, ymax * 1.05)],
                6,
                4,
                grey.stroke_width(2),
            ))
            .map_err(pe)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(2))
            });
    }
    legend(&mut chart, 15, SeriesLabelPosition::UpperRight)
}

/// A point of the t-SNE map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapPoint {
    pub x: f64,
    pub y: f64,
    /// `train` or `generated`.
    pub train: bool,
    /// Generated: NN distance ≤ the split.
    pub within: bool,
}

/// Two panels: training points (grey) with the generated points within the split distance
/// (left) and beyond it (right).
pub fn tsne_plot<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    split: f64,
    points: &[MapPoint],
) -> Result<()> {
    let (x0, x1, y0, y1) = points.iter().fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), p| (a.min(p.x), b.max(p.x), c.min(p.y), d.max(p.y)),
    );
    let (x0, x1) = padded(x0, x1);
    let (y0, y1) = padded(y0, y1);
    let area = area.titled(title, ("sans-serif", 22)).map_err(pe)?;
    let panels = area.split_evenly((1, 2));
    let n_in = points.iter().filter(|p| !p.train && p.within).count();
    let n_out = points.iter().filter(|p| !p.train && !p.within).count();
    for (k, panel) in panels.iter().enumerate() {
        let within = k == 0;
        let caption = if within {
            format!("generated, d ≤ {split:.3} ({n_in})")
        } else {
            format!("generated, d > {split:.3} ({n_out})")
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 17))
            .margin(10)
            .x_label_area_size(24)
            .y_label_area_size(36)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(pe)?;
        let c = if within { colour(0) } else { colour(1) };
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| !p.train && p.within == within)
                    .map(|p| Circle::new((p.x, p.y), 2, c.mix(0.6).filled())),
            )
            .map_err(pe)?
            .label("generated")
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.train)
                    .map(|p| TriangleMarker::new((p.x, p.y), 6, BLACK.filled())),
            )
            .map_err(pe)?
            .label("training image")
            .legend(|(x, y)| TriangleMarker::new((x + 8, y), 6, BLACK.filled()));
        legend(&mut chart, 13, SeriesLabelPosition::LowerRight)?;
    }
    Ok(())
}

/// Rows of 32×32 RGB images (HWC uint8), each row labelled on the left (a `\n` in a label
/// starts a second line).
pub fn image_grid<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[(String, Vec<Vec<u8>>)],
    scale: u32,
) -> Result<()> {
    let area = area.titled(title, ("sans-serif", 22)).map_err(pe)?;
    let label_w = 150i32;
    let cell = (32 * scale + 4) as i32;
    for (r, (label, images)) in rows.iter().enumerate() {
        let top = 6 + r as i32 * cell;
        // one line per `\n` of the label, centred on the row
        let lines: Vec<&str> = label.lines().collect();
        let first = top + cell / 2 - 8 - 9 * (lines.len() as i32 - 1);
        for (k, line) in lines.iter().enumerate() {
            area.draw(&Text::new(
                line.to_string(),
                (8, first + 18 * k as i32),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(pe)?;
        }
        for (c, img) in images.iter().enumerate() {
            let left = label_w + c as i32 * cell;
            // one bitmap per tile, each pixel repeated `scale` times: the PNG backend copies
            // it, the SVG backend embeds it as one PNG `<image>` (plotters-svg's
            // `bitmap_encoder`) instead of 1,024 rectangles per tile
            let s = scale as usize;
            let side = 32 * s;
            let mut buf = vec![0u8; side * side * 3];
            for (y, row) in buf.chunks_exact_mut(side * 3).enumerate() {
                for (x, px) in row.chunks_exact_mut(3).enumerate() {
                    let o = ((y / s) * 32 + x / s) * 3;
                    px.copy_from_slice(&img[o..o + 3]);
                }
            }
            let tile =
                BitMapElement::with_owned_buffer((left, top), (side as u32, side as u32), buf)
                    .ok_or_else(|| anyhow!("image tile of the wrong size"))?;
            area.draw(&tile).map_err(pe)?;
        }
    }
    Ok(())
}

/// Size of [`image_grid`]'s canvas.
pub fn grid_size(rows: usize, cols: usize, scale: u32) -> (u32, u32) {
    let cell = 32 * scale + 4;
    (150 + cols as u32 * cell + 10, 50 + rows as u32 * cell + 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_ticks_are_short() {
        assert_eq!(x_tick(&12000.0), "12k");
        assert_eq!(x_tick(&2500.0), "2.5k");
        assert_eq!(x_tick(&0.05), "0.05");
        assert_eq!(x_tick(&0.0), "0");
        assert_eq!(x_tick(&-3.0), "-3");
    }

    #[test]
    fn legend_goes_to_the_emptiest_corner() {
        let pos = |marks: &[(f64, f64)]| {
            format!("{:?}", emptiest_corner(marks, (0.0, 10.0), (0.0, 10.0), 2))
        };
        // nothing drawn: the default corner
        assert_eq!(pos(&[]), format!("{:?}", SeriesLabelPosition::UpperRight));
        // a rising series (fig9/fig10: C_T grows with τ) fills the upper right
        let rising: Vec<(f64, f64)> = (0..=10).map(|i| (f64::from(i), f64::from(i))).collect();
        assert_eq!(
            pos(&rising),
            format!("{:?}", SeriesLabelPosition::UpperLeft)
        );
        // points in both upper corners: a lower one
        let top = [(1.0, 9.5), (9.0, 9.5), (0.5, 0.5)];
        assert_eq!(pos(&top), format!("{:?}", SeriesLabelPosition::LowerRight));
    }

    #[test]
    fn draws_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("fig");
        let s = vec![Series {
            label: "τ sweep".into(),
            points: vec![
                Point {
                    x: -3.0,
                    y: 40.0,
                    x_err: 0.5,
                    y_err: 2.0,
                    note: "τ=0".into(),
                },
                Point {
                    x: 1.0,
                    y: 44.0,
                    x_err: 0.0,
                    y_err: 0.0,
                    note: "τ=0.1".into(),
                },
            ],
        }];
        both!(
            &base,
            (640, 480),
            xy_plot,
            "t",
            "C_T",
            "FID",
            &s,
            true,
            false
        )
        .unwrap();
        let png = std::fs::read(base.with_extension("png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(base.with_extension("svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("FID"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}

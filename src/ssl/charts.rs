//! `compare`'s charts as SVG: one panel per metric with a bar per objective (each objective
//! keeps its own colour in every chart and run), axes with units, a legend; and the energy
//! histograms of observed against mismatched transitions.

use super::compare::{Comparison, Row};
use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// Each objective's colour (the untrained encoder in grey), the same in every chart.
pub fn colour(objective: &str) -> RGBColor {
    match objective {
        "ijepa" => RGBColor(31, 119, 180),   // blue
        "vjepa" => RGBColor(23, 190, 207),   // cyan
        "mcjepa" => RGBColor(148, 103, 189), // purple
        "simclr" => RGBColor(214, 39, 40),   // red
        "byol" => RGBColor(255, 127, 14),    // orange
        "mae" => RGBColor(140, 86, 75),      // brown
        "vicreg" => RGBColor(44, 160, 44),   // green
        "sigreg" => RGBColor(188, 189, 34),  // olive
        "energy" => RGBColor(227, 119, 194), // pink
        _ => RGBColor(127, 127, 127),        // random (untrained), grey
    }
}

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

type Metric = (&'static str, &'static str, fn(&Row) -> Option<f32>);

/// The metrics charted, `(title, y-axis unit, value)`; those no row has are left out.
fn metrics() -> Vec<Metric> {
    vec![
        ("agent, linear probe", "RMSE (px), lower is better", |r| {
            Some(r.agent_linear_px)
        }),
        ("agent, MLP probe", "RMSE (px), lower is better", |r| {
            Some(r.agent_mlp_px)
        }),
        ("agent, 4×4 grid of tokens", "RMSE (px), lower is better", |r| {
            Some(r.agent_grid_px)
        }),
        ("agent, linear, augmented frames", "RMSE (px), lower is better", |r| {
            Some(r.agent_linear_aug_px)
        }),
        ("box, MLP probe", "RMSE (px), lower is better", |r| r.box_mlp_px),
        ("box, 4×4 grid of tokens", "RMSE (px), lower is better", |r| {
            r.box_grid_px
        }),
        ("layout, MLP probe", "error / spread, lower is better", |r| {
            r.layout_mlp_rel
        }),
        ("effective rank", "of the latent's dimensions", |r| {
            Some(r.effective_rank)
        }),
        ("RankMe", "of the latent's dimensions", |r| Some(r.rank_me)),
        ("RankMe, augmented frames", "of the latent's dimensions", |r| {
            Some(r.rank_me_aug)
        }),
        ("level-1 rollout at 16 steps", "RMSE (px), lower is better", |r| {
            Some(r.rollout16_px)
        }),
        ("planning success", "% of episodes", |r| {
            r.plan_success.map(|s| 100.0 * s as f32)
        }),
    ]
}

/// The table's metrics as bar charts, one panel each, in an SVG document.
pub fn bars(c: &Comparison) -> Result<String> {
    let mut metrics = metrics();
    metrics.retain(|(_, _, f)| c.rows.iter().any(|r| f(r).is_some()));
    let n = c.rows.len().max(1);
    let cols = 4usize;
    let (pw, ph) = (300u32.max(40 + 26 * n as u32), 240u32);
    let legend_h = 60u32;
    let rows = metrics.len().div_ceil(cols).max(1);
    let (w, h) = (cols as u32 * pw, legend_h + rows as u32 * ph);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, body) = root.split_vertically(legend_h);
        let title = format!(
            "amisim compare: {}, {} per objective, frozen encoders",
            c.config.scene,
            c.config.budget.describe()
        );
        top.draw(&Text::new(title, (10, 6), ("sans-serif", 18).into_font()))
            .map_err(err)?;
        for (i, r) in c.rows.iter().enumerate() {
            let (x, y) = (10 + (i % 10) as i32 * 120, 34 + (i / 10) as i32 * 18);
            top.draw(&Rectangle::new(
                [(x, y), (x + 12, y + 12)],
                colour(&r.objective).filled(),
            ))
            .map_err(err)?;
            top.draw(&Text::new(
                r.objective.clone(),
                (x + 17, y),
                ("sans-serif", 14).into_font(),
            ))
            .map_err(err)?;
        }
        let panels = body.split_evenly((rows, cols));
        for (panel, (name, unit, f)) in panels.iter().zip(&metrics) {
            let vals: Vec<Option<f32>> = c.rows.iter().map(f).collect();
            let max = vals.iter().flatten().cloned().fold(0.0f32, f32::max).max(1e-6) as f64 * 1.18;
            let mut chart = ChartBuilder::on(panel)
                .caption(*name, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(6)
                .y_label_area_size(52)
                .build_cartesian_2d(0f64..n as f64, 0f64..max)
                .map_err(err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(5)
                .y_desc(*unit)
                .label_style(("sans-serif", 11))
                .axis_desc_style(("sans-serif", 11))
                .draw()
                .map_err(err)?;
            for (i, (v, r)) in vals.iter().zip(&c.rows).enumerate() {
                let Some(v) = v else { continue };
                let x = i as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x + 0.12, 0.0), (x + 0.88, *v as f64)],
                        colour(&r.objective).filled(),
                    )))
                    .map_err(err)?;
                let label = if *v >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                };
                chart
                    .draw_series(std::iter::once(Text::new(
                        label,
                        (x + 0.1, *v as f64 + max * 0.07),
                        ("sans-serif", 10).into_font(),
                    )))
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Histograms (over log energy) of observed transitions against mismatched ones, one panel per
/// energy, in an SVG document.
pub fn energies(energies: &[(String, Vec<f32>, Vec<f32>)]) -> Result<String> {
    let cols = 3usize;
    let (pw, ph) = (360u32, 220u32);
    let rows = energies.len().div_ceil(cols).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (cols as u32 * pw, rows as u32 * ph)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let panels = root.split_evenly((rows, cols));
        for (panel, (label, obs, mis)) in panels.iter().zip(energies) {
            // Energies may be negative (the head): shifted to positive before the log.
            let lo = obs.iter().chain(mis).cloned().fold(f32::INFINITY, f32::min);
            let tr = |v: f32| ((v - lo) as f64 + 1e-3).ln();
            let (a, b) = obs
                .iter()
                .chain(mis)
                .map(|&v| tr(v))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let (a, b) = if a.is_finite() && b > a { (a, b) } else { (0.0, 1.0) };
            let bins = 28;
            let width = (b - a) / bins as f64;
            let hist = |vs: &[f32]| -> Vec<f64> {
                let mut h = vec![0f64; bins];
                for &v in vs {
                    let i = ((tr(v) - a) / width) as usize;
                    h[i.min(bins - 1)] += 1.0 / vs.len().max(1) as f64;
                }
                h
            };
            let (ho, hm) = (hist(obs), hist(mis));
            let max = ho.iter().chain(&hm).cloned().fold(1e-6, f64::max) * 1.1;
            let mut chart = ChartBuilder::on(panel)
                .caption(label.as_str(), ("sans-serif", 14))
                .margin(8)
                .x_label_area_size(34)
                .y_label_area_size(46)
                .build_cartesian_2d(a..b, 0f64..max)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_labels(5)
                .y_labels(4)
                .x_desc("ln(E − min E + 0.001)")
                .y_desc("share of transitions")
                .label_style(("sans-serif", 10))
                .axis_desc_style(("sans-serif", 11))
                .draw()
                .map_err(err)?;
            let green = RGBColor(44, 160, 44);
            let red = RGBColor(214, 39, 40);
            for (h, c, name, off) in [(&ho, green, "observed", 0.0), (&hm, red, "mismatched", 0.5)] {
                chart
                    .draw_series(h.iter().enumerate().map(|(i, &v)| {
                        let x0 = a + (i as f64 + off * 0.9) * width;
                        Rectangle::new([(x0 + 0.05 * width, 0.0), (x0 + 0.5 * width, v)], c.mix(0.85).filled())
                    }))
                    .map_err(err)?
                    .label(name)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperMiddle)
                .label_font(("sans-serif", 11))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

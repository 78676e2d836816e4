//! The SVG of `swap-sim --svg`: fault rate against frames, one line per
//! policy.

use std::path::Path;

use plotters::prelude::*;

use crate::util::{Failure, Result};

const COLOURS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

/// Writes the plot of `curves` (policy, [(frames, fault rate)]) to `path`.
pub fn plot(path: &Path, curves: &[(String, Vec<(usize, f64)>)]) -> Result {
    let err = |e: &dyn std::fmt::Display| Failure(format!("plot {}: {e}", path.display()));
    let max_x = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|p| p.0))
        .max()
        .unwrap_or(1);
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("swap-sim: fault rate against frames", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0..max_x, 0.0..1.0f64)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("frames")
        .y_desc("faults per access")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, pts)) in curves.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

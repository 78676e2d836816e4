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

/// A named curve of points.
pub(crate) type Curve<X, Y> = (String, Vec<(X, Y)>);

/// Draws `curves` (name, points) in turn in [`COLOURS`], with circles at
/// the points if `marks`, and the legend.
pub(crate) fn curves_and_legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    curves: &[Curve<X::ValueType, Y::ValueType>],
    marks: bool,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged,
    Y: Ranged,
    X::ValueType: Clone + 'static,
    Y::ValueType: Clone + 'static,
{
    let e = |e: &dyn std::fmt::Display| e.to_string();
    for (i, (name, pts)) in curves.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().cloned(), c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        if marks {
            chart
                .draw_series(pts.iter().cloned().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(|x| e(&x))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))
}

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
    let pts: Vec<(String, Vec<(usize, f64)>)> = curves.to_vec();
    curves_and_legend(&mut chart, &pts, false).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

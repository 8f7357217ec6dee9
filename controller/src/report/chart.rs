//! Line charts as inline SVG for the HTML report: a few series over time on
//! one panel, axes with round ticks, a legend; every data point is a circle
//! (class `pt`) so a reader can hover it and a test can count it.

use std::fmt::Write as _;

use super::html::escape;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 32.0;
const TICKS: usize = 5;
/// Colour-blind-safe (Okabe–Ito) colours, one per line.
const COLOURS: [&str; 5] = ["#0072B2", "#E69F00", "#D55E00", "#009E73", "#CC79A7"];

/// One line: its name and (x, y) points in data units.
pub struct Line<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A chart: title, y-axis unit, lines over a shared x axis (seconds, or
/// runs with `x_unit` empty).
pub struct Chart<'a> {
    /// Shown as the title; also the `data-name` of the `<svg>`.
    pub title: &'a str,
    /// `ms`, `ops/s`.
    pub unit: &'a str,
    pub lines: Vec<Line<'a>>,
    /// After each x tick: `s` for seconds, `` for a count.
    pub x_unit: &'a str,
}

impl Chart<'_> {
    /// The chart as an `<svg>` element.
    pub fn to_svg(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_svg(&mut out);
        out
    }

    fn write_svg(&self, out: &mut String) -> std::fmt::Result {
        let all = self.lines.iter().flat_map(|l| l.points.iter());
        let (mut x_max, mut y_max) = (0.0f64, 0.0f64);
        for &(x, y) in all {
            x_max = x_max.max(x);
            y_max = y_max.max(y);
        }
        let x_max = nice_ceiling(x_max);
        let y_max = nice_ceiling(y_max);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + x / x_max * plot_w;
        let sy = |y: f64| TOP + plot_h - y / y_max * plot_h;

        writeln!(
            out,
            r#"<svg class="chart" data-name="{}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg">"#,
            escape(self.title)
        )?;
        writeln!(
            out,
            r#"<text class="title" x="{LEFT}" y="16">{} ({})</text>"#,
            escape(self.title),
            escape(self.unit)
        )?;
        for i in 0..=TICKS {
            let v = y_max * i as f64 / TICKS as f64;
            let y = sy(v);
            writeln!(
                out,
                r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                tick_label(v)
            )?;
            let t = x_max * i as f64 / TICKS as f64;
            writeln!(
                out,
                r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}{}</text>"#,
                sx(t),
                HEIGHT - BOTTOM + 16.0,
                tick_label(t),
                escape(self.x_unit)
            )?;
        }
        writeln!(
            out,
            r#"<line class="axis" x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/>"#,
            sy(0.0),
            WIDTH - RIGHT,
            sy(0.0)
        )?;
        let mut legend_x = LEFT + 260.0;
        for (i, line) in self.lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let path: Vec<String> = line
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            writeln!(
                out,
                r#"<polyline class="line" data-series="{}" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                escape(line.name),
                path.join(" ")
            )?;
            for &(x, y) in &line.points {
                writeln!(
                    out,
                    r#"<circle class="pt" cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{}: {} {} at {}{}</title></circle>"#,
                    sx(x),
                    sy(y),
                    escape(line.name),
                    tick_label(y),
                    escape(self.unit),
                    tick_label(x),
                    escape(self.x_unit)
                )?;
            }
            writeln!(
                out,
                r#"<rect x="{legend_x:.1}" y="8" width="10" height="10" fill="{colour}"/><text class="legend" x="{:.1}" y="17">{}</text>"#,
                legend_x + 14.0,
                escape(line.name)
            )?;
            legend_x += 14.0 + 8.0 * line.name.chars().count() as f64 + 16.0;
        }
        writeln!(out, "</svg>")
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (1 for nothing), so ticks
/// fall on round numbers.
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&c| c >= v * 0.999_999)
        .unwrap_or(10.0 * magnitude)
}

fn tick_label(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        let check = |v: f64, expected: f64| assert_eq!(nice_ceiling(v), expected, "{v}");
        check(0.0, 1.0);
        check(0.7, 1.0);
        check(1.0, 1.0);
        check(1.2, 2.0);
        check(3.0, 5.0);
        check(7.0, 10.0);
        check(420.0, 500.0);
        check(0.031, 0.05);
    }

    #[test]
    fn every_point_is_drawn_inside_the_plot() {
        let chart = Chart {
            title: "wf <1>",
            unit: "ms",
            lines: vec![Line {
                name: "p95",
                points: vec![(1.0, 3.0), (2.0, 9.0), (3.0, 0.0)],
            }],
            x_unit: "s",
        };
        let svg = chart.to_svg();
        assert_eq!(svg.matches(r#"class="pt""#).count(), 3);
        assert!(svg.contains(r#"data-name="wf &lt;1&gt;""#), "{svg}");
        for cy in svg.split(r#"cy=""#).skip(1) {
            let y: f64 = cy.split('"').next().unwrap().parse().unwrap();
            assert!((TOP..=HEIGHT - BOTTOM).contains(&y), "{y}");
        }
    }
}

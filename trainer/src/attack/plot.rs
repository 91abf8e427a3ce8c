//! Line charts with error bars as standalone SVG: axes with ticks and grid, axis
//! labels, a title and a legend. Written directly (no plotting crate): SVG text
//! needs no font files, so the plots render the same everywhere and the build stays
//! offline-friendly.

use std::fmt::Write;

/// One point: `y` with the error bar `lo..=hi`, and an optional text next to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
    pub label: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Width of a chart whose legend fits the default right margin.
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
/// Least right margin (the legend's column); longer legend names widen the chart.
const RIGHT: f64 = 250.0;
/// Generous width of one legend character at font size 12, and the room before the
/// legend's text (gap, line sample and marker) and after it.
const LEGEND_CHAR: f64 = 7.0;
const LEGEND_PAD: f64 = 56.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Distinguishable colors (Okabe-Ito, then Tableau).
const COLORS: [&str; 12] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8c564b", "#7f7f7f", "#bcbd22",
    "#17becf", "#9467bd",
];
const DASHES: [&str; 3] = ["", "6,3", "2,3"];

/// Text escaped for SVG/XML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// About `n` round tick values covering `lo..=hi` (steps of 1, 2 or 5 times a power of ten).
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / n.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn format_tick(v: f64) -> String {
    if v.abs() >= 1000.0 && v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Axis range with a 5% margin, widened when empty or flat.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

impl Chart {
    /// The chart as a complete SVG document.
    pub fn to_svg(&self) -> String {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = range(points().map(|p| p.x));
        let (y0, y1) = range(points().flat_map(|p| [p.y, p.lo, p.hi]));
        let plot_w = WIDTH - LEFT - RIGHT;
        let longest = self.series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0);
        let width = LEFT + plot_w + RIGHT.max(LEGEND_PAD + LEGEND_CHAR * longest as f64);
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
        let sy = |y: f64| TOP + plot_h - (y - y0) / (y1 - y0) * plot_h;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            s,
            r#"<rect x="0" y="0" width="{width}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
            LEFT + plot_w / 2.0,
            escape(&self.title)
        );
        // Grid and ticks.
        for t in ticks(x0, x1, 6) {
            let x = sx(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e0e0e0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 16.0,
                format_tick(t)
            );
        }
        for t in ticks(y0, y1, 6) {
            let y = sy(t);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                format_tick(t)
            );
        }
        // Axes and their labels.
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#000"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 18.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        // Series: error bars, line, markers, point labels.
        for (i, series) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let dash = DASHES[(i / COLORS.len()) % DASHES.len()];
            let _ = writeln!(s, r#"<g class="series" stroke="{color}" fill="{color}">"#);
            for p in &series.points {
                let (x, lo, hi) = (sx(p.x), sy(p.lo), sy(p.hi));
                if (p.hi - p.lo).abs() > 0.0 {
                    let _ = writeln!(
                        s,
                        r#"<path d="M{x:.1},{lo:.1}V{hi:.1}M{:.1},{lo:.1}H{:.1}M{:.1},{hi:.1}H{:.1}" fill="none"/>"#,
                        x - 4.0,
                        x + 4.0,
                        x - 4.0,
                        x + 4.0
                    );
                }
            }
            if series.points.len() > 1 {
                let path: Vec<String> = series
                    .points
                    .iter()
                    .map(|p| format!("{:.1},{:.1}", sx(p.x), sy(p.y)))
                    .collect();
                let dash_attr = if dash.is_empty() {
                    String::new()
                } else {
                    format!(r#" stroke-dasharray="{dash}""#)
                };
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke-width="2"{dash_attr}/>"#,
                    path.join(" ")
                );
            }
            for p in &series.points {
                let _ = writeln!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3.5"/>"#, sx(p.x), sy(p.y));
                if let Some(label) = &p.label {
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" stroke="none" font-size="10">{}</text>"#,
                        sx(p.x) + 6.0,
                        sy(p.y) - 6.0,
                        escape(label)
                    );
                }
            }
            let _ = writeln!(s, "</g>");
        }
        // Legend.
        let lx = LEFT + plot_w + 16.0;
        let _ = writeln!(s, r#"<g class="legend">"#);
        for (i, series) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let y = TOP + 10.0 + 18.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="2"/><circle cx="{:.1}" cy="{y:.1}" r="3.5" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 24.0,
                lx + 12.0,
                lx + 30.0,
                y + 4.0,
                escape(&series.name)
            );
        }
        if self.series.is_empty() {
            let _ = writeln!(s, r#"<text x="{lx:.1}" y="{:.1}">(no data)</text>"#, TOP + 14.0);
        }
        let _ = writeln!(s, "</g>");
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(950.0, 10500.0, 5), vec![2000.0, 4000.0, 6000.0, 8000.0, 10000.0]);
        assert_eq!(format_tick(0.30000000000000004), "0.3");
        assert_eq!(format_tick(20000.0), "20000");
    }

    #[test]
    fn svg_has_axes_labels_legend_and_escapes() {
        let chart = Chart {
            title: "a < b".into(),
            x_label: "queries".into(),
            y_label: "fidelity (%)".into(),
            series: vec![Series {
                name: "qat / none".into(),
                points: vec![
                    Point {
                        x: 100.0,
                        y: 50.0,
                        lo: 40.0,
                        hi: 60.0,
                        label: Some("k=1".into()),
                    },
                    Point {
                        x: 200.0,
                        y: 70.0,
                        lo: 70.0,
                        hi: 70.0,
                        label: None,
                    },
                ],
            }],
        };
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for needle in ["a &lt; b", "queries", "fidelity (%)", "qat / none", "polyline", "k=1"] {
            assert!(svg.contains(needle), "{needle}");
        }
        assert!(svg.contains(r#"width="760""#), "a short legend keeps the default width");
    }

    /// A long legend name widens the chart instead of running off its right edge.
    #[test]
    fn long_legend_names_widen_the_chart() {
        let name = "both-w0.3-t4-b0.2 / reverse-sigmoid (gamma=0.4)";
        let chart = Chart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                name: name.into(),
                points: vec![Point {
                    x: 1.0,
                    y: 1.0,
                    lo: 1.0,
                    hi: 1.0,
                    label: None,
                }],
            }],
        };
        let svg = chart.to_svg();
        let width: f64 = svg
            .split("width=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let text_end = WIDTH - RIGHT + LEGEND_PAD + LEGEND_CHAR * name.len() as f64;
        assert!(width >= text_end && width > WIDTH, "{width}");
    }
}

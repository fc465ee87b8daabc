//! Line plots and bar charts, drawn with [`plotters`]: as SVG (text) through its SVG backend,
//! and as PNG through its bitmap backend, with text in a bundled subset of DejaVu Sans
//! (`ff-train/assets`, rasterised by `ab_glyph`: no system font, no C library), the RGB
//! buffer encoded by the `png` crate.

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

const W: u32 = 720;
const H: u32 = 420;
/// The font family every text is set in: the SVG names it, the bitmap draws it with [`FONT`].
const FAMILY: &str = "sans-serif";
/// DejaVu Sans cut down to Latin, Greek, punctuation, arrows and mathematical operators; its
/// licence is `ff-train/assets/DejaVuSans-subset.LICENSE`.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
/// The colour of markers (dashed vertical lines and their labels).
const MARKER: RGBColor = RGBColor(85, 85, 85);
/// The colour of the grid lines at the ticks.
const GRID: RGBColor = RGBColor(225, 225, 225);

/// Test accuracy (or any quantity) per epoch, one series per method.
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    /// Title above the plot.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// `(name, y values at x = 1, 2, ...)`; non-finite values are skipped.
    pub series: Vec<(String, Vec<f64>)>,
}

/// A quantity against a measured abscissa (e.g. accuracy against physical queries), one series
/// of `(x, y)` points per method, with labelled vertical markers (e.g. the moment the system
/// changed). The x axis spans the points and the markers, with ticks at round values.
#[derive(Clone, Debug, PartialEq)]
pub struct XyPlot {
    /// Title above the plot.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// `(name, points)`; points with a non-finite coordinate are skipped.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// `(label, x)`: a dashed vertical line at `x`, labelled at its top.
    pub markers: Vec<(String, f64)>,
}

/// One bar per method.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    /// Title above the chart.
    pub title: String,
    /// `(label, value)`.
    pub bars: Vec<(String, f64)>,
}

fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = 0.05 * (hi - lo).max(1e-3);
    (lo - pad, hi + pad)
}

/// Registers [`FONT`] as [`FAMILY`] with plotters, once per process: text is measured with it
/// for the SVG too.
fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let ok = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok();
        assert!(ok, "the bundled font parses");
    });
}

/// The result of drawing on a backend of type `DB`.
type Drawn<DB, T = ()> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Something drawn on a `W x H` area of any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB>;
}

/// The figure as an SVG document.
fn svg_of(fig: &impl Figure) -> String {
    register();
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (W, H)).into_drawing_area();
        fig.draw(&root).expect("drawing into memory");
        root.present().expect("drawing into memory");
    }
    s
}

/// The figure rasterised into `W x H` RGB pixels (row by row, top first).
fn rgb_of(fig: &impl Figure) -> Vec<u8> {
    register();
    let mut rgb = vec![0; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (W, H)).into_drawing_area();
        fig.draw(&root).expect("drawing into memory");
        root.present().expect("drawing into memory");
    }
    rgb
}

/// The figure as a PNG file (bytes): 8-bit RGB.
fn png_of(fig: &impl Figure) -> Vec<u8> {
    let rgb = rgb_of(fig);
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, W, H);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().expect("writing to memory");
    w.write_image_data(&rgb).expect("writing to memory");
    w.finish().expect("writing to memory");
    out
}

/// A linear axis over `lo..hi` whose grid lines and labels sit at the given ticks.
struct Axis {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Axis {
    fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
        Axis { linear: (lo..hi).into(), ticks }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    /// The ticks, for the bold grid lines and the labels; no light lines.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.linear.range()
    }
}

impl ValueFormatter<f64> for Axis {
    fn format(value: &f64) -> String {
        tick_label(*value)
    }
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// The y-axis label of a tick with the decimals the tick step needs.
fn y_formatter(decimals: usize) -> impl Fn(&f64) -> String {
    move |v| format!("{v:.decimals$}")
}

/// Splits `root` into the plot and, to its right, a legend as wide as its longest name needs
/// (within a half of the width), drawn there: per name, in the colours' order, a line (or a
/// square, for bars) and the name. Returns the plot's area.
fn with_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    names: &[&str],
    squares: bool,
) -> Drawn<DB, DrawingArea<DB, Shift>> {
    let style = font(14);
    let mut widest = 0;
    for name in names {
        widest = widest.max(root.estimate_text_size(name, &style)?.0);
    }
    let legend_w = (widest + 50).clamp(110, W / 2);
    let (plot, legend) = root.split_horizontally(root.dim_in_pixel().0.saturating_sub(legend_w));
    for (i, name) in names.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let y = 24 + 22 * i as i32;
        if squares {
            legend.draw(&Rectangle::new([(12, y - 6), (24, y + 6)], c.filled()))?;
        } else {
            legend.draw(&PathElement::new(vec![(6, y), (28, y)], c.stroke_width(3)))?;
        }
        legend.draw(&Text::new(name.to_string(), (34, y), style.pos(Pos::new(HPos::Left, VPos::Center))))?;
    }
    Ok(plot)
}

impl LinePlot {
    /// The curves to draw: x from epoch 1 to the longest series (at least 2), ticks at whole
    /// epochs only.
    fn curves(&self) -> Curves<'_> {
        let n = self.series.iter().map(|s| s.1.len()).max().unwrap_or(1).max(2);
        let x = (1.0, n as f64);
        let ticks = nice_ticks(x.0, x.1, 5).0.into_iter().filter(|x| (x - x.round()).abs() < 1e-9).map(f64::round);
        Curves {
            title: &self.title,
            x_label: &self.x_label,
            y_label: &self.y_label,
            ticks: ticks.collect(),
            x,
            y: y_range(self.series.iter().flat_map(|s| s.1.iter().copied())),
            series: self
                .series
                .iter()
                .map(|(name, ys)| {
                    let pts = ys.iter().enumerate().filter(|(_, y)| y.is_finite()).map(|(j, &y)| (j as f64 + 1.0, y));
                    (name.as_str(), pts.collect())
                })
                .collect(),
            markers: &[],
        }
    }

    /// The plot as an SVG document.
    pub fn svg(&self) -> String {
        svg_of(&self.curves())
    }

    /// The plot as a PNG file (bytes).
    pub fn png(&self) -> Vec<u8> {
        png_of(&self.curves())
    }
}

impl XyPlot {
    fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series.iter().flat_map(|s| s.1.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite())
    }

    /// The curves to draw: x spanning the points and the markers, ticks at round values.
    fn curves(&self) -> Curves<'_> {
        let xs = self.points().map(|p| p.0).chain(self.markers.iter().map(|m| m.1).filter(|x| x.is_finite()));
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        let x = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else if lo.is_finite() {
            (lo, lo + 1.0)
        } else {
            (0.0, 1.0)
        };
        Curves {
            title: &self.title,
            x_label: &self.x_label,
            y_label: &self.y_label,
            ticks: nice_ticks(x.0, x.1, 5).0,
            x,
            y: y_range(self.points().map(|p| p.1)),
            series: self
                .series
                .iter()
                .map(|(name, pts)| {
                    (name.as_str(), pts.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect())
                })
                .collect(),
            markers: &self.markers,
        }
    }

    /// The plot as an SVG document.
    pub fn svg(&self) -> String {
        svg_of(&self.curves())
    }

    /// The plot as a PNG file (bytes).
    pub fn png(&self) -> Vec<u8> {
        png_of(&self.curves())
    }
}

/// What [`LinePlot`] and [`XyPlot`] draw: the title, axes with their labels and a grid at the
/// ticks, dashed labelled markers, one line (with a dot at each point) per series, and the
/// legend to the right of the plot (points in data units, all finite).
struct Curves<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    /// The spans of the axes, in data units.
    x: (f64, f64),
    y: (f64, f64),
    /// Where the x axis is labelled, in data units.
    ticks: Vec<f64>,
    series: Vec<(&'a str, Vec<(f64, f64)>)>,
    /// `(label, x)`; non-finite `x` are skipped.
    markers: &'a [(String, f64)],
}

impl Curves<'_> {
    /// Draws the curves; returns the pixel columns of the x span's ends and of the markers.
    fn draw_at<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB, (i32, i32, Vec<i32>)> {
        root.fill(&WHITE)?;
        let root = root.titled(self.title, font(20))?;
        let names: Vec<&str> = self.series.iter().map(|s| s.0).collect();
        let plot = with_legend(&root, &names, false)?;
        let ((x0, x1), (y0, y1)) = (self.x, self.y);
        let (y_ticks, decimals) = nice_ticks(y0, y1, 5);
        let mut chart = ChartBuilder::on(&plot)
            .margin(10)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .build_cartesian_2d(Axis::new(x0, x1, self.ticks.clone()), Axis::new(y0, y1, y_ticks))?;
        let tick = |x: &f64| tick_label(*x);
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style(font(15))
            .label_style(font(13))
            .x_label_formatter(&tick)
            .y_label_formatter(&y_formatter(decimals))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .draw()?;
        let mut marker_px = Vec::new();
        for (label, x) in self.markers.iter().filter(|m| m.1.is_finite()) {
            let style = MARKER.stroke_width(1);
            chart.draw_series(std::iter::once(DashedPathElement::new(vec![(*x, y0), (*x, y1)], 6, 4, style)))?;
            // The label reads to the right of the line, or to its left near the right edge.
            let right = (x - x0) / (x1 - x0) < 0.6;
            let (dx, h) = if right { (4, HPos::Left) } else { (-4, HPos::Right) };
            let text = font(13).color(&MARKER).pos(Pos::new(h, VPos::Top));
            chart.draw_series(std::iter::once(EmptyElement::at((*x, y1)) + Text::new(label.clone(), (dx, 4), text)))?;
            marker_px.push(chart.backend_coord(&(*x, y1)).0);
        }
        for (i, (_, pts)) in self.series.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?;
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
        Ok((chart.backend_coord(&(x0, y0)).0, chart.backend_coord(&(x1, y0)).0, marker_px))
    }
}

impl Figure for Curves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        self.draw_at(root).map(|_| ())
    }
}

/// Tick values of an axis spanning `(lo, hi)`: the multiples of a round step (1, 2 or 5 x 10^k,
/// chosen so that there are about `target` ticks, at least 3) that lie in the span, and the
/// decimals the step needs (`0.2` -> 1, `0.05` -> 2, `5000` -> 0). An empty or non-finite span
/// gives `lo` alone.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, usize) {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return (vec![lo], 2);
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let m = match raw / mag {
        f if f < 1.5 => 1.0,
        f if f < 3.0 => 2.0,
        f if f < 7.0 => 5.0,
        _ => 10.0,
    };
    let step = m * mag;
    let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    ((first..=last).map(|i| i as f64 * step).collect(), decimals)
}

/// A short axis label: `1234` -> `1234`, `56789` -> `56.8k`, `40000` -> `40k`, `1.2e6` ->
/// `1.2M`, `0.25` -> `0.25`.
fn tick_label(x: f64) -> String {
    let a = x.abs();
    let short = |v: f64, unit: &str| format!("{}{unit}", format!("{v:.1}").trim_end_matches(".0"));
    if a >= 1e6 {
        short(x / 1e6, "M")
    } else if a >= 1e4 {
        short(x / 1e3, "k")
    } else if a >= 10.0 || x == x.round() {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

impl Figure for BarChart {
    /// The title, a y axis with a grid at its ticks, one coloured bar per entry from 0 to its
    /// value with the value above it (and its label below the axis where it fits), and the
    /// legend naming the bars' colours.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let root = root.titled(&self.title, font(20))?;
        let names: Vec<&str> = self.bars.iter().map(|b| b.0.as_str()).collect();
        let plot = with_legend(&root, &names, true)?;
        let n = self.bars.len().max(1) as f64;
        // Room above the highest bar (and below the lowest) for the value written there.
        let (lo, hi) = y_range(self.bars.iter().map(|b| b.1).chain([0.0]));
        let pad = 0.08 * (hi - lo);
        let (lo, hi) = (if lo < 0.0 { lo - pad } else { lo }, hi + pad);
        let (y_ticks, decimals) = nice_ticks(lo, hi, 5);
        let centres: Vec<f64> = (0..self.bars.len()).map(|i| i as f64 + 0.5).collect();
        let mut chart = ChartBuilder::on(&plot)
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(Axis::new(0.0, n, centres), Axis::new(lo, hi, y_ticks))?;
        // A bar's label is also written under it when it fits there (the legend names it anyway).
        let slot = chart.plotting_area().dim_in_pixel().0 / self.bars.len().max(1) as u32;
        let mut fits = Vec::new();
        for (name, _) in &self.bars {
            fits.push(plot.estimate_text_size(name, &font(13))?.0 + 6 <= slot);
        }
        let label = |x: &f64| {
            let i = x.floor() as usize;
            match self.bars.get(i) {
                Some(b) if fits[i] => b.0.clone(),
                _ => String::new(),
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .label_style(font(13))
            .x_label_formatter(&label)
            .y_label_formatter(&y_formatter(decimals))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .draw()?;
        if lo < 0.0 {
            chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, 0.0), (n, 0.0)], BLACK)))?;
        }
        for (i, (_, v)) in self.bars.iter().enumerate() {
            let x = i as f64;
            let fill = COLORS[i % COLORS.len()].filled();
            chart.draw_series(std::iter::once(Rectangle::new([(x + 0.15, 0.0), (x + 0.85, *v)], fill)))?;
            let text = font(13).pos(Pos::new(HPos::Center, VPos::Bottom));
            let value = EmptyElement::at((x + 0.5, v.max(0.0))) + Text::new(format!("{v:.2}"), (0, -4), text);
            chart.draw_series(std::iter::once(value))?;
        }
        Ok(())
    }
}

impl BarChart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        svg_of(self)
    }

    /// The chart as a PNG file (bytes).
    pub fn png(&self) -> Vec<u8> {
        png_of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a PNG with the `png` crate: checks the signature, returns (width, height, RGB).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "signature");
        let mut reader = png::Decoder::new(bytes).read_info().expect("a valid PNG");
        let mut rgb = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut rgb).expect("one frame");
        assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgb, png::BitDepth::Eight));
        rgb.truncate(info.buffer_size());
        (info.width, info.height, rgb)
    }

    fn pixel(rgb: &[u8], x: u32, y: u32) -> [u8; 3] {
        let i = ((y * W + x) * 3) as usize;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    fn has_colour(rgb: &[u8], c: RGBColor) -> bool {
        rgb.chunks_exact(3).any(|p| p == [c.0, c.1, c.2])
    }

    /// The text of every `<text>` element of an SVG document.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
            .collect()
    }

    fn xy() -> XyPlot {
        XyPlot {
            title: "accuracy vs queries".into(),
            x_label: "training queries".into(),
            y_label: "accuracy".into(),
            series: vec![
                ("FF".into(), vec![(0.0, 0.1), (50_000.0, 0.9), (100_000.0, 0.95)]),
                ("PAT".into(), vec![(0.0, 0.1), (f64::NAN, 0.5), (100_000.0, 0.7)]),
            ],
            markers: vec![("sudden change".into(), 40_000.0)],
        }
    }

    #[test]
    fn xy_plot_places_points_ticks_and_markers() {
        let p = xy();
        let svg = p.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let t = texts(&svg);
        for want in ["accuracy vs queries", "training queries", "accuracy", "FF", "PAT", "sudden change"] {
            assert!(t.iter().any(|s| s == want), "{want} in {t:?}");
        }
        // Ticks from 0 to 100k on x; y (0.1 to 0.95, padded) at round values with the decimals
        // they need.
        for want in ["0", "40k", "100k", "0.2", "0.8"] {
            assert!(t.iter().any(|s| s == want), "{want} in {t:?}");
        }
        assert!(!t.iter().any(|s| s == "0.50" || s == "1.5"), "{t:?}");
        // One line per series; the NaN point is skipped: PAT's line has two points.
        let line = |c: RGBColor| {
            let stroke = format!("stroke=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
            svg.lines()
                .filter(|l| l.contains("<polyline") && l.contains(&stroke))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let (ff, pat) = (line(COLORS[0]), line(COLORS[1]));
        // The series' line, and its legend entry.
        assert_eq!((ff.len(), pat.len()), (2, 2), "{svg}");
        let points = |l: &str| {
            l.split("points=\"").nth(1).unwrap().split('"').next().unwrap().split(' ').filter(|p| !p.is_empty()).count()
        };
        let series_line = |ls: &[String]| ls.iter().find(|l| l.contains("stroke-width=\"2\"")).map(|l| points(l));
        assert_eq!((series_line(&ff), series_line(&pat)), (Some(3), Some(2)), "{pat:?}");
        // The marker is a dashed grey vertical line at 40 % of the x span.
        let mut scratch = String::new();
        let (x0, x1, markers) =
            p.curves().draw_at(&SVGBackend::with_string(&mut scratch, (W, H)).into_drawing_area()).unwrap();
        assert_eq!(markers.len(), 1);
        let mx = markers[0];
        assert!((f64::from(mx - x0) - 0.4 * f64::from(x1 - x0)).abs() <= 1.0, "{x0} {x1} {mx}");
        let dashes: Vec<&str> = svg.lines().filter(|l| l.contains("stroke=\"#555555\"")).collect();
        assert!(dashes.len() >= 10, "{dashes:?}");
        let vertical_at_mx = |l: &str| {
            let pts = l.split("points=\"").nth(1).unwrap_or("").split('"').next().unwrap_or("");
            let xs: Vec<&str> = pts.split_whitespace().map(|p| p.split(',').next().unwrap_or("")).collect();
            xs.len() == 2 && xs.iter().all(|x| *x == mx.to_string())
        };
        assert!(dashes.iter().all(|l| vertical_at_mx(l)), "{mx}: {dashes:?}");
        // In the PNG, that column is grey in dashes down the plot, and both series are drawn.
        let (w, h, rgb) = decode(&p.png());
        assert_eq!((w, h, rgb.len()), (W, H, (3 * W * H) as usize));
        let grey = (0..H).filter(|&y| pixel(&rgb, mx as u32, y) == [MARKER.0, MARKER.1, MARKER.2]).count();
        assert!(grey > 100, "{grey} grey pixels in the marker's column");
        assert!(has_colour(&rgb, COLORS[0]) && has_colour(&rgb, COLORS[1]));
        assert!(!has_colour(&rgb, COLORS[2]), "two series, two colours");
        assert_eq!(tick_label(1234.0), "1234");
        assert_eq!(tick_label(2_500_000.0), "2.5M");
        assert_eq!(tick_label(56_789.0), "56.8k");
        assert_eq!(tick_label(40_000.0), "40k");
        assert_eq!(tick_label(0.25), "0.25");
    }

    #[test]
    fn ticks_sit_at_round_values_inside_the_span() {
        let close = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        let (t, d) = nice_ticks(0.0525, 0.9975, 5);
        assert!(close(&t, &[0.2, 0.4, 0.6, 0.8]), "{t:?}");
        assert_eq!(d, 1);
        let (t, d) = nice_ticks(0.0, 114_960.0, 5);
        assert!(close(&t, &[0.0, 20e3, 40e3, 60e3, 80e3, 100e3]), "{t:?}");
        assert_eq!(d, 0);
        let (t, d) = nice_ticks(0.93, 0.99, 5);
        assert!(close(&t, &[0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99]), "{t:?}");
        assert_eq!(d, 2);
        // Any span: at least 3 ticks, all inside, evenly spaced.
        for (lo, hi) in [(0.0, 1.0), (-3.7, 12.2), (1e-4, 3e-4), (0.5, 0.5 + 1e-3), (17.0, 1e9)] {
            let (t, _) = nice_ticks(lo, hi, 5);
            assert!(t.len() >= 3 && t.len() <= 11, "({lo}, {hi}): {t:?}");
            assert!(
                t.iter().all(|v| *v >= lo - 1e-12 * hi.abs() && *v <= hi + 1e-12 * hi.abs()),
                "({lo}, {hi}): {t:?}"
            );
        }
        assert_eq!(nice_ticks(1.0, 1.0, 5).0, [1.0]);
        assert_eq!(nice_ticks(f64::NAN, 1.0, 5).0.len(), 1);
    }

    #[test]
    fn plots_render_as_svg_and_png() {
        let lp = LinePlot {
            title: "acc per epoch".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            series: vec![("FF <PhyLL>".into(), vec![0.5, 0.7, 0.9]), ("BP".into(), vec![0.6, f64::NAN, 0.95])],
        };
        let svg = lp.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("FF &lt;PhyLL&gt;"), "names are escaped");
        let t = texts(&svg);
        for want in ["acc per epoch", "epoch", "accuracy", "FF &lt;PhyLL&gt;", "BP"] {
            assert!(t.iter().any(|s| s == want), "{want} in {t:?}");
        }
        // Whole epochs on the x axis: 3 epochs give the ticks 1, 2 and 3 (not 1.5).
        for e in ["1", "2", "3"] {
            assert!(t.iter().any(|s| s == e), "{e} in {t:?}");
        }
        assert!(!t.iter().any(|s| s.contains(".5") && !s.starts_with("0.")), "{t:?}");
        let (w, h, rgb) = decode(&lp.png());
        assert_eq!((w, h, rgb.len()), (W, H, (3 * W * H) as usize));
        assert!(has_colour(&rgb, COLORS[0]) && has_colour(&rgb, COLORS[1]));
        // Text is drawn: dark pixels in the title's band at the top, and the background is white.
        assert!((0..30).any(|y| (0..W).any(|x| pixel(&rgb, x, y).iter().all(|&v| v < 100))), "title drawn");
        assert_eq!(pixel(&rgb, 0, 0), [255, 255, 255]);

        let bc = BarChart { title: "cost".into(), bars: vec![("FF".into(), -2.0), ("PAT".into(), 1.5)] };
        let svg = bc.svg();
        let fill = |c: RGBColor| format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
        let bars: Vec<&str> = svg.lines().filter(|l| l.contains("<rect")).collect();
        assert!(
            bars.iter().any(|l| l.contains(&fill(COLORS[0]))) && bars.iter().any(|l| l.contains(&fill(COLORS[1]))),
            "{bars:?}"
        );
        let t = texts(&svg);
        for want in ["cost", "FF", "PAT", "-2.00", "1.50"] {
            assert!(t.iter().any(|s| s == want), "{want} in {t:?}");
        }
        let (w, h, rgb) = decode(&bc.png());
        assert_eq!((w, h), (W, H));
        assert!(has_colour(&rgb, COLORS[0]) && has_colour(&rgb, COLORS[1]), "both bars are drawn");
    }
}

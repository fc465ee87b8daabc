//! A tiny plotting module: line plots and bar charts as SVG (text) and PNG (rasterised into
//! an RGB buffer with a built-in 3 x 5 bitmap font, zlib-compressed with flate2).

use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};
use std::io::Write;

const W: usize = 720;
const H: usize = 420;
const LEFT: usize = 60;
const RIGHT: usize = 200;
const TOP: usize = 36;
const BOTTOM: usize = 44;
const COLORS: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

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

fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Maps data to pixels: `(x0, x1) -> (LEFT, W - RIGHT)`, `(y0, y1) -> (H - BOTTOM, TOP)`.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64, y: f64) -> (f64, f64) {
        let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
        let fx = (x - self.x.0) / (self.x.1 - self.x.0).max(1e-12);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0).max(1e-12);
        (LEFT as f64 + fx * pw, (H - BOTTOM) as f64 - fy * ph)
    }
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

impl LinePlot {
    /// The curves to draw: x from epoch 1 to the longest series (at least 2), ticks at whole
    /// epochs only.
    fn curves(&self) -> Curves<'_> {
        let n = self.series.iter().map(|s| s.1.len()).max().unwrap_or(1).max(2);
        let frame = Frame { x: (1.0, n as f64), y: y_range(self.series.iter().flat_map(|s| s.1.iter().copied())) };
        let ticks =
            nice_ticks(frame.x.0, frame.x.1, 5).0.into_iter().filter(|x| (x - x.round()).abs() < 1e-9).map(f64::round);
        Curves {
            title: &self.title,
            x_label: &self.x_label,
            y_label: &self.y_label,
            ticks: ticks.collect(),
            frame,
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
        self.curves().svg()
    }

    /// The plot as a PNG file (bytes).
    pub fn png(&self) -> Vec<u8> {
        self.curves().png()
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
            frame: Frame { x, y: y_range(self.points().map(|p| p.1)) },
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
        self.curves().svg()
    }

    /// The plot as a PNG file (bytes).
    pub fn png(&self) -> Vec<u8> {
        self.curves().png()
    }
}

/// What [`LinePlot`] and [`XyPlot`] draw: axes, x ticks, dashed markers, then one polyline and
/// one legend entry per series (points in data units, all finite).
struct Curves<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    frame: Frame,
    /// Where the x axis is labelled, in data units.
    ticks: Vec<f64>,
    series: Vec<(&'a str, Vec<(f64, f64)>)>,
    /// `(label, x)`; non-finite `x` are skipped.
    markers: &'a [(String, f64)],
}

impl Curves<'_> {
    fn svg(&self) -> String {
        let f = &self.frame;
        let mut s = svg_axes(self.title, self.x_label, self.y_label, f);
        s.push_str(&svg_x_ticks(f, &self.ticks));
        for (label, x) in self.markers.iter().filter(|m| m.1.is_finite()) {
            let (px, _) = f.px(*x, f.y.0);
            s.push_str(&format!(
                "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#555555\" stroke-dasharray=\"6,4\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{}</text>\n",
                H - BOTTOM,
                px + 4.0,
                TOP + 12,
                esc(label)
            ));
        }
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let c = hex(COLORS[i % COLORS.len()]);
            let pts: Vec<String> = pts
                .iter()
                .map(|&(x, y)| {
                    let (x, y) = f.px(x, y);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            s.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\n",
                pts.join(" ")
            ));
            let ly = TOP + 14 + 18 * i;
            s.push_str(&format!(
                "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"3\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>\n",
                W - RIGHT + 10,
                W - RIGHT + 30,
                W - RIGHT + 36,
                ly + 4,
                esc(name)
            ));
        }
        s.push_str("</svg>\n");
        s
    }

    fn png(&self) -> Vec<u8> {
        let f = &self.frame;
        let mut c = Canvas::new(W, H);
        raster_axes(&mut c, self.title, self.x_label, f);
        raster_x_ticks(&mut c, f, &self.ticks);
        let grey = [85, 85, 85];
        for (label, x) in self.markers.iter().filter(|m| m.1.is_finite()) {
            let (px, _) = f.px(*x, f.y.0);
            let mut y = TOP as f64;
            while y < (H - BOTTOM) as f64 {
                let end = (y + 6.0).min((H - BOTTOM) as f64);
                c.line((px, y), (px, end), grey);
                y += 10.0;
            }
            c.text(px as usize + 4, TOP + 2, label, 2, grey);
        }
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let col = COLORS[i % COLORS.len()];
            let pts: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| f.px(x, y)).collect();
            for w in pts.windows(2) {
                c.line(w[0], w[1], col);
            }
            let ly = (TOP + 14 + 18 * i) as f64;
            c.line(((W - RIGHT + 10) as f64, ly), ((W - RIGHT + 30) as f64, ly), col);
            c.text(W - RIGHT + 36, ly as usize - 5, name, 2, [0, 0, 0]);
        }
        c.png()
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

impl BarChart {
    fn frame(&self) -> Frame {
        let (lo, hi) = y_range(self.bars.iter().map(|b| b.1).chain([0.0]));
        Frame { x: (0.0, self.bars.len().max(1) as f64), y: (lo, hi) }
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let f = self.frame();
        let mut s = svg_axes(&self.title, "", "", &f);
        for (i, (label, v)) in self.bars.iter().enumerate() {
            let (x0, y0) = f.px(i as f64 + 0.15, 0.0);
            let (x1, y1) = f.px(i as f64 + 0.85, *v);
            let c = hex(COLORS[i % COLORS.len()]);
            s.push_str(&format!(
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n",
                y0.min(y1),
                x1 - x0,
                (y1 - y0).abs(),
                (x0 + x1) / 2.0,
                H - BOTTOM + 14,
                esc(label)
            ));
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{v:.2}</text>\n",
                (x0 + x1) / 2.0,
                y0.min(y1) - 3.0
            ));
        }
        s.push_str("</svg>\n");
        s
    }

    /// The chart as a PNG file (bytes).
    pub fn png(&self) -> Vec<u8> {
        let f = self.frame();
        let mut c = Canvas::new(W, H);
        raster_axes(&mut c, &self.title, "", &f);
        for (i, (label, v)) in self.bars.iter().enumerate() {
            let (x0, y0) = f.px(i as f64 + 0.15, 0.0);
            let (x1, y1) = f.px(i as f64 + 0.85, *v);
            c.rect(x0 as usize, y0.min(y1) as usize, x1 as usize, y0.max(y1) as usize, COLORS[i % COLORS.len()]);
            let short: String = label.chars().take(((x1 - x0) / 8.0) as usize).collect();
            c.text(x0 as usize, H - BOTTOM + 8, &short, 2, [0, 0, 0]);
            c.text(x0 as usize, (y0.min(y1) as usize).saturating_sub(12), &format!("{v:.2}"), 2, [0, 0, 0]);
        }
        c.png()
    }
}

fn svg_axes(title: &str, xl: &str, yl: &str, f: &Frame) -> String {
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\">\n<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n");
    s.push_str(&format!(
        "<text x=\"{}\" y=\"22\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n",
        W / 2,
        esc(title)
    ));
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"black\" points=\"{LEFT},{TOP} {LEFT},{} {},{}\"/>\n",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    ));
    let (ticks, d) = nice_ticks(f.y.0, f.y.1, 5);
    for v in ticks {
        let (_, y) = f.px(f.x.0, v);
        s.push_str(&format!(
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{LEFT}\" y2=\"{y:.1}\" stroke=\"black\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v:.d$}</text>\n",
            LEFT - 4,
            LEFT - 6,
            y + 4.0
        ));
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n",
        (LEFT + W - RIGHT) / 2,
        H - 8,
        esc(xl)
    ));
    s.push_str(&format!(
        "<text x=\"14\" y=\"{}\" font-size=\"12\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>\n",
        H / 2,
        H / 2,
        esc(yl)
    ));
    s
}

/// Labelled tick marks below the x axis at `ticks` (data units), as SVG elements.
fn svg_x_ticks(f: &Frame, ticks: &[f64]) -> String {
    let mut s = String::new();
    for &x in ticks {
        let (px, py) = f.px(x, f.y.0);
        s.push_str(&format!(
            "<line x1=\"{px:.1}\" y1=\"{py:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"black\"/><text x=\"{px:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
            py + 4.0,
            py + 16.0,
            tick_label(x)
        ));
    }
    s
}

/// Labelled tick marks below the x axis at `ticks` (data units), rasterised.
fn raster_x_ticks(c: &mut Canvas, f: &Frame, ticks: &[f64]) {
    for &x in ticks {
        let (px, py) = f.px(x, f.y.0);
        let label = tick_label(x);
        c.line((px, py), (px, py + 4.0), [0, 0, 0]);
        c.text((px as usize).saturating_sub(4 * label.len()), py as usize + 6, &label, 2, [0, 0, 0]);
    }
}

fn raster_axes(c: &mut Canvas, title: &str, xl: &str, f: &Frame) {
    let k = [0, 0, 0];
    c.text(LEFT, 10, title, 3, k);
    c.line((LEFT as f64, TOP as f64), (LEFT as f64, (H - BOTTOM) as f64), k);
    c.line((LEFT as f64, (H - BOTTOM) as f64), ((W - RIGHT) as f64, (H - BOTTOM) as f64), k);
    let (ticks, d) = nice_ticks(f.y.0, f.y.1, 5);
    for v in ticks {
        let (_, y) = f.px(f.x.0, v);
        c.line(((LEFT - 4) as f64, y), (LEFT as f64, y), k);
        c.text(4, (y as usize).saturating_sub(5), &format!("{v:.d$}"), 2, k);
    }
    c.text((LEFT + W - RIGHT) / 2, H - 16, xl, 2, k);
}

/// An RGB raster with a white background.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

/// 3 x 5 glyphs, one row per 3 bits (top row in the high bits); unknown characters are blank.
fn glyph(ch: char) -> u16 {
    match ch.to_ascii_uppercase() {
        '0' => 0b111_101_101_101_111,
        '1' => 0b010_110_010_010_111,
        '2' => 0b111_001_111_100_111,
        '3' => 0b111_001_111_001_111,
        '4' => 0b101_101_111_001_001,
        '5' => 0b111_100_111_001_111,
        '6' => 0b111_100_111_101_111,
        '7' => 0b111_001_010_010_010,
        '8' => 0b111_101_111_101_111,
        '9' => 0b111_101_111_001_111,
        'A' => 0b010_101_111_101_101,
        'B' => 0b110_101_110_101_110,
        'C' => 0b011_100_100_100_011,
        'D' => 0b110_101_101_101_110,
        'E' => 0b111_100_110_100_111,
        'F' => 0b111_100_110_100_100,
        'G' => 0b011_100_101_101_011,
        'H' => 0b101_101_111_101_101,
        'I' => 0b111_010_010_010_111,
        'J' => 0b001_001_001_101_010,
        'K' => 0b101_101_110_101_101,
        'L' => 0b100_100_100_100_111,
        'M' => 0b101_111_111_101_101,
        'N' => 0b110_101_101_101_101,
        'O' => 0b010_101_101_101_010,
        'P' => 0b110_101_110_100_100,
        'Q' => 0b010_101_101_110_011,
        'R' => 0b110_101_110_101_101,
        'S' => 0b011_100_010_001_110,
        'T' => 0b111_010_010_010_010,
        'U' => 0b101_101_101_101_111,
        'V' => 0b101_101_101_101_010,
        'W' => 0b101_101_111_111_101,
        'X' => 0b101_101_010_101_101,
        'Y' => 0b101_101_010_010_010,
        'Z' => 0b111_001_010_100_111,
        '.' => 0b000_000_000_000_010,
        '-' => 0b000_000_111_000_000,
        '+' => 0b000_010_111_010_000,
        '(' => 0b001_010_010_010_001,
        ')' => 0b100_010_010_010_100,
        '/' => 0b001_001_010_100_100,
        ',' => 0b000_000_000_010_100,
        _ => 0,
    }
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas { w, h, px: vec![255; w * h * 3] }
    }

    fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.w && y < self.h {
            let i = (y * self.w + x) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// A 2-pixel-wide line (sampled at half-pixel steps).
    fn line(&mut self, a: (f64, f64), b: (f64, f64), c: [u8; 3]) {
        let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) * 2.0).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            if x >= 0.0 && y >= 0.0 {
                let (x, y) = (x.round() as usize, y.round() as usize);
                self.set(x, y, c);
                self.set(x + 1, y, c);
                self.set(x, y + 1, c);
            }
        }
    }

    fn rect(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, c: [u8; 3]) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.set(x, y, c);
            }
        }
    }

    /// Text with its top-left corner at `(x, y)`, glyph pixels `scale x scale`.
    fn text(&mut self, x: usize, y: usize, s: &str, scale: usize, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for row in 0..5 {
                for col in 0..3 {
                    if g >> (14 - (row * 3 + col)) & 1 == 1 {
                        let (px, py) = (x + (i * 4 + col) * scale, y + row * scale);
                        self.rect(px, py, px + scale - 1, py + scale - 1, c);
                    }
                }
            }
        }
    }

    /// Scanlines with the PNG filter byte (0, none) before every row.
    fn scanlines(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(self.h * (self.w * 3 + 1));
        for row in self.px.chunks_exact(self.w * 3) {
            raw.push(0);
            raw.extend_from_slice(row);
        }
        raw
    }

    fn png(&self) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(self.w as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.h as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter, no interlace
        chunk(&mut out, b"IHDR", &ihdr);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&self.scanlines()).expect("writing to memory");
        chunk(&mut out, b"IDAT", &z.finish().expect("writing to memory"));
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    /// Parses a PNG: checks the signature and every chunk's CRC, returns (width, height, inflated IDAT).
    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "signature");
        let (mut i, mut idat, mut size) = (8, Vec::new(), (0, 0));
        let mut kinds = Vec::new();
        while i < png.len() {
            let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
            let kind = &png[i + 4..i + 8];
            let data = &png[i + 8..i + 8 + len];
            let want = u32::from_be_bytes(png[i + 8 + len..i + 12 + len].try_into().unwrap());
            let mut crc = Crc::new();
            crc.update(kind);
            crc.update(data);
            assert_eq!(crc.sum(), want, "CRC of chunk {}", String::from_utf8_lossy(kind));
            match kind {
                b"IHDR" => {
                    size = (
                        u32::from_be_bytes(data[..4].try_into().unwrap()),
                        u32::from_be_bytes(data[4..8].try_into().unwrap()),
                    )
                }
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            kinds.push(String::from_utf8_lossy(kind).to_string());
            i += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        let mut raw = Vec::new();
        ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
        (size.0, size.1, raw)
    }

    #[test]
    fn png_decodes_back_to_the_raster() {
        let mut c = Canvas::new(20, 10);
        c.line((0.0, 0.0), (19.0, 9.0), [255, 0, 0]);
        c.text(1, 1, "A1", 1, [0, 0, 255]);
        let (w, h, raw) = decode(&c.png());
        assert_eq!((w, h), (20, 10));
        assert_eq!(raw, c.scanlines());
        // The diagonal line is red at its start, and the glyph 'A' has its apex at (2, 1).
        assert_eq!(&c.px[..3], &[255, 0, 0]);
        assert_eq!(&c.px[(20 + 2) * 3..(20 + 2) * 3 + 3], &[0, 0, 255]);
    }

    #[test]
    fn xy_plot_places_points_ticks_and_markers() {
        let p = XyPlot {
            title: "accuracy vs queries".into(),
            x_label: "training queries".into(),
            y_label: "accuracy".into(),
            series: vec![
                ("FF".into(), vec![(0.0, 0.1), (50_000.0, 0.9), (100_000.0, 0.95)]),
                ("PAT".into(), vec![(0.0, 0.1), (f64::NAN, 0.5), (100_000.0, 0.7)]),
            ],
            markers: vec![("sudden change".into(), 40_000.0)],
        };
        let svg = p.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Axes + two series; the marker is a dashed line with its label; ticks from 0 to 100k.
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("stroke-dasharray") && svg.contains("sudden change"));
        assert!(svg.contains(">0<") && svg.contains(">100k<") && svg.contains(">40k<"), "{svg}");
        // The y axis (0.1 to 0.95, padded) is labelled at round values with the decimals they need.
        assert!(svg.contains(">0.2</text>") && svg.contains(">0.8</text>") && !svg.contains(">0.50</text>"), "{svg}");
        // The NaN point is skipped: PAT's polyline has two points.
        let pat = svg.lines().find(|l| l.contains("<polyline") && l.contains(&hex(COLORS[1]))).unwrap();
        assert_eq!(pat.matches(',').count(), 2, "{pat}");
        // The marker sits at 40 % of the plot width.
        let f = p.curves().frame;
        let (mx, _) = f.px(40_000.0, 0.5);
        assert!((mx - (LEFT as f64 + 0.4 * (W - LEFT - RIGHT) as f64)).abs() < 1e-9);
        assert!(svg.contains(&format!("x1=\"{mx:.1}\"")));
        let (w, h, raw) = decode(&p.png());
        assert_eq!((w as usize, h as usize, raw.len()), (W, H, H * (3 * W + 1)));
        // The dashed marker is drawn in grey in the PNG, just below the top of the plot.
        let y = TOP + 3;
        let x = mx.round() as usize;
        let at = y * (3 * W + 1) + 1 + 3 * x;
        assert_eq!(&raw[at..at + 3], &[85, 85, 85]);
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
            title: "acc".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            series: vec![("FF <PhyLL>".into(), vec![0.5, 0.7, 0.9]), ("BP".into(), vec![0.6, f64::NAN, 0.95])],
        };
        let svg = lp.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("FF &lt;PhyLL&gt;") && svg.matches("<polyline").count() == 3);
        // Whole epochs on the x axis: 3 epochs give the ticks 1, 2 and 3 (not 1.5).
        for e in [">1<", ">2<", ">3<"] {
            assert!(svg.contains(e), "{e} in {svg}");
        }
        assert!(!svg.contains(">1.50<") && !svg.contains(">2.50<"), "{svg}");
        let (w, h, raw) = decode(&lp.png());
        assert_eq!((w as usize, h as usize, raw.len()), (W, H, H * (3 * W + 1)));
        let bc = BarChart { title: "cost".into(), bars: vec![("FF".into(), -2.0), ("PAT".into(), 1.5)] };
        assert_eq!(bc.svg().matches("<rect").count(), 3);
        let (_, _, raw) = decode(&bc.png());
        assert!(raw.iter().any(|&b| b == COLORS[1][0]), "the second bar is drawn");
    }
}

//! PNG output: single frames and contact sheets of observations.

use anyhow::{Context, Result};
use std::path::Path;

/// Writes an RGB8 image (`width × height × 3` bytes, row-major) as PNG, atomically.
pub fn save_rgb_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<()> {
    assert_eq!(rgb.len(), (width * height * 3) as usize, "RGB buffer size");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("png.tmp");
    {
        let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Lays out `[3, h, w]` frames as a grid with `cols` columns, each scaled up `scale` times
/// (nearest), with a 2-pixel grey gutter. Returns `(width, height, rgb)`.
pub fn contact_sheet(frames: &[&[u8]], h: usize, w: usize, cols: usize, scale: usize) -> (u32, u32, Vec<u8>) {
    let gutter = 2;
    let rows = frames.len().div_ceil(cols).max(1);
    let (cw, ch) = (w * scale + gutter, h * scale + gutter);
    let (width, height) = (cols * cw + gutter, rows * ch + gutter);
    let mut rgb = vec![64u8; width * height * 3];
    let plane = h * w;
    for (k, f) in frames.iter().enumerate() {
        let (ox, oy) = (gutter + (k % cols) * cw, gutter + (k / cols) * ch);
        for y in 0..h * scale {
            for x in 0..w * scale {
                let (sy, sx) = (y / scale, x / scale);
                let o = ((oy + y) * width + ox + x) * 3;
                for c in 0..3 {
                    rgb[o + c] = f[c * plane + sy * w + sx];
                }
            }
        }
    }
    (width as u32, height as u32, rgb)
}

/// 3×5 bitmap glyphs for digits, capitals and a few signs, one row per `u8` (3 low bits, left = 4).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        '/' => [1, 1, 2, 4, 4],
        '%' => [5, 1, 2, 4, 5],
        '(' => [2, 4, 4, 4, 2],
        ')' => [2, 1, 1, 1, 2],
        '@' => [7, 5, 7, 4, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [7, 4, 4, 4, 7],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [7, 4, 5, 5, 7],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 7],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [7, 5, 5, 5, 7],
        'P' => [7, 5, 7, 4, 4],
        'Q' => [7, 5, 5, 7, 1],
        'R' => [6, 5, 6, 5, 5],
        'S' => [7, 4, 7, 1, 7],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        _ => return None,
    })
}

/// An RGB canvas for simple plots.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Canvas {
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![255; width * height * 3],
        }
    }

    pub fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let o = (y as usize * self.width + x as usize) * 3;
            self.rgb[o..o + 3].copy_from_slice(&c);
        }
    }

    /// A line from (x0, y0) to (x1, y1), `thick` pixels wide.
    pub fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: [u8; 3], thick: i64) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
        for i in 0..=n {
            let f = i as f64 / n as f64;
            let (x, y) = ((x0 + (x1 - x0) * f).round() as i64, (y0 + (y1 - y0) * f).round() as i64);
            for dy in 0..thick {
                for dx in 0..thick {
                    self.set(x + dx - thick / 2, y + dy - thick / 2, c);
                }
            }
        }
    }

    /// Digits, capitals and a few signs at (x, y) (top-left), each glyph pixel `scale` pixels;
    /// lower case is drawn as capitals, other characters as spaces.
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3], scale: i64) {
        for (k, ch) in s.chars().enumerate() {
            let Some(g) = glyph(ch.to_ascii_uppercase()) else {
                continue;
            };
            for (r, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                self.set(x + (k as i64 * 4 + col) * scale + dx, y + r as i64 * scale + dy, c);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A line plot of `series` (each a list of y values for x = 1, 2, …) with numbered axes;
/// y from 0 to the largest value. Colours cycle blue, orange, green.
pub fn line_plot(series: &[&[f32]]) -> Canvas {
    let (w, h) = (640usize, 400usize);
    let (left, right, top, bottom) = (60.0, 20.0, 20.0, 40.0);
    let mut c = Canvas::new(w, h);
    let n = series.iter().map(|s| s.len()).max().unwrap_or(1).max(2);
    let ymax = series
        .iter()
        .flat_map(|s| s.iter())
        .cloned()
        .fold(0.0f32, f32::max)
        .max(1e-3) as f64;
    // A round top for the y axis.
    let step = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        .into_iter()
        .find(|s| ymax / s <= 8.0)
        .unwrap_or(200.0);
    let ytop = (ymax / step).ceil() * step;
    let px = |i: f64| left + (i - 1.0) / (n - 1) as f64 * (w as f64 - left - right);
    let py = |v: f64| h as f64 - bottom - v / ytop * (h as f64 - top - bottom);
    let grey = [220, 220, 220];
    let mut v = 0.0;
    while v <= ytop + 1e-9 {
        c.line(left, py(v), w as f64 - right, py(v), grey, 1);
        let label = if step < 1.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.0}")
        };
        c.text(8, py(v) as i64 - 5, &label, [60, 60, 60], 2);
        v += step;
    }
    let xstep = if n > 16 { 4 } else { 1 };
    for i in (1..=n).filter(|i| *i == 1 || i % xstep == 0) {
        c.line(
            px(i as f64),
            h as f64 - bottom,
            px(i as f64),
            h as f64 - bottom + 5.0,
            [60, 60, 60],
            1,
        );
        c.text(
            px(i as f64) as i64 - 4,
            h as i64 - bottom as i64 + 10,
            &i.to_string(),
            [60, 60, 60],
            2,
        );
    }
    c.line(left, top, left, h as f64 - bottom, [60, 60, 60], 1);
    c.line(
        left,
        h as f64 - bottom,
        w as f64 - right,
        h as f64 - bottom,
        [60, 60, 60],
        1,
    );
    let colours = [[31, 119, 180], [255, 127, 14], [44, 160, 44]];
    for (k, s) in series.iter().enumerate() {
        for i in 1..s.len() {
            c.line(
                px(i as f64),
                py(s[i - 1] as f64),
                px((i + 1) as f64),
                py(s[i] as f64),
                colours[k % 3],
                3,
            );
        }
    }
    c
}

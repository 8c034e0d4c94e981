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

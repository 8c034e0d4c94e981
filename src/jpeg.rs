//! JPEG round trips of observations: what users' tools do to images before an agent sees
//! them (stable-worldmodel's datasets store frames as JPEG; PIL and OpenCV save JPEG by
//! default). `eval --jpeg Q` passes every observation and goal image through one; training
//! can draw them as an augmentation (`jpeg` in the level-1 config) so that the model holds
//! up under them.
//!
//! The encoding is baseline JPEG as libjpeg (and so PIL) writes it by default: the standard
//! quantisation tables scaled by the quality, 4:2:0 chroma subsampling by box averages.

use anyhow::{bail, Result};

pub use crate::checkpoint::JpegAugment;

/// A JPEG quality amisim takes: 1 to 100.
pub fn check_quality(quality: u8) -> Result<()> {
    if !(1..=100).contains(&quality) {
        bail!("JPEG quality {quality}: expected 1 to 100");
    }
    Ok(())
}

/// Encodes one `[c, h, w]` frame (c = 3: RGB; c = 1: grey) as JPEG at `quality` (1–100) and
/// decodes it back in place.
pub fn round_trip(frame: &mut [u8], shape: [usize; 3], quality: u8) -> Result<()> {
    let [c, h, w] = shape;
    check_quality(quality)?;
    if frame.len() != c * h * w {
        bail!("a [{c}, {h}, {w}] frame has {} bytes, not {}", c * h * w, frame.len());
    }
    if h == 0 || w == 0 || h > u16::MAX as usize || w > u16::MAX as usize {
        bail!("a JPEG frame is 1 to 65535 pixels a side, not {h}×{w}");
    }
    let color = match c {
        3 => jpeg_encoder::ColorType::Rgb,
        1 => jpeg_encoder::ColorType::Luma,
        _ => bail!("JPEG holds frames of 1 or 3 channels, this one has {c}"),
    };
    let plane = h * w;
    let mut hwc = vec![0u8; c * plane];
    for ch in 0..c {
        for (p, &v) in frame[ch * plane..(ch + 1) * plane].iter().enumerate() {
            hwc[p * c + ch] = v;
        }
    }
    let mut bytes = Vec::with_capacity(2048);
    let mut enc = jpeg_encoder::Encoder::new(&mut bytes, quality);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
    enc.encode(&hwc, w as u16, h as u16, color)
        .map_err(|e| anyhow::anyhow!("JPEG encoding: {e}"))?;
    let decoded = jpeg_decoder::Decoder::new(bytes.as_slice())
        .decode()
        .map_err(|e| anyhow::anyhow!("JPEG decoding: {e}"))?;
    if decoded.len() != c * plane {
        bail!("JPEG decoding gave {} bytes for a {h}×{w}×{c} frame", decoded.len());
    }
    for ch in 0..c {
        for (p, v) in frame[ch * plane..(ch + 1) * plane].iter_mut().enumerate() {
            *v = decoded[p * c + ch];
        }
    }
    Ok(())
}

/// [`round_trip`] on every frame of a `[n, c, h, w]` batch.
pub fn round_trip_all(frames: &mut [u8], shape: [usize; 4], quality: u8) -> Result<()> {
    let [n, c, h, w] = shape;
    let len = c * h * w;
    if frames.len() != n * len {
        bail!(
            "{n} frames of [{c}, {h}, {w}] are {} bytes, not {}",
            n * len,
            frames.len()
        );
    }
    for f in frames.chunks_exact_mut(len.max(1)) {
        round_trip(f, [c, h, w], quality)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Vec<u8> {
        // A dark background, a green wall and a red blob, as a top-down scene draws them.
        let (h, w) = (65, 65);
        let mut f = vec![0u8; 3 * h * w];
        for y in 0..h {
            for x in 0..w {
                if (30..33).contains(&x) && !(20..30).contains(&y) {
                    f[h * w + y * w + x] = 255;
                }
                if (x as i32 - 10).pow(2) + (y as i32 - 40).pow(2) < 9 {
                    f[y * w + x] = 255;
                }
            }
        }
        f
    }

    #[test]
    fn round_trip_changes_little_at_high_quality_and_more_at_low() {
        let f = frame();
        let err = |q: u8| {
            let mut g = f.clone();
            round_trip(&mut g, [3, 65, 65], q).unwrap();
            f.iter()
                .zip(&g)
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .sum::<f64>()
                / f.len() as f64
        };
        let (e95, e50, e10) = (err(95), err(50), err(10));
        assert!(e95 > 0.0, "JPEG is lossy on sharp edges");
        assert!(
            e95 < e50 && e50 < e10,
            "error grows as quality falls: {e95} {e50} {e10}"
        );
        assert!(e95 < 4.0, "quality 95 keeps the frame close: mean error {e95}");
    }

    #[test]
    fn round_trip_is_deterministic_and_refuses_bad_shapes() {
        let (mut a, mut b) = (frame(), frame());
        round_trip(&mut a, [3, 65, 65], 90).unwrap();
        round_trip(&mut b, [3, 65, 65], 90).unwrap();
        assert_eq!(a, b);
        assert!(round_trip(&mut a, [3, 65, 64], 90).is_err());
        assert!(round_trip(&mut a, [3, 65, 65], 0).is_err());
        let mut four = vec![0u8; 4 * 8 * 8];
        assert!(round_trip(&mut four, [4, 8, 8], 90).is_err());
    }
}

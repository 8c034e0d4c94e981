//! Augmentations for the two-view objectives (SimCLR, BYOL, VICReg, SIGReg, MC-JEPA's content
//! term), chosen for these worlds: they change how a frame looks, never where things are.
//! Crops, flips and translations, the usual image augmentations, would teach the encoder that
//! positions do not matter, and positions are what a planner needs.
//!
//! Each view gets, per image and channel, a gain of 0.7–1.3 on what differs from the
//! background (`bg + (x − bg)·g`, the background each channel's least value in the image), and
//! one cutout square of a fifth of the side filled with that background. The background stays
//! exactly the background and nothing moves, so every view is a frame these worlds could
//! render with other colours. The earlier additive brightness and pixel noise (in units of the
//! channel's spread) moved every pixel of the sparse agent channel, background included; a
//! grey cutout (earlier still) drew a decoy agent. A channel that is constant in the image
//! stays constant. All random numbers come from `rng`, so a run is reproducible.

use burn::prelude::*;
use rand::{Rng, RngExt};

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// One augmented view of frames `[b, c, h, w]` in `0..=1`.
pub fn augment(frames: Tensor<4>, rng: &mut impl Rng) -> Tensor<4> {
    let [b, c, h, w] = frames.dims();
    let device = frames.device();
    let gain: Vec<f32> = (0..b * c).map(|_| 0.7 + 0.6 * rng.random::<f32>()).collect();
    let gain = Tensor::<4>::from_data(TensorData::new(gain, [b, c, 1, 1]), &device);
    let background = frames.clone().min_dim(3).min_dim(2); // [b, c, 1, 1]
    let x = (frames - background.clone()) * gain + background.clone();
    // One square per image, filled with its background.
    let side = (h.min(w) / 5).max(1);
    let mut keep = vec![1.0f32; b * h * w];
    for i in 0..b {
        let top = rng.random_range(0..=h - side);
        let left = rng.random_range(0..=w - side);
        for y in top..top + side {
            for xx in left..left + side {
                keep[i * h * w + y * w + xx] = 0.0;
            }
        }
    }
    let keep = Tensor::<4>::from_data(TensorData::new(keep, [b, 1, h, w]), &device);
    (x * keep.clone() + (-keep + 1.0) * background).clamp(0.0, 1.0)
}

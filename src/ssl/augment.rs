//! Augmentations for the two-view objectives (SimCLR, BYOL, VICReg, SIGReg, MC-JEPA's content
//! term), chosen for these worlds: they change how a frame looks, never where things are.
//! Crops, flips and translations, the usual image augmentations, would teach the encoder that
//! positions do not matter, and positions are what a planner needs.
//!
//! Each view gets, per image and channel: brightness (±0.5 of the channel's std over the
//! batch), contrast (×0.8–1.2 around the image's channel mean), Gaussian pixel noise (0.3 of
//! the channel's std), and one cutout square of a fifth of the side filled with the image's
//! background (each channel's least value). Every change is in units of the channel's own
//! spread, because the encoder divides each channel by its std: a fixed ±0.1 in pixel units
//! became ×28 on the sparse agent channel and ×1000 on an empty one, and a grey cutout drew a
//! decoy agent. A channel that is constant in the batch stays constant. All random numbers
//! come from `rng`, so a run is reproducible.

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
    // Each channel's spread over the batch, `[1, c, 1, 1]`.
    let per_channel = frames.clone().swap_dims(0, 1).reshape([c, b * h * w]);
    let spread = per_channel.var(1).sqrt().reshape([1, c, 1, 1]);
    let per = |lo: f32, hi: f32, rng: &mut dyn FnMut() -> f32| -> Vec<f32> {
        (0..b * c).map(|_| lo + (hi - lo) * rng()).collect()
    };
    let mut uniform = || rng.random::<f32>();
    let brightness = per(-0.5, 0.5, &mut uniform);
    let contrast = per(0.8, 1.2, &mut uniform);
    let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [b, c, 1, 1]), &device);
    let mean = frames.clone().mean_dim(3).mean_dim(2); // [b, c, 1, 1]
    let background = frames.clone().min_dim(3).min_dim(2); // [b, c, 1, 1]
    let x = (frames - mean.clone()) * t(contrast) + mean + t(brightness) * spread.clone();
    let noise: Vec<f32> = (0..b * c * h * w).map(|_| 0.3 * normal(rng)).collect();
    let x = x + Tensor::<4>::from_data(TensorData::new(noise, [b, c, h, w]), &device) * spread;
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

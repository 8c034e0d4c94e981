//! Augmentations for the two-view objectives (SimCLR, BYOL, VICReg, SIGReg, MC-JEPA's content
//! term), chosen for these worlds: they change how a frame looks, never where things are.
//! Crops, flips and translations, the usual image augmentations, would teach the encoder that
//! positions do not matter, and positions are what a planner needs. Each view gets, per image:
//! brightness (±0.1) and contrast (×0.8–1.2) per channel, Gaussian pixel noise (σ 0.03), and
//! one grey cutout square of a fifth of the side. All random numbers come from `rng`, so a run
//! is reproducible.

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
    let per = |lo: f32, hi: f32, rng: &mut dyn FnMut() -> f32| -> Vec<f32> {
        (0..b * c).map(|_| lo + (hi - lo) * rng()).collect()
    };
    let mut uniform = || rng.random::<f32>();
    let brightness = per(-0.1, 0.1, &mut uniform);
    let contrast = per(0.8, 1.2, &mut uniform);
    let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [b, c, 1, 1]), &device);
    let mean = frames.clone().mean_dim(3).mean_dim(2); // [b, c, 1, 1]
    let x = (frames - mean.clone()) * t(contrast) + mean + t(brightness);
    let noise: Vec<f32> = (0..b * c * h * w).map(|_| 0.03 * normal(rng)).collect();
    let x = x + Tensor::<4>::from_data(TensorData::new(noise, [b, c, h, w]), &device);
    // One grey square per image.
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
    (x * keep.clone() + (-keep + 1.0) * 0.5).clamp(0.0, 1.0)
}

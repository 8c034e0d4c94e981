//! The conv encoder.

use super::gemm_conv::conv2d;
use super::{normalise, EncoderConfig};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};

/// A 3×3 convolution with padding 1 (same size at stride 1).
pub fn conv3x3(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// The coordinate in `[-1, 1]` of cell `i`'s centre along a feature map of `side` cells, as
/// the spatial soft-argmax weighs it.
pub fn cell_coord(i: usize, side: usize) -> f32 {
    if side > 1 {
        2.0 * i as f32 / (side - 1) as f32 - 1.0
    } else {
        0.0
    }
}

/// An Impala-style residual block: `x + conv(relu(conv(relu(x))))`.
#[derive(Module, Debug)]
pub struct ResBlock {
    a: Conv2d,
    b: Conv2d,
}

impl ResBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = conv2d(&self.a, relu(x.clone()));
        x + conv2d(&self.b, relu(h))
    }
}

/// Conv encoder: frames `[batch, channels, h, w]` in `0..=1` → latents `[batch, latent]`.
#[derive(Module, Debug)]
pub struct ConvEncoder {
    stages: Vec<Conv2d>,
    blocks: Vec<Vec<ResBlock>>,
    head: Linear,
    /// The 1×1 squeeze to the spatial state, when the config asks for one.
    squeeze: Option<Conv2d>,
    latent: usize,
    /// Side of the last feature map.
    side: usize,
    /// Input normalisation (constants, not trained): `(x − shift) · scale`, `[1, c, 1, 1]`.
    shift: Option<Tensor<4>>,
    scale: Option<Tensor<4>>,
    /// Coordinates of the last feature map's cells for the spatial soft-argmax, `[1, 1, h·w]`.
    grid_x: Option<Tensor<3>>,
    grid_y: Option<Tensor<3>>,
    /// The head reads the keypoints alone (no flattened map).
    keypoint_head: bool,
}

impl ConvEncoder {
    pub fn new(cfg: &EncoderConfig, device: &Device) -> ConvEncoder {
        let mut stages = Vec::new();
        let mut blocks = Vec::new();
        let mut c_in = cfg.in_channels;
        for (&c, &s) in cfg.channels.iter().zip(&cfg.strides) {
            stages.push(conv3x3(c_in, c, s, device));
            blocks.push(
                (0..cfg.res_blocks)
                    .map(|_| ResBlock {
                        a: conv3x3(c, c, 1, device),
                        b: conv3x3(c, c, 1, device),
                    })
                    .collect(),
            );
            c_in = c;
        }
        let side = cfg.feature_side();
        let (shift, scale) = cfg.normalisation(device);
        let (grid_x, grid_y) = if cfg.spatial_softmax {
            // Cell-centre coordinates in [-1, 1] of the last feature map, row-major.
            let coord = |i: usize| cell_coord(i, side);
            let grid = |f: &dyn Fn(usize) -> f32| {
                let v: Vec<f32> = (0..side * side).map(f).collect();
                Tensor::<1>::from_data(TensorData::new(v, [side * side]), device).reshape([1, 1, side * side])
            };
            (Some(grid(&|p| coord(p % side))), Some(grid(&|p| coord(p / side))))
        } else {
            (None, None)
        };
        let squeeze =
            (cfg.spatial_state > 0).then(|| Conv2dConfig::new([c_in, cfg.spatial_state], [1, 1]).init(device));
        if cfg.spatial_state > 0 {
            c_in = cfg.spatial_state;
        }
        let flat = if cfg.keypoint_head { 0 } else { c_in * side * side };
        let head_in = flat + if cfg.spatial_softmax { 2 * c_in } else { 0 };
        ConvEncoder {
            stages,
            blocks,
            head: LinearConfig::new(head_in, cfg.latent).init(device),
            squeeze,
            side,
            latent: cfg.latent,
            shift,
            scale,
            grid_x,
            grid_y,
            keypoint_head: cfg.keypoint_head,
        }
    }

    /// Encodes frames `[batch, c, h, w]` → `[batch, latent]`.
    pub fn forward(&self, frames: Tensor<4>) -> Tensor<2> {
        self.readout(self.feature_map(frames))
    }

    /// The last feature map `[batch, c, side, side]` (squeezed to the spatial state when there
    /// is one).
    pub fn feature_map(&self, frames: Tensor<4>) -> Tensor<4> {
        let mut x = normalise(frames, &self.shift, &self.scale);
        for (conv, blocks) in self.stages.iter().zip(&self.blocks) {
            x = relu(conv2d(conv, x)); // [batch, c, side / s, side / s]
            for b in blocks {
                x = b.forward(x);
            }
        }
        match &self.squeeze {
            Some(sq) => conv2d(sq, x),
            None => x,
        }
    }

    /// Side of the last feature map.
    pub fn feature_map_side(&self) -> usize {
        self.side
    }

    /// Whether the encoder squeezes its map to a spatial state.
    pub fn has_spatial_state(&self) -> bool {
        self.squeeze.is_some()
    }

    /// The head: a feature map `[batch, c, side, side]` → latents `[batch, latent]`.
    pub fn readout(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = x.dims();
        let flat = x.clone().reshape([b, c * h * w]);
        let features = match (&self.grid_x, &self.grid_y) {
            (Some(gx), Some(gy)) => {
                let attn = softmax(x.reshape([b, c, h * w]), 2); // [batch, c, h·w]
                let kx = (attn.clone() * gx.clone()).sum_dim(2).reshape([b, c]);
                let ky = (attn * gy.clone()).sum_dim(2).reshape([b, c]);
                if self.keypoint_head {
                    Tensor::cat(vec![kx, ky], 1) // [batch, 2c]
                } else {
                    Tensor::cat(vec![flat, kx, ky], 1) // [batch, c·h·w + 2c]
                }
            }
            _ => flat,
        };
        self.head.forward(features) // [batch, latent]
    }

    pub fn latent(&self) -> usize {
        self.latent
    }

    /// The head's weight `[in, latent]` and bias (for the planner's hand-written read-out).
    pub fn head(&self) -> &Linear {
        &self.head
    }
}

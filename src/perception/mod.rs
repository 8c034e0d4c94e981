//! Perception: encoders from frames to latent vectors.
//!
//! - [`ConvEncoder`]: a stack of conv stages, each `conv 3×3 (stride s) → ReLU` followed by
//!   optional Impala-style residual blocks, then a linear layer to the latent. The default is
//!   strided (cheap on a CPU); `res_blocks: 2` per stage gives the Impala shape.
//!   `ConvEncoderConfig::lenet()` is a LeNet-sized one for tests.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Settings of a [`ConvEncoder`].
#[derive(Config, Debug)]
pub struct ConvEncoderConfig {
    /// Channels of the input frames.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Side of the (square) input frames, in pixels.
    #[config(default = 65)]
    pub resolution: usize,
    /// Output channels of each stage.
    #[config(default = "vec![16, 32, 32]")]
    pub channels: Vec<usize>,
    /// Stride of each stage's first convolution.
    #[config(default = "vec![2, 2, 2]")]
    pub strides: Vec<usize>,
    /// Residual blocks (conv–ReLU–conv + skip) after each stage's first convolution.
    #[config(default = 0)]
    pub res_blocks: usize,
    /// Size of the latent vector.
    #[config(default = 64)]
    pub latent: usize,
    /// Per-channel mean and std of the input frames (in `0..=1`), subtracted and divided before
    /// the first convolution; empty for none. Training fills them from the data: the agent's
    /// blob covers a tiny share of the frame, and without this it barely moves the input.
    #[config(default = "vec![]")]
    pub input_mean: Vec<f32>,
    #[config(default = "vec![]")]
    pub input_std: Vec<f32>,
}

impl ConvEncoderConfig {
    /// A LeNet-sized encoder for tests.
    pub fn lenet(resolution: usize, latent: usize) -> Self {
        ConvEncoderConfig::new()
            .with_resolution(resolution)
            .with_channels(vec![4, 8])
            .with_strides(vec![2, 2])
            .with_latent(latent)
    }

    /// Side of the feature map after every stage.
    pub fn feature_side(&self) -> usize {
        // 3×3 convolutions with padding 1: side → ceil(side / stride).
        self.strides.iter().fold(self.resolution, |side, s| side.div_ceil(*s))
    }

    pub fn init(&self, device: &Device) -> ConvEncoder {
        assert_eq!(self.channels.len(), self.strides.len(), "one stride per stage");
        let mut stages = Vec::new();
        let mut blocks = Vec::new();
        let mut c_in = self.in_channels;
        for (&c, &s) in self.channels.iter().zip(&self.strides) {
            stages.push(conv3x3(c_in, c, s, device));
            blocks.push(
                (0..self.res_blocks)
                    .map(|_| ResBlock {
                        a: conv3x3(c, c, 1, device),
                        b: conv3x3(c, c, 1, device),
                    })
                    .collect(),
            );
            c_in = c;
        }
        let side = self.feature_side();
        let (shift, scale) = if self.input_mean.len() == self.in_channels && self.input_std.len() == self.in_channels {
            let mean = Tensor::<1>::from_data(TensorData::new(self.input_mean.clone(), [self.in_channels]), device);
            let inv: Vec<f32> = self.input_std.iter().map(|s| 1.0 / s.max(1e-6)).collect();
            let inv = Tensor::<1>::from_data(TensorData::new(inv, [self.in_channels]), device);
            (
                Some(mean.reshape([1, self.in_channels, 1, 1])),
                Some(inv.reshape([1, self.in_channels, 1, 1])),
            )
        } else {
            (None, None)
        };
        ConvEncoder {
            stages,
            blocks,
            head: LinearConfig::new(c_in * side * side, self.latent).init(device),
            latent: self.latent,
            shift,
            scale,
        }
    }
}

fn conv3x3(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// An Impala-style residual block: `x + conv(relu(conv(relu(x))))`.
#[derive(Module, Debug)]
pub struct ResBlock {
    a: Conv2d,
    b: Conv2d,
}

impl ResBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.a.forward(relu(x.clone()));
        x + self.b.forward(relu(h))
    }
}

/// Conv encoder: frames `[batch, channels, h, w]` in `0..=1` → latents `[batch, latent]`.
#[derive(Module, Debug)]
pub struct ConvEncoder {
    stages: Vec<Conv2d>,
    blocks: Vec<Vec<ResBlock>>,
    head: Linear,
    latent: usize,
    /// Input normalisation (constants, not trained): `(x − shift) · scale`, `[1, c, 1, 1]`.
    shift: Option<Tensor<4>>,
    scale: Option<Tensor<4>>,
}

impl ConvEncoder {
    /// Encodes frames `[batch, c, h, w]` → `[batch, latent]`.
    pub fn forward(&self, frames: Tensor<4>) -> Tensor<2> {
        let mut x = match (&self.shift, &self.scale) {
            (Some(shift), Some(scale)) => (frames - shift.clone()) * scale.clone(),
            _ => frames,
        };
        for (conv, blocks) in self.stages.iter().zip(&self.blocks) {
            x = relu(conv.forward(x)); // [batch, c, side / s, side / s]
            for b in blocks {
                x = b.forward(x);
            }
        }
        let [b, c, h, w] = x.dims();
        self.head.forward(x.reshape([b, c * h * w])) // [batch, latent]
    }

    pub fn latent(&self) -> usize {
        self.latent
    }
}

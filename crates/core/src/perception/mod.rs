//! Perception: encoders from frames to latent vectors.
//!
//! - [`ConvEncoder`]: a stack of conv stages, each `conv 3×3 (stride s) → ReLU` followed by
//!   optional Impala-style residual blocks, then a linear layer to the latent (optionally fed
//!   the spatial soft-argmax of the last feature map too). The default is strided (cheap on a
//!   CPU); `res_blocks: 2` per stage gives the Impala shape. [`EncoderConfig::lenet`] is a
//!   LeNet-sized one for tests.
//! - [`VitEncoder`]: a small ViT over non-overlapping patch tokens (patchified by a reshape and
//!   one matmul, not a convolution); the latent is a linear map of the mean token, and
//!   [`VitEncoder::forward_tokens`] also returns the patch tokens.
//!
//! Both normalise their input per channel with statistics measured on the training data.

mod conv;
pub mod gemm_conv;
mod vit;

pub use conv::{cell_coord, conv3x3, ConvEncoder, ResBlock};
pub use vit::VitEncoder;

use burn::prelude::*;

/// Which encoder architecture an [`EncoderConfig`] builds.
#[derive(Config, Debug, PartialEq, Copy)]
pub enum EncoderKind {
    Conv,
    Vit,
}

/// Settings of an encoder. The shared entries come first; `channels`, `strides`, `res_blocks`
/// and `spatial_softmax` belong to the conv encoder, `patch`, `width`, `depth` and `heads` to
/// the ViT.
#[derive(Config, Debug)]
pub struct EncoderConfig {
    #[config(default = "EncoderKind::Conv")]
    pub kind: EncoderKind,
    /// Channels of the input frames.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Side of the (square) input frames, in pixels.
    #[config(default = 65)]
    pub resolution: usize,
    /// Size of the latent vector.
    #[config(default = 64)]
    pub latent: usize,
    /// Per-channel mean and std of the input frames (in `0..=1`), subtracted and divided before
    /// the first layer; empty for none. Training fills them from the data: the agent's blob
    /// covers a tiny share of the frame, and without this it barely moves the input.
    #[config(default = "vec![]")]
    pub input_mean: Vec<f32>,
    #[config(default = "vec![]")]
    pub input_std: Vec<f32>,
    /// Conv: output channels of each stage.
    #[config(default = "vec![16, 32, 32]")]
    pub channels: Vec<usize>,
    /// Conv: stride of each stage's first convolution.
    #[config(default = "vec![2, 2, 2]")]
    pub strides: Vec<usize>,
    /// Conv: residual blocks (conv–ReLU–conv + skip) after each stage's first convolution.
    #[config(default = 0)]
    pub res_blocks: usize,
    /// Conv: also feed the head each last-stage channel's spatial soft-argmax (expected x and y
    /// under a softmax over the feature map, as in deep spatial autoencoders): features that
    /// move linearly with what they track, so positions are a linear read-out of the latent.
    #[config(default = true)]
    pub spatial_softmax: bool,
    /// Conv: the head reads the keypoints alone, not the whole map beside them (needs
    /// `spatial_softmax`): the latent is then an affine function of where each channel's
    /// keypoint is, so what the keypoints track is a linear read-out of it, however it moves.
    #[config(default = false)]
    pub keypoint_head: bool,
    /// Conv: squeeze the last feature map to this many channels with a 1×1 convolution
    /// before the head (0 = none). The squeezed map is the spatial state a
    /// [`SpatialPredictor`](crate::world_model::spatial::SpatialPredictor) rolls forward.
    #[config(default = 0)]
    pub spatial_state: usize,
    /// ViT: side of the square patches; frames are cropped to a multiple of it (65 → 64).
    #[config(default = 8)]
    pub patch: usize,
    /// ViT: token width.
    #[config(default = 64)]
    pub width: usize,
    /// ViT: transformer blocks.
    #[config(default = 2)]
    pub depth: usize,
    /// ViT: attention heads per block.
    #[config(default = 4)]
    pub heads: usize,
}

impl PartialEq for EncoderConfig {
    /// Equal architectures (the input statistics are data, not architecture).
    fn eq(&self, o: &Self) -> bool {
        let shared = (self.kind, self.in_channels, self.resolution, self.latent)
            == (o.kind, o.in_channels, o.resolution, o.latent);
        shared
            && match self.kind {
                EncoderKind::Conv => {
                    (
                        &self.channels,
                        &self.strides,
                        self.res_blocks,
                        self.spatial_softmax,
                        self.keypoint_head,
                        self.spatial_state,
                    ) == (
                        &o.channels,
                        &o.strides,
                        o.res_blocks,
                        o.spatial_softmax,
                        o.keypoint_head,
                        o.spatial_state,
                    )
                }
                EncoderKind::Vit => {
                    (self.patch, self.width, self.depth, self.heads) == (o.patch, o.width, o.depth, o.heads)
                }
            }
    }
}

impl EncoderConfig {
    /// A LeNet-sized conv encoder for tests.
    pub fn lenet(resolution: usize, latent: usize) -> Self {
        EncoderConfig::new()
            .with_resolution(resolution)
            .with_channels(vec![4, 8])
            .with_strides(vec![2, 2])
            .with_latent(latent)
    }

    /// A tiny ViT for tests.
    pub fn tiny_vit(resolution: usize, latent: usize) -> Self {
        EncoderConfig::new()
            .with_kind(EncoderKind::Vit)
            .with_resolution(resolution)
            .with_patch(4)
            .with_width(16)
            .with_depth(1)
            .with_heads(2)
            .with_latent(latent)
    }

    /// Checks the settings, naming the entry at fault.
    pub fn validate(&self) -> Result<(), String> {
        match self.kind {
            EncoderKind::Conv => {
                if self.channels.is_empty() || self.channels.len() != self.strides.len() {
                    return Err(format!(
                        "model.encoder.channels ({:?}) and model.encoder.strides ({:?}) need one entry per stage",
                        self.channels, self.strides
                    ));
                }
                if self.strides.contains(&0) {
                    return Err(format!("model.encoder.strides ({:?}) must be ≥ 1", self.strides));
                }
                if self.keypoint_head && !self.spatial_softmax {
                    return Err("model.encoder.keypoint_head needs model.encoder.spatial_softmax = true".into());
                }
                if self.keypoint_head && self.spatial_state > 0 {
                    return Err(format!(
                        "model.encoder.keypoint_head cannot be combined with model.encoder.spatial_state = {} \
                         (the spatial predictor's read-out takes the whole map)",
                        self.spatial_state
                    ));
                }
            }
            EncoderKind::Vit => {
                if self.patch == 0 || self.patch > self.resolution {
                    return Err(format!(
                        "model.encoder.patch = {} must be in 1..={} (the resolution)",
                        self.patch, self.resolution
                    ));
                }
                if self.heads == 0 || !self.width.is_multiple_of(self.heads) {
                    return Err(format!(
                        "model.encoder.width = {} must be a multiple of model.encoder.heads = {}",
                        self.width, self.heads
                    ));
                }
            }
        }
        if self.latent == 0 {
            return Err("model.encoder.latent must be ≥ 1".into());
        }
        Ok(())
    }

    /// Side of the conv encoder's last feature map.
    pub fn feature_side(&self) -> usize {
        // 3×3 convolutions with padding 1: side → ceil(side / stride).
        self.strides.iter().fold(self.resolution, |side, s| side.div_ceil(*s))
    }

    /// Patch tokens of the ViT: `(side / patch)²`.
    pub fn tokens(&self) -> usize {
        (self.resolution / self.patch).pow(2)
    }

    pub fn init(&self, device: &Device) -> Encoder {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        match self.kind {
            EncoderKind::Conv => Encoder::Conv(ConvEncoder::new(self, device)),
            EncoderKind::Vit => Encoder::Vit(VitEncoder::new(self, device)),
        }
    }

    /// The input normalisation as `(shift, scale)` tensors `[1, c, 1, 1]`, when the statistics
    /// are set.
    fn normalisation(&self, device: &Device) -> (Option<Tensor<4>>, Option<Tensor<4>>) {
        let c = self.in_channels;
        if self.input_mean.len() != c || self.input_std.len() != c {
            return (None, None);
        }
        let mean = Tensor::<1>::from_data(TensorData::new(self.input_mean.clone(), [c]), device);
        let inv: Vec<f32> = self.input_std.iter().map(|s| 1.0 / s.max(1e-6)).collect();
        let inv = Tensor::<1>::from_data(TensorData::new(inv, [c]), device);
        (Some(mean.reshape([1, c, 1, 1])), Some(inv.reshape([1, c, 1, 1])))
    }
}

/// `(x − shift) · scale` when both are set.
fn normalise(frames: Tensor<4>, shift: &Option<Tensor<4>>, scale: &Option<Tensor<4>>) -> Tensor<4> {
    match (shift, scale) {
        (Some(shift), Some(scale)) => (frames - shift.clone()) * scale.clone(),
        _ => frames,
    }
}

/// The perception encoder: frames `[batch, c, h, w]` in `0..=1` → latents `[batch, latent]`.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one encoder per model: the size does not matter
pub enum Encoder {
    Conv(ConvEncoder),
    Vit(VitEncoder),
}

impl Encoder {
    pub fn forward(&self, frames: Tensor<4>) -> Tensor<2> {
        match self {
            Encoder::Conv(e) => e.forward(frames),
            Encoder::Vit(e) => e.forward(frames),
        }
    }

    /// The conv head on a feature map `[batch, c, s, s]` → `[batch, latent]`. A ViT has no
    /// feature map ([`JepaConfig::validate`](crate::world_model::jepa::JepaConfig::validate)
    /// refuses a spatial state for it).
    pub fn readout(&self, map: Tensor<4>) -> Tensor<2> {
        match self {
            Encoder::Conv(e) => e.readout(map),
            Encoder::Vit(_) => unreachable!("a ViT encoder has no spatial read-out"),
        }
    }

    /// Latents and, for a conv encoder with a spatial state, that state `[batch, c, s, s]`
    /// (the latent is read out of it), from one pass.
    pub fn forward_with_map(&self, frames: Tensor<4>) -> (Tensor<2>, Option<Tensor<4>>) {
        match self {
            Encoder::Conv(e) if e.has_spatial_state() => {
                let map = e.feature_map(frames);
                (e.readout(map.clone()), Some(map))
            }
            _ => (self.forward(frames), None),
        }
    }

    pub fn latent(&self) -> usize {
        match self {
            Encoder::Conv(e) => e.latent(),
            Encoder::Vit(e) => e.latent(),
        }
    }
}

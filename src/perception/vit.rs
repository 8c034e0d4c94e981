//! A small ViT encoder over patch tokens.

use super::{normalise, EncoderConfig};
use burn::module::Param;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

/// ViT: frames `[batch, c, h, w]` → patch tokens `[batch, n, width]` → latent `[batch, latent]`
/// (a linear map of the mean token).
#[derive(Module, Debug)]
pub struct VitEncoder {
    /// Patch pixels → token, one matmul over all patches.
    embed: Linear,
    /// Learned position embedding, `[1, tokens, width]`.
    pos: Param<Tensor<3>>,
    blocks: TransformerEncoder,
    norm: LayerNorm,
    head: Linear,
    patch: usize,
    latent: usize,
    shift: Option<Tensor<4>>,
    scale: Option<Tensor<4>>,
}

impl VitEncoder {
    pub fn new(cfg: &EncoderConfig, device: &Device) -> VitEncoder {
        let (shift, scale) = cfg.normalisation(device);
        let p = cfg.patch;
        let pos = Tensor::<3>::random(
            [1, cfg.tokens(), cfg.width],
            burn::tensor::Distribution::Normal(0.0, 0.02),
            device,
        );
        VitEncoder {
            embed: LinearConfig::new(cfg.in_channels * p * p, cfg.width).init(device),
            pos: Param::from_tensor(pos),
            blocks: TransformerEncoderConfig::new(cfg.width, 4 * cfg.width, cfg.heads, cfg.depth)
                .with_dropout(0.0)
                .with_norm_first(true)
                .init(device),
            norm: LayerNormConfig::new(cfg.width).init(device),
            head: LinearConfig::new(cfg.width, cfg.latent).init(device),
            patch: p,
            latent: cfg.latent,
            shift,
            scale,
        }
    }

    /// Frames → `(latent [batch, latent], patch tokens [batch, n, width])`.
    pub fn forward_tokens(&self, frames: Tensor<4>) -> (Tensor<2>, Tensor<3>) {
        let x = normalise(frames, &self.shift, &self.scale);
        let [b, c, h, w] = x.dims();
        let p = self.patch;
        let (gh, gw) = (h / p, w / p);
        // Crop to whole patches, then [b, c, gh, p, gw, p] → [b, gh, gw, c, p, p] → rows of patches.
        let patches = x
            .slice([0..b, 0..c, 0..gh * p, 0..gw * p])
            .reshape([b, c, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, gh * gw, c * p * p]);
        let tokens = self.embed.forward(patches) + self.pos.val();
        let tokens = self
            .norm
            .forward(self.blocks.forward(TransformerEncoderInput::new(tokens)));
        let width = tokens.dims()[2];
        let pooled = tokens.clone().mean_dim(1).reshape([b, width]);
        (self.head.forward(pooled), tokens)
    }

    pub fn forward(&self, frames: Tensor<4>) -> Tensor<2> {
        self.forward_tokens(frames).0
    }

    pub fn latent(&self) -> usize {
        self.latent
    }
}

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

/// The 2D sine-cosine position embedding of a `grid × grid` patch grid, `width` values per
/// patch (row-major): half the channels encode the row, half the column, each as sines and
/// cosines at frequencies `1 / 10000^(i / (width/4))`.
pub fn sincos_2d(grid: usize, width: usize) -> Vec<f32> {
    let quarter = (width / 4).max(1);
    let mut out = vec![0.0f32; grid * grid * width];
    for r in 0..grid {
        for c in 0..grid {
            let row = &mut out[(r * grid + c) * width..(r * grid + c + 1) * width];
            for (half, v) in [(0, r as f32), (1, c as f32)] {
                for i in 0..quarter {
                    let freq = 1.0 / 10000f32.powf(i as f32 / quarter as f32);
                    let base = half * 2 * quarter;
                    if base + i < width {
                        row[base + i] = (v * freq).sin();
                    }
                    if base + quarter + i < width {
                        row[base + quarter + i] = (v * freq).cos();
                    }
                }
            }
        }
    }
    out
}

impl VitEncoder {
    pub fn new(cfg: &EncoderConfig, device: &Device) -> VitEncoder {
        let (shift, scale) = cfg.normalisation(device);
        let p = cfg.patch;
        // Positions start as I-JEPA's and MAE's fixed 2D sine-cosine embedding (then learn): a
        // random start of small norm leaves the tokens nearly blind to where they are.
        let grid = cfg.resolution / p;
        let pos = Tensor::<3>::from_data(
            TensorData::new(sincos_2d(grid, cfg.width), [1, grid * grid, cfg.width]),
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

    /// Frames normalised per channel as the encoder sees them (MAE reconstructs these).
    pub fn normalise(&self, frames: Tensor<4>) -> Tensor<4> {
        normalise(frames, &self.shift, &self.scale)
    }

    /// Normalised frames cut into rows of patch pixels: `[batch, n, c·p·p]`, patches in
    /// row-major order (what the embedding reads).
    pub fn patchify(&self, frames: Tensor<4>) -> Tensor<3> {
        let x = self.normalise(frames);
        let [b, c, h, w] = x.dims();
        let p = self.patch;
        let (gh, gw) = (h / p, w / p);
        // Crop to whole patches, then [b, c, gh, p, gw, p] → [b, gh, gw, c, p, p] → rows of patches.
        x.slice([0..b, 0..c, 0..gh * p, 0..gw * p])
            .reshape([b, c, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, gh * gw, c * p * p])
    }

    /// Patch embeddings with their positions, before the transformer: `[batch, n, width]`.
    pub fn embed(&self, frames: Tensor<4>) -> Tensor<3> {
        self.embed.forward(self.patchify(frames)) + self.pos.val()
    }

    /// The transformer and final norm over any set of embedded tokens `[batch, k, width]` (all
    /// of a frame's, or only the visible ones of a masked frame, or a clip's).
    pub fn encode_tokens(&self, tokens: Tensor<3>) -> Tensor<3> {
        self.norm
            .forward(self.blocks.forward(TransformerEncoderInput::new(tokens)))
    }

    /// The latent of a set of encoded tokens: a linear map of their mean, `[batch, latent]`.
    pub fn pool(&self, tokens: Tensor<3>) -> Tensor<2> {
        let [b, _, width] = tokens.dims();
        self.head.forward(tokens.mean_dim(1).reshape([b, width]))
    }

    /// The encoded tokens averaged over a `cells × cells` grid of regions and laid side by side:
    /// `[batch, cells² · width]`, a readout that keeps where things are (the latent's mean over
    /// all tokens does not have to).
    pub fn grid_features(&self, frames: Tensor<4>, cells: usize) -> Tensor<2> {
        let tokens = self.encode_tokens(self.embed(frames));
        let [b, n, w] = tokens.dims();
        let g = (n as f64).sqrt() as usize;
        let cells = cells.clamp(1, g);
        let r = g / cells;
        tokens
            .reshape([b, g, g, w])
            .slice([0..b, 0..cells * r, 0..cells * r, 0..w])
            .reshape([b, cells, r, cells, r, w])
            .mean_dim(4)
            .mean_dim(2)
            .reshape([b, cells * cells * w])
    }

    /// Token width.
    pub fn width(&self) -> usize {
        self.pos.val().dims()[2]
    }

    /// Patch tokens per frame.
    pub fn tokens(&self) -> usize {
        self.pos.val().dims()[1]
    }

    /// Frames → `(latent [batch, latent], patch tokens [batch, n, width])`.
    pub fn forward_tokens(&self, frames: Tensor<4>) -> (Tensor<2>, Tensor<3>) {
        let tokens = self.encode_tokens(self.embed(frames));
        (self.pool(tokens.clone()), tokens)
    }

    pub fn forward(&self, frames: Tensor<4>) -> Tensor<2> {
        self.forward_tokens(frames).0
    }

    pub fn latent(&self) -> usize {
        self.latent
    }
}

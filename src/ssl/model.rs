//! The pretraining objectives and the heads each one trains beside the shared ViT encoder.
//!
//! | objective | views | what is predicted / compared | against collapse |
//! |---|---|---|---|
//! | `ijepa` | one frame, multi-block masks | target encoder's (layer-normed) patch tokens of 4 blocks, from the context block, by a narrow predictor (smooth L1) | EMA target, predictor |
//! | `vjepa` | a clip, tube masks | the same over the clip's tokens (L1) | EMA target, predictor |
//! | `mcjepa` | two frames | flow between them (photometric warping) + VICReg content on two augmented views | VICReg |
//! | `simclr` | two augmented views | NT-Xent of projections | negatives |
//! | `byol` | two augmented views | target projection from online prediction | EMA target, predictor |
//! | `mae` | one frame, 75 % patches hidden | pixels of the hidden patches | — (generative) |
//! | `vicreg` | two augmented views | invariance of projections | variance + covariance |
//! | `sigreg` | two augmented views | invariance of projections, LeJEPA's `(1 − λ)·inv + λ·SIGReg` | SIGReg (isotropic Gaussian) |
//! | `energy` | two consecutive frames | an energy head, low on observed pairs, high on mismatched | contrast + magnitude regulariser |
//!
//! Every objective trains the same [`VitEncoder`]; its latent (a linear map of the mean token)
//! is what the probes and the downstream world model read.

use super::augment::augment;
use super::losses;
use super::masks::{self, MaskConfig};
use crate::perception::{EncoderConfig, EncoderKind, VitEncoder};
use burn::module::Param;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::Int;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A masked-prediction loss: predicted tokens, target tokens, and per sample the target
/// blocks' token indices (`losses::ijepa`, `losses::vjepa`).
type TokenLoss = fn(Tensor<3>, Tensor<3>, &[Vec<Vec<usize>>]) -> Tensor<1>;

/// A pretraining objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    IJepa,
    VJepa,
    McJepa,
    SimClr,
    Byol,
    Mae,
    VicReg,
    SigReg,
    Energy,
    /// No pretraining: the encoder as initialised (the baseline every objective must beat).
    Random,
}

impl Objective {
    pub const ALL: [Objective; 10] = [
        Objective::IJepa,
        Objective::VJepa,
        Objective::McJepa,
        Objective::SimClr,
        Objective::Byol,
        Objective::Mae,
        Objective::VicReg,
        Objective::SigReg,
        Objective::Energy,
        Objective::Random,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Objective::IJepa => "ijepa",
            Objective::VJepa => "vjepa",
            Objective::McJepa => "mcjepa",
            Objective::SimClr => "simclr",
            Objective::Byol => "byol",
            Objective::Mae => "mae",
            Objective::VicReg => "vicreg",
            Objective::SigReg => "sigreg",
            Objective::Energy => "energy",
            Objective::Random => "random",
        }
    }

    /// Parses a name as written by [`Objective::name`], listing the valid ones otherwise.
    pub fn parse(s: &str) -> Result<Objective, String> {
        Objective::ALL
            .into_iter()
            .find(|o| o.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "unknown objective {s:?}: expected one of {}",
                    Objective::ALL.map(|o| o.name()).join(", ")
                )
            })
    }

    /// Whether it keeps an EMA copy of the encoder.
    pub fn has_target(self) -> bool {
        matches!(self, Objective::IJepa | Objective::VJepa | Objective::Byol)
    }

    /// Frames per training item: a clip for V-JEPA, a pair for the flow and energy objectives.
    pub fn frames(self, cfg: &SslConfig) -> usize {
        match self {
            Objective::VJepa => cfg.clip_frames,
            Objective::McJepa | Objective::Energy => 2,
            _ => 1,
        }
    }
}

/// Settings of a pretraining run (each objective reads its own entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SslConfig {
    pub objective: Objective,
    /// The encoder every objective trains (a ViT: the masking objectives need tokens).
    pub encoder: EncoderConfig,
    pub batch: usize,
    pub lr: f64,
    pub min_lr: f64,
    /// Share of the steps spent warming the learning rate up.
    pub warmup_share: f64,
    pub weight_decay: f32,
    pub clip: f32,
    pub seed: u64,
    /// EMA momentum of the target networks at the start; it rises to 1 on a cosine.
    pub ema_momentum: f64,
    /// I-JEPA / V-JEPA masks.
    pub masks: MaskConfig,
    /// V-JEPA: frames per clip.
    pub clip_frames: usize,
    /// Predictor (I-JEPA, V-JEPA) and MAE decoder: width, blocks, heads.
    pub predictor_width: usize,
    pub predictor_depth: usize,
    pub predictor_heads: usize,
    /// MAE: share of the patches hidden from the encoder.
    pub mae_ratio: f32,
    /// Projection heads (SimCLR, BYOL, VICReg, SIGReg, MC-JEPA content): hidden and output width.
    pub proj_hidden: usize,
    pub proj_dim: usize,
    /// SimCLR's NT-Xent temperature.
    pub temperature: f32,
    /// VICReg's invariance, variance and covariance weights (the paper's 25, 25, 1).
    pub vicreg: (f32, f32, f32),
    /// LeJEPA's λ: the loss is `λ·SIGReg + (1 − λ)·invariance`; and SIGReg's random slices
    /// (fresh every step).
    pub sigreg_lambda: f32,
    pub sigreg_directions: usize,
    /// MAE: normalise each target patch by its own mean and std (MAE's `norm_pix_loss`).
    pub mae_norm_pix: bool,
    /// MC-JEPA: frames are warped in grey at 1/`flow_downsample` of their side; the flow head's
    /// largest displacement in those pixels (a window of (2r+1)² shifts), the flow smoothness
    /// weight and the flow loss's weight against the content term.
    pub flow_downsample: usize,
    pub flow_radius: usize,
    pub flow_smoothness: f32,
    pub flow_weight: f32,
    /// Energy head: hidden width and the magnitude regulariser's weight.
    pub energy_hidden: usize,
    pub energy_magnitude: f32,
}

impl SslConfig {
    /// The defaults for `objective` on frames of `resolution` pixels: a ViT of 8×8-pixel patches,
    /// width 64, 2 blocks, latent 64.
    pub fn new(objective: Objective, resolution: usize) -> SslConfig {
        SslConfig {
            objective,
            encoder: EncoderConfig::new()
                .with_kind(EncoderKind::Vit)
                .with_resolution(resolution)
                .with_patch(8)
                .with_width(64)
                .with_depth(2)
                .with_heads(4)
                .with_latent(64),
            batch: 64,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_share: 0.1,
            weight_decay: 0.04,
            clip: 1.0,
            seed: 0,
            ema_momentum: 0.996,
            masks: MaskConfig::default(),
            clip_frames: 2,
            predictor_width: 32,
            predictor_depth: 2,
            predictor_heads: 2,
            mae_ratio: 0.75,
            proj_hidden: 256,
            proj_dim: 64,
            temperature: 0.1,
            vicreg: (25.0, 25.0, 1.0),
            sigreg_lambda: 0.05,
            sigreg_directions: 256,
            mae_norm_pix: false,
            flow_downsample: 2,
            flow_radius: 2,
            flow_smoothness: 0.1,
            flow_weight: 1.0,
            energy_hidden: 128,
            energy_magnitude: 1.0,
        }
    }

    /// Tiny settings for tests.
    pub fn tiny(objective: Objective, resolution: usize) -> SslConfig {
        SslConfig {
            encoder: EncoderConfig::tiny_vit(resolution, 8),
            batch: 4,
            predictor_width: 8,
            predictor_depth: 1,
            predictor_heads: 2,
            proj_hidden: 16,
            proj_dim: 8,
            energy_hidden: 8,
            sigreg_directions: 8,
            flow_radius: 1,
            flow_downsample: 1,
            ..SslConfig::new(objective, resolution)
        }
    }

    /// Settings that cannot work, named by their keys.
    pub fn validate(&self) -> Result<(), String> {
        if self.encoder.kind != EncoderKind::Vit {
            return Err("ssl.encoder.kind must be Vit: the masking objectives work on patch tokens".into());
        }
        self.encoder.validate()?;
        self.masks.validate()?;
        crate::require_counts(
            "ssl",
            &[
                ("batch", self.batch),
                ("predictor_width", self.predictor_width),
                ("predictor_depth", self.predictor_depth),
                ("predictor_heads", self.predictor_heads),
                ("proj_hidden", self.proj_hidden),
                ("proj_dim", self.proj_dim),
                ("sigreg_directions", self.sigreg_directions),
                ("energy_hidden", self.energy_hidden),
            ],
        )?;
        if self.batch < 2 {
            return Err(format!(
                "ssl.batch = {} must be ≥ 2 (the objectives compare samples)",
                self.batch
            ));
        }
        if self.clip_frames < 2 {
            return Err(format!("ssl.clip_frames = {} must be ≥ 2", self.clip_frames));
        }
        if !self.predictor_width.is_multiple_of(self.predictor_heads) {
            return Err(format!(
                "ssl.predictor_width = {} must be a multiple of ssl.predictor_heads = {}",
                self.predictor_width, self.predictor_heads
            ));
        }
        if self.flow_downsample == 0 || !self.encoder.patch.is_multiple_of(self.flow_downsample) {
            return Err(format!(
                "ssl.flow_downsample = {} must divide the patch side {}",
                self.flow_downsample, self.encoder.patch
            ));
        }
        if !(self.mae_ratio > 0.0 && self.mae_ratio < 1.0) {
            return Err(format!("ssl.mae_ratio = {} must be in (0, 1)", self.mae_ratio));
        }
        if !(0.0..=1.0).contains(&self.sigreg_lambda) {
            return Err(format!("ssl.sigreg_lambda = {} must be in [0, 1]", self.sigreg_lambda));
        }
        if !(0.0..1.0).contains(&self.ema_momentum) {
            return Err(format!("ssl.ema_momentum = {} must be in [0, 1)", self.ema_momentum));
        }
        crate::require_positive(
            "ssl",
            &[
                ("temperature", self.temperature),
                ("lr", self.lr as f32),
                ("energy_magnitude", self.energy_magnitude),
            ],
        )?;
        Ok(())
    }

    fn grid(&self) -> usize {
        self.encoder.resolution / self.encoder.patch
    }

    /// Builds the encoder and the heads this objective trains.
    pub fn init(&self, device: &Device) -> SslModel {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let w = self.encoder.width;
        let n = self.encoder.tokens();
        let obj = self.objective;
        // Projection heads and BYOL's predictor with batch norm on the hidden layer, as in the
        // official SimCLR, BYOL, VICReg and LeJEPA heads.
        let mlp = |i: usize, o: usize| Mlp::with_batch_norm(i, self.proj_hidden, o, device);
        let predictor = |tokens: usize, out: usize| TokenPredictor::new(self, w, tokens, out, device);
        let c = self.encoder.in_channels;
        let p = self.encoder.patch;
        let model = SslModel {
            encoder: VitEncoder::new(&self.encoder, device),
            target: obj.has_target().then(|| VitEncoder::new(&self.encoder, device)),
            predictor: match obj {
                Objective::IJepa => Some(predictor(n, w)),
                Objective::VJepa => Some(predictor(n * self.clip_frames, w)),
                Objective::Mae => Some(predictor(n, c * p * p)),
                _ => None,
            },
            projector: matches!(
                obj,
                Objective::SimClr | Objective::Byol | Objective::VicReg | Objective::SigReg | Objective::McJepa
            )
            .then(|| mlp(self.encoder.latent, self.proj_dim)),
            target_projector: (obj == Objective::Byol).then(|| mlp(self.encoder.latent, self.proj_dim)),
            byol_predictor: (obj == Objective::Byol).then(|| mlp(self.proj_dim, self.proj_dim)),
            flow: (obj == Objective::McJepa)
                .then(|| LinearConfig::new(2 * w, (2 * self.flow_radius + 1).pow(2)).init(device)),
            energy: (obj == Objective::Energy)
                .then(|| Mlp::new(2 * self.encoder.latent, self.energy_hidden, 1, device)),
            time: (obj == Objective::VJepa).then(|| {
                Param::from_tensor(Tensor::<3>::random(
                    [1, self.clip_frames - 1, w],
                    burn::tensor::Distribution::Normal(0.0, 0.02),
                    device,
                ))
            }),
        };
        // EMA targets start as copies of their online networks (I-JEPA `copy.deepcopy`, BYOL),
        // with parameters of their own.
        use crate::world_model::jepa::ema_update;
        SslModel {
            target: model.target.map(|t| ema_update(t, &model.encoder, 0.0)),
            target_projector: match (model.target_projector, &model.projector) {
                (Some(t), Some(online)) => Some(ema_update(t, online, 0.0)),
                (t, _) => t,
            },
            ..model
        }
    }
}

/// `Linear → ReLU → Linear`, or `Linear → BatchNorm → ReLU → Linear`.
#[derive(Module, Debug)]
pub struct Mlp {
    a: Linear,
    norm: Option<BatchNorm>,
    b: Linear,
}

impl Mlp {
    pub fn new(input: usize, hidden: usize, output: usize, device: &Device) -> Mlp {
        Mlp {
            a: LinearConfig::new(input, hidden).init(device),
            norm: None,
            b: LinearConfig::new(hidden, output).init(device),
        }
    }

    /// With batch norm on the hidden layer.
    pub fn with_batch_norm(input: usize, hidden: usize, output: usize, device: &Device) -> Mlp {
        Mlp {
            norm: Some(BatchNorm::new(hidden, device)),
            ..Mlp::new(input, hidden, output, device)
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self.a.forward(x);
        let h = match &self.norm {
            Some(n) => n.forward(h),
            None => h,
        };
        self.b.forward(relu(h))
    }
}

/// Batch norm of `[n, d]` rows with the batch's own statistics (mean and biased variance over
/// the rows, ε 1e-5) and a learned scale and shift per dimension: PyTorch's `BatchNorm1d` in
/// training mode. The heads that carry it are used in training only (the probes and the world
/// model read the encoder), so no running statistics are kept; BYOL's EMA target runs it on
/// its own batch as the official code does.
#[derive(Module, Debug)]
pub struct BatchNorm {
    gamma: Param<Tensor<1>>,
    beta: Param<Tensor<1>>,
}

impl BatchNorm {
    pub fn new(d: usize, device: &Device) -> BatchNorm {
        BatchNorm {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        batch_norm(x, self.gamma.val(), self.beta.val())
    }
}

/// [`BatchNorm`] as a function of rows `x` `[n, d]`, scale `gamma` and shift `beta` `[d]`
/// (checked against PyTorch's `F.batch_norm(training=True)` in the parity tests).
pub fn batch_norm(x: Tensor<2>, gamma: Tensor<1>, beta: Tensor<1>) -> Tensor<2> {
    let [_, d] = x.dims();
    let mean = x.clone().mean_dim(0);
    let centred = x - mean;
    let var = centred.clone().square().mean_dim(0);
    centred / (var + 1e-5).sqrt() * gamma.reshape([1, d]) + beta.reshape([1, d])
}

/// A narrow transformer that reads encoded context tokens and answers at query positions:
/// I-JEPA's predictor (queries are target-block positions, answers are target tokens) and
/// MAE's decoder (queries are every patch, answers are pixels).
#[derive(Module, Debug)]
pub struct TokenPredictor {
    input: Linear,
    /// The learned mask token every query starts from, `[1, 1, width]`.
    mask: Param<Tensor<3>>,
    /// Position embeddings of every token position, `[1, positions, width]`.
    pos: Param<Tensor<3>>,
    blocks: TransformerEncoder,
    norm: LayerNorm,
    output: Linear,
}

impl TokenPredictor {
    fn new(cfg: &SslConfig, input: usize, positions: usize, output: usize, device: &Device) -> TokenPredictor {
        let pw = cfg.predictor_width;
        let normal = |shape: [usize; 3]| {
            Param::from_tensor(Tensor::<3>::random(
                shape,
                burn::tensor::Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        TokenPredictor {
            input: LinearConfig::new(input, pw).init(device),
            mask: normal([1, 1, pw]),
            pos: normal([1, positions, pw]),
            blocks: TransformerEncoderConfig::new(pw, 4 * pw, cfg.predictor_heads, cfg.predictor_depth)
                .with_dropout(0.0)
                .with_norm_first(true)
                .init(device),
            norm: LayerNormConfig::new(pw).init(device),
            output: LinearConfig::new(pw, output).init(device),
        }
    }

    /// Context tokens `[b, k, width]` at positions `context` (per row), queries at `queries`
    /// (per row, equal lengths) → answers `[b, queries, output]`.
    pub fn forward(&self, context: Tensor<3>, context_at: &[Vec<usize>], queries: &[Vec<usize>]) -> Tensor<3> {
        let [b, k, _] = context.dims();
        let q = queries[0].len();
        let pw = self.pos.val().dims()[2];
        let pos = self.pos.val().repeat_dim(0, b);
        let x = self.input.forward(context) + gather_tokens(pos.clone(), context_at);
        let queries = self.mask.val().repeat_dim(0, b).repeat_dim(1, q) + gather_tokens(pos, queries);
        let all = Tensor::cat(vec![x, queries], 1);
        let out = self
            .norm
            .forward(self.blocks.forward(TransformerEncoderInput::new(all)));
        self.output.forward(out.slice([0..b, k..k + q, 0..pw]))
    }
}

/// Rows `idx[i]` of each `x[i]` (`[b, n, w]` → `[b, k, w]`, every `idx[i]` of length `k`).
pub fn gather_tokens(x: Tensor<3>, idx: &[Vec<usize>]) -> Tensor<3> {
    let [b, _, w] = x.dims();
    let k = idx[0].len();
    assert_eq!(idx.len(), b, "one index list per row");
    let flat: Vec<i64> = idx
        .iter()
        .flat_map(|row| {
            assert_eq!(row.len(), k, "index lists of equal length");
            row.iter().flat_map(move |&i| std::iter::repeat_n(i as i64, w))
        })
        .collect();
    let index = Tensor::<3, Int>::from_data(TensorData::new(flat, [b, k, w]), &x.device());
    x.gather(1, index)
}

/// The encoder and the heads of one objective.
#[derive(Module, Debug)]
pub struct SslModel {
    pub encoder: VitEncoder,
    /// The EMA target encoder (I-JEPA, V-JEPA, BYOL).
    pub target: Option<VitEncoder>,
    /// I-JEPA / V-JEPA predictor, MAE decoder.
    pub predictor: Option<TokenPredictor>,
    /// Projection head (SimCLR, BYOL, VICReg, SIGReg, MC-JEPA's content term).
    pub projector: Option<Mlp>,
    pub target_projector: Option<Mlp>,
    pub byol_predictor: Option<Mlp>,
    /// MC-JEPA: patch tokens of two frames → softmax over the (2r+1)² shifts of each patch.
    pub flow: Option<Linear>,
    /// The energy head `E(s_x, s_y)`.
    pub energy: Option<Mlp>,
    /// V-JEPA: learned offsets of frames 1.. of a clip, `[1, frames − 1, width]` (frame 0 has
    /// none, so a single frame is encoded exactly as in training).
    pub time: Option<Param<Tensor<3>>>,
}

/// One batch's loss terms: `(name, value)`, the weighted total first.
pub type Terms = Vec<(&'static str, f32)>;

/// Runs `f` (a target network, never trained by gradients) outside autodiff and brings the
/// result back onto the graph's device kind as a constant.
fn no_grad<const D: usize, const E: usize>(x: Tensor<D>, f: impl FnOnce(Tensor<D>) -> Tensor<E>) -> Tensor<E> {
    let ad = x.is_autodiff();
    let out = f(x.without_autodiff());
    if ad {
        out.autodiff()
    } else {
        out
    }
}

impl SslModel {
    /// The latent of frames `[b, c, h, w]`: what the probes and the world model read.
    pub fn encode(&self, frames: Tensor<4>) -> Tensor<2> {
        self.encoder.forward(frames)
    }

    /// The loss of a batch of clips `[b, f, c, h, w]` (`f` = [`Objective::frames`]) and every
    /// term's value. `rng` draws the masks and augmentations.
    pub fn loss(&self, cfg: &SslConfig, clips: Tensor<5>, rng: &mut impl Rng) -> (Tensor<1>, Terms) {
        let [b, f, c, h, w] = clips.dims();
        let frame = |i: usize| {
            clips
                .clone()
                .slice([0..b, i..i + 1, 0..c, 0..h, 0..w])
                .reshape([b, c, h, w])
        };
        let v = |x: &Tensor<1>| x.clone().into_scalar::<f32>();
        match cfg.objective {
            Objective::Random => {
                // Nothing to learn: a zero that keeps the graph (so a step is a no-op).
                let l = self.encoder.forward(frame(0)).sum() * 0.0;
                (l.clone(), vec![("total", v(&l))])
            }
            Objective::IJepa => {
                let x = frame(0);
                let g = cfg.grid();
                let draws: Vec<masks::Masks> = (0..b).map(|_| masks::sample(&cfg.masks, g, g, rng)).collect();
                let targets = self.target_tokens(x.clone(), |t, x| t.embed(x));
                let l = self.jepa_loss(self.encoder.embed(x), &draws, targets, losses::ijepa);
                let terms = vec![("total", v(&l)), ("prediction", v(&l))];
                (l, terms)
            }
            Objective::VJepa => {
                let g = cfg.grid();
                let draws: Vec<masks::Masks> = (0..b).map(|_| masks::sample_tubes(&cfg.masks, f, g, g, rng)).collect();
                let time = self.time.as_ref().expect("V-JEPA has time offsets").val();
                let embed_clip = move |enc: &VitEncoder, clips: Tensor<5>, time: Tensor<3>| {
                    let [b, f, c, h, w] = clips.dims();
                    let tokens = enc.embed(clips.reshape([b * f, c, h, w]));
                    let [_, n, width] = tokens.dims();
                    let offsets = Tensor::cat(vec![Tensor::zeros([1, 1, width], &time.device()), time], 1)
                        .reshape([1, f, 1, width]);
                    (tokens.reshape([b, f, n, width]) + offsets).reshape([b, f * n, width])
                };
                let frozen_time = time.clone().without_autodiff().detach();
                let targets = self.target_tokens(clips.clone(), |t, x| embed_clip(t, x, frozen_time));
                let l = self.jepa_loss(embed_clip(&self.encoder, clips, time), &draws, targets, losses::vjepa);
                let terms = vec![("total", v(&l)), ("prediction", v(&l))];
                (l, terms)
            }
            Objective::Mae => {
                let x = frame(0);
                let emb = self.encoder.embed(x.clone());
                let [_, n, _] = emb.dims();
                let keep = ((n as f32) * (1.0 - cfg.mae_ratio)).round().max(1.0) as usize;
                let mut visible = Vec::with_capacity(b);
                let mut mask = Vec::with_capacity(b * n);
                for _ in 0..b {
                    let mut order: Vec<usize> = (0..n).collect();
                    order.shuffle(rng);
                    let mut vis = order[..keep].to_vec();
                    vis.sort_unstable();
                    let mut hidden = vec![1.0f32; n];
                    for &i in &vis {
                        hidden[i] = 0.0;
                    }
                    mask.extend(hidden);
                    visible.push(vis);
                }
                let enc = self.encoder.encode_tokens(gather_tokens(emb, &visible));
                let all: Vec<Vec<usize>> = (0..b).map(|_| (0..n).collect()).collect();
                let pred = self
                    .predictor
                    .as_ref()
                    .expect("MAE has a decoder")
                    .forward(enc, &visible, &all);
                let target = losses::patchify(self.encoder.normalise(x), cfg.encoder.patch).detach();
                let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, n]), &pred.device());
                let l = losses::mae(pred, target, mask, cfg.mae_norm_pix);
                let terms = vec![("total", v(&l)), ("reconstruction", v(&l))];
                (l, terms)
            }
            Objective::SimClr | Objective::Byol | Objective::VicReg | Objective::SigReg => {
                let x = frame(0);
                let v1 = augment(x.clone(), rng);
                let v2 = augment(x, rng);
                let proj = self.projector.as_ref().expect("a projection head");
                let e1 = proj.forward(self.encoder.forward(v1.clone()));
                let e2 = proj.forward(self.encoder.forward(v2.clone()));
                match cfg.objective {
                    Objective::SimClr => {
                        let l = losses::nt_xent(e1, e2, cfg.temperature);
                        let terms = vec![("total", v(&l)), ("nt_xent", v(&l))];
                        (l, terms)
                    }
                    Objective::Byol => {
                        let pred = self.byol_predictor.as_ref().expect("BYOL's predictor");
                        let (p1, p2) = (pred.forward(e1), pred.forward(e2));
                        let target = self.target.as_ref().expect("BYOL's target").valid();
                        let tproj = self.target_projector.as_ref().expect("BYOL's target projector").valid();
                        let t = |x: Tensor<4>| no_grad(x, |x| tproj.forward(target.forward(x)));
                        let (z1, z2) = (t(v1), t(v2));
                        let l = losses::byol(p1, z2) + losses::byol(p2, z1);
                        let terms = vec![("total", v(&l)), ("regression", v(&l))];
                        (l, terms)
                    }
                    Objective::VicReg => {
                        let [l, inv, var, cov] = losses::vicreg(e1, e2, cfg.vicreg);
                        let terms = vec![
                            ("total", v(&l)),
                            ("invariance", v(&inv)),
                            ("variance", v(&var)),
                            ("covariance", v(&cov)),
                        ];
                        (l, terms)
                    }
                    _ => {
                        let dirs = random_directions(cfg.proj_dim, cfg.sigreg_directions, rng, &e1.device());
                        let views = Tensor::stack(vec![e1, e2], 0);
                        let [l, inv, sig] = losses::lejepa(views, dirs, cfg.sigreg_lambda);
                        let terms = vec![("total", v(&l)), ("invariance", v(&inv)), ("sigreg", v(&sig))];
                        (l, terms)
                    }
                }
            }
            Objective::McJepa => {
                let (x0, x1) = (frame(0), frame(1));
                // Content: VICReg between two augmented views of the first frame.
                let proj = self.projector.as_ref().expect("a projection head");
                let e1 = proj.forward(self.encoder.forward(augment(x0.clone(), rng)));
                let e2 = proj.forward(self.encoder.forward(augment(x0.clone(), rng)));
                let [content, ..] = losses::vicreg(e1, e2, cfg.vicreg);
                // Motion: flow from the patch tokens of both frames, judged by warping.
                let t0 = self.encoder.encode_tokens(self.encoder.embed(x0.clone()));
                let t1 = self.encoder.encode_tokens(self.encoder.embed(x1.clone()));
                let logits = self
                    .flow
                    .as_ref()
                    .expect("a flow head")
                    .forward(Tensor::cat(vec![t0, t1], 2));
                let weights = softmax(logits, 2); // [b, n, K]
                                                  // Warped at a coarser grey scale: the flow head's window of shifts is paid for at
                                                  // every pixel, and motion shows in brightness alone.
                let f = cfg.flow_downsample;
                let side = cfg.grid() * cfg.encoder.patch;
                let (g0, g1) = (grey_pooled(x0, side, f), grey_pooled(x1, side, f));
                let (photo, smooth) = flow_losses(weights, g0, g1, cfg.encoder.patch / f, cfg.flow_radius);
                let flow = photo.clone() + smooth.clone() * cfg.flow_smoothness;
                let l = content.clone() + flow * cfg.flow_weight;
                let terms = vec![
                    ("total", v(&l)),
                    ("content", v(&content)),
                    ("photometric", v(&photo)),
                    ("flow_smoothness", v(&smooth)),
                ];
                (l, terms)
            }
            Objective::Energy => {
                let (x0, x1) = (frame(0), frame(1));
                let s0 = self.encoder.forward(x0);
                let s1 = self.encoder.forward(x1);
                let head = self.energy.as_ref().expect("an energy head");
                let (pos, neg) = pair_energies(head, s0, s1);
                let (l, gap, magnitude) = contrastive_energy_loss(pos, neg, cfg.energy_magnitude);
                let terms = vec![("total", v(&l)), ("gap", v(&gap)), ("magnitude", v(&magnitude))];
                (l, terms)
            }
        }
    }

    /// The target encoder's tokens of `input` (frames or clips, embedded by `embed`), computed
    /// outside autodiff: what I-JEPA and V-JEPA predict, once layer-normed by the loss.
    fn target_tokens<const D: usize>(
        &self,
        input: Tensor<D>,
        embed: impl FnOnce(&VitEncoder, Tensor<D>) -> Tensor<3>,
    ) -> Tensor<3> {
        let target = self.target.as_ref().expect("an EMA target").valid();
        no_grad(input, |x| target.encode_tokens(embed(&target, x)))
    }

    /// I-JEPA's (and V-JEPA's) loss on embedded tokens `online` `[b, n, w]` (positions
    /// included) with one mask draw per row: the context encoder sees the context tokens, the
    /// predictor answers each target block's positions, and `loss` (`losses::ijepa` or
    /// `losses::vjepa`) compares the answers with the target encoder's tokens `targets` (from
    /// [`Self::target_tokens`]). Lists are cut to the batch's shortest, as I-JEPA's collator does.
    fn jepa_loss(&self, online: Tensor<3>, draws: &[masks::Masks], targets: Tensor<3>, loss: TokenLoss) -> Tensor<1> {
        let nc = draws.iter().map(|m| m.context.len()).min().unwrap_or(0).max(1);
        let nt = draws
            .iter()
            .flat_map(|m| m.targets.iter().map(|t| t.len()))
            .min()
            .unwrap_or(1);
        let blocks = draws[0].targets.len();
        let context: Vec<Vec<usize>> = draws
            .iter()
            .map(|m| m.context[..nc.min(m.context.len())].to_vec())
            .collect();
        let ctx = self.encoder.encode_tokens(gather_tokens(online, &context));
        // Every target block of every row: `at[m][i]` is block m of image i; the predictor's
        // rows are block-major (row `m·b + i`), as I-JEPA's `apply_masks` stacks them.
        let at: Vec<Vec<Vec<usize>>> = (0..blocks)
            .map(|m| draws.iter().map(|d| d.targets[m][..nt].to_vec()).collect())
            .collect();
        let queries: Vec<Vec<usize>> = at.iter().flatten().cloned().collect();
        let ctx_rep = Tensor::cat(vec![ctx; blocks], 0);
        let ctx_at: Vec<Vec<usize>> = (0..blocks).flat_map(|_| context.iter().cloned()).collect();
        let pred = self
            .predictor
            .as_ref()
            .expect("a predictor")
            .forward(ctx_rep, &ctx_at, &queries);
        loss(pred, targets, &at)
    }

    /// EMA step of the target networks at `step` of `steps`.
    pub fn update_targets(mut self, cfg: &SslConfig, step: usize, steps: usize) -> SslModel {
        let m = crate::world_model::jepa::ema_momentum_at(cfg.ema_momentum, step, steps);
        if let Some(t) = self.target.take() {
            self.target = Some(crate::world_model::jepa::ema_update(t, &self.encoder, m));
        }
        if let (Some(t), Some(online)) = (self.target_projector.take(), self.projector.as_ref()) {
            self.target_projector = Some(crate::world_model::jepa::ema_update(t, online, m));
        }
        self
    }

    /// The energy head's `E(s_x[i], s_y[i])` of each row, `[b]` (none without a head).
    pub fn energy_of(&self, sx: Tensor<2>, sy: Tensor<2>) -> Option<Vec<f32>> {
        let head = self.energy.as_ref()?;
        let b = sx.dims()[0];
        Some(crate::values(head.forward(Tensor::cat(vec![sx, sy], 1)).reshape([b])))
    }
}

/// `m` random Gaussian directions in `d` dimensions, `[d, m]`, drawn from `rng` (SIGReg scales
/// each to unit length).
fn random_directions(d: usize, m: usize, rng: &mut impl Rng, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = (0..d * m).map(|_| super::augment::normal(rng)).collect();
    Tensor::<2>::from_data(TensorData::new(v, [d, m]), device)
}

/// The energy head on matched pairs `(s_x[i], s_y[i])` and mismatched ones `(s_x[i], s_y[i+1])`:
/// `[b]` each.
pub fn pair_energies(head: &Mlp, sx: Tensor<2>, sy: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let [b, d] = sy.dims();
    let shifted = Tensor::cat(vec![sy.clone().slice([1..b, 0..d]), sy.clone().slice([0..1, 0..d])], 0);
    let pos = head.forward(Tensor::cat(vec![sx.clone(), sy], 1)).reshape([b]);
    let neg = head.forward(Tensor::cat(vec![sx, shifted], 1)).reshape([b]);
    (pos, neg)
}

/// The contrastive energy loss: `mean E⁺ − mean E⁻ + α·mean(E⁺² + E⁻²)`: observed pairs
/// pushed down, mismatched ones up, the magnitude term keeping both finite. Returns
/// `(loss, gap = mean E⁻ − mean E⁺, magnitude = mean(E⁺² + E⁻²))`.
pub fn contrastive_energy_loss(pos: Tensor<1>, neg: Tensor<1>, alpha: f32) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let gap = neg.clone().mean() - pos.clone().mean();
    let magnitude = (pos.square() + neg.square()).mean();
    (-gap.clone() + magnitude.clone() * alpha, gap, magnitude)
}

/// MC-JEPA's flow terms. `weights` `[b, n, K]` is each patch's distribution over the
/// `K = (2r+1)²` shifts `(dx, dy)` in `−r..=r` (row-major in `dy`, then `dx`); the frame after,
/// shifted by each and mixed with the patch's weights, should give back the frame before
/// (`x0(p) ≈ Σ_k w_k x1(p + d_k)`, edges replicated). Returns `(photometric L1, smoothness)`,
/// smoothness the mean absolute difference of neighbouring patches' expected flows.
pub fn flow_losses(weights: Tensor<3>, x0: Tensor<4>, x1: Tensor<4>, patch: usize, r: usize) -> (Tensor<1>, Tensor<1>) {
    let [b, n, k] = weights.dims();
    let g = (n as f64).sqrt() as usize;
    let side = g * patch;
    let [_, c, _, _] = x0.dims();
    let x0 = x0.slice([0..b, 0..c, 0..side, 0..side]);
    let x1 = x1.slice([0..b, 0..c, 0..side, 0..side]);
    let padded = pad_replicate(x1, r);
    // Each shift's weight at every pixel: the patch's weight, repeated over its pixels.
    let per_pixel = weights
        .clone()
        .reshape([b, g, g, k])
        .permute([0, 3, 1, 2]) // [b, K, g, g]
        .reshape([b, k, g, 1, g, 1])
        .repeat_dim(3, patch)
        .repeat_dim(5, patch)
        .reshape([b, k, side, side]);
    let width = 2 * r + 1;
    let mut warped: Option<Tensor<4>> = None;
    for i in 0..k {
        let (dy, dx) = (i / width, i % width);
        let shifted = padded.clone().slice([0..b, 0..c, dy..dy + side, dx..dx + side]);
        let term = shifted * per_pixel.clone().slice([0..b, i..i + 1, 0..side, 0..side]);
        warped = Some(match warped {
            Some(acc) => acc + term,
            None => term,
        });
    }
    let photo = (warped.expect("at least one shift") - x0).abs().mean();
    // Expected flow per patch, [b, g, g, 2].
    let offsets: Vec<f32> = (0..k)
        .flat_map(|i| [(i % width) as f32 - r as f32, (i / width) as f32 - r as f32])
        .collect();
    let device = weights.device();
    let offsets = Tensor::<2>::from_data(TensorData::new(offsets, [k, 2]), &device);
    let flow = weights.reshape([b * n, k]).matmul(offsets).reshape([b, g, g, 2]);
    let smooth = if g > 1 {
        let dy = flow.clone().slice([0..b, 1..g, 0..g, 0..2]) - flow.clone().slice([0..b, 0..g - 1, 0..g, 0..2]);
        let dx = flow.clone().slice([0..b, 0..g, 1..g, 0..2]) - flow.slice([0..b, 0..g, 0..g - 1, 0..2]);
        (dy.abs().mean() + dx.abs().mean()) / 2.0
    } else {
        Tensor::zeros([1], &device)
    };
    (photo, smooth)
}

/// Frames `[b, c, h, w]` cropped to `side`, averaged over channels and over `f × f` blocks:
/// `[b, 1, side / f, side / f]`.
pub fn grey_pooled(x: Tensor<4>, side: usize, f: usize) -> Tensor<4> {
    let [b, c, _, _] = x.dims();
    let s = side / f;
    x.slice([0..b, 0..c, 0..side, 0..side])
        .mean_dim(1)
        .reshape([b, s, f, s, f])
        .mean_dim(4)
        .mean_dim(2)
        .reshape([b, 1, s, s])
}

/// Pads `[b, c, h, w]` by `r` pixels on every side, repeating the edge pixels.
fn pad_replicate(x: Tensor<4>, r: usize) -> Tensor<4> {
    if r == 0 {
        return x;
    }
    let [b, c, h, w] = x.dims();
    let top = x.clone().slice([0..b, 0..c, 0..1, 0..w]).repeat_dim(2, r);
    let bottom = x.clone().slice([0..b, 0..c, h - 1..h, 0..w]).repeat_dim(2, r);
    let x = Tensor::cat(vec![top, x, bottom], 2);
    let left = x.clone().slice([0..b, 0..c, 0..h + 2 * r, 0..1]).repeat_dim(3, r);
    let right = x.clone().slice([0..b, 0..c, 0..h + 2 * r, w - 1..w]).repeat_dim(3, r);
    Tensor::cat(vec![left, x, right], 3)
}

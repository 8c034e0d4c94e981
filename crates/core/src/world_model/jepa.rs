//! The JEPA world model: perception encoder + level-1 predictor + inverse-dynamics head, and
//! its self-supervised loss (prediction in latent space over an open-loop rollout, with
//! anti-collapse terms).

use super::loss::{
    context_contrast, context_spread, covariance, mse, sigreg, temporal_smoothness, unit_rows, variance,
};
use super::spatial::{SpatialConfig, SpatialPredictor};
use super::{InverseDynamics, InverseDynamicsConfig, Predictor, PredictorConfig};
use crate::perception::{Encoder, EncoderConfig, EncoderKind};
use burn::prelude::*;

/// Weights of the loss terms; a zero weight turns a term off (it is still reported).
#[derive(Config, Debug, PartialEq)]
pub struct LossWeights {
    #[config(default = 1.0)]
    pub prediction: f32,
    #[config(default = 1.0)]
    pub variance: f32,
    #[config(default = 0.04)]
    pub covariance: f32,
    #[config(default = 0.1)]
    pub smoothness: f32,
    #[config(default = 1.0)]
    pub idm: f32,
    /// SIGReg (LeJEPA) on the encoder's latents; 0 = off.
    #[config(default = 0.0)]
    pub sigreg: f32,
    /// Holds the `context_dims` latent dimensions constant over each window (see
    /// [`JepaConfig::context_dims`]); 0 = off.
    #[config(default = 0.0)]
    pub context: f32,
    /// Contrasts the `context_dims` dimensions between windows (InfoNCE, temperature
    /// [`JepaConfig::context_temperature`]); 0 = off.
    #[config(default = 0.0)]
    pub context_contrast: f32,
    /// The spatial predictor's error (maps and their read-out), where there is one.
    #[config(default = 1.0)]
    pub spatial: f32,
    /// VICReg variance of each spatial-state channel over samples and cells, where there is one.
    #[config(default = 1.0)]
    pub spatial_variance: f32,
}

/// Settings of the whole world model.
#[derive(Config, Debug, PartialEq)]
pub struct JepaConfig {
    pub encoder: EncoderConfig,
    #[config(default = 256)]
    pub predictor_hidden: usize,
    #[config(default = 128)]
    pub idm_hidden: usize,
    /// Stop the gradient through the targets (the encoder's latents of the next frames).
    #[config(default = true)]
    pub stop_grad_target: bool,
    /// Targets from an EMA copy of the encoder (I-JEPA style) with this starting momentum,
    /// raised to 1 over training on a cosine schedule; `None` = the online encoder's latents.
    pub ema_momentum: Option<f64>,
    /// Random unit directions SIGReg projects onto.
    #[config(default = 64)]
    pub sigreg_directions: usize,
    /// The last `context_dims` latent dimensions describe the episode rather than the moment:
    /// the `context` term holds them constant over a window while the variance and
    /// covariance terms make them vary between windows, so they come to carry what differs
    /// between episodes and stays put within one: in Two-Rooms, where the wall and its door are.
    #[config(default = 0)]
    pub context_dims: usize,
    #[config(default = 0.1)]
    pub context_temperature: f32,
    /// The context contrast also sets each window against the last latents of this many
    /// windows of earlier steps (a queue, oldest out first); 0 = the batch's own windows only.
    /// The queue is not saved in checkpoints: a resumed run refills it, so it does not repeat
    /// an uninterrupted one bit for bit.
    #[config(default = 0)]
    pub context_queue: usize,
    /// The predictor leaves the `context_dims` dimensions as the observation gave them and
    /// predicts the others only: what the encoder read of the walls and the door holds however
    /// far a plan looks ahead, instead of drifting with the rollout.
    #[config(default = false)]
    pub hold_context: bool,
    /// Compute the `context_dims` dimensions with an encoder of their own (the same
    /// architecture, its own weights) instead of the shared one, so that what the context
    /// terms ask for does not compete with the agent's features in one trunk.
    #[config(default = false)]
    pub context_encoder: bool,
    /// The spatial predictor (present when `encoder.spatial_state` > 0): environment steps one
    /// jump covers, hidden channels and hidden convolutions.
    #[config(default = 4)]
    pub spatial_k: usize,
    #[config(default = 32)]
    pub spatial_hidden: usize,
    #[config(default = 1)]
    pub spatial_depth: usize,
    /// The spatial predictor reads the observed start map at every jump (the walls stay
    /// where the observation shows them).
    #[config(default = false)]
    pub spatial_anchor: bool,
    pub weights: LossWeights,
}

impl JepaConfig {
    pub fn init(&self, device: &Device) -> Jepa {
        let latent = self.encoder.latent;
        let separate = self.separate_context();
        let main = if separate {
            self.encoder.clone().with_latent(latent - self.context_dims)
        } else {
            self.encoder.clone()
        };
        let encoder = main.init(device);
        // The EMA target starts as a copy of the online encoder (as I-JEPA's and BYOL's do),
        // with parameters of its own.
        let target = self
            .ema_momentum
            .map(|_| ema_update(self.encoder.init(device), &encoder, 0.0));
        Jepa {
            context: separate.then(|| self.encoder.clone().with_latent(self.context_dims).init(device)),
            encoder,
            predictor: PredictorConfig::new(latent)
                .with_hidden(self.predictor_hidden)
                .with_held(if self.hold_context { self.context_dims } else { 0 })
                .init(device),
            idm: InverseDynamicsConfig::new(latent)
                .with_hidden(self.idm_hidden)
                .init(device),
            target,
            spatial: self.spatial_config().map(|c| c.init(device)),
        }
    }

    /// The spatial predictor's settings, when the encoder has a spatial state.
    pub fn spatial_config(&self) -> Option<SpatialConfig> {
        (self.encoder.kind == EncoderKind::Conv && self.encoder.spatial_state > 0).then(|| {
            SpatialConfig::new(self.encoder.spatial_state)
                .with_k(self.spatial_k)
                .with_hidden(self.spatial_hidden)
                .with_depth(self.spatial_depth)
                .with_anchor(self.spatial_anchor)
        })
    }

    /// Whether the context dimensions come from an encoder of their own.
    pub fn separate_context(&self) -> bool {
        self.context_encoder && self.context_dims > 0 && self.context_dims < self.encoder.latent
    }

    /// Settings that cannot be combined, named by their config keys.
    pub fn validate(&self) -> Result<(), String> {
        self.encoder.validate()?;
        let w = &self.weights;
        let weights = [
            ("prediction", w.prediction),
            ("variance", w.variance),
            ("covariance", w.covariance),
            ("smoothness", w.smoothness),
            ("idm", w.idm),
            ("sigreg", w.sigreg),
            ("context", w.context),
            ("context_contrast", w.context_contrast),
            ("spatial", w.spatial),
            ("spatial_variance", w.spatial_variance),
        ];
        if let Some((name, v)) = weights.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(format!("model.weights.{name} = {v} must be a number ≥ 0"));
        }
        if self.context_dims > self.encoder.latent {
            return Err(format!(
                "model.context_dims = {} exceeds model.encoder.latent = {}",
                self.context_dims, self.encoder.latent
            ));
        }
        if self.hold_context && (self.context_dims == 0 || self.context_dims >= self.encoder.latent) {
            return Err(format!(
                "model.hold_context needs model.context_dims between 1 and model.encoder.latent − 1 (it is {})",
                self.context_dims
            ));
        }
        if self.context_queue > 0 && (self.context_dims == 0 || self.weights.context_contrast <= 0.0) {
            return Err(format!(
                "model.context_queue = {} needs model.context_dims > 0 and model.weights.context_contrast > 0 (it feeds the context contrast)",
                self.context_queue
            ));
        }
        if self.context_encoder && self.context_dims >= self.encoder.latent {
            return Err(format!(
                "model.context_dims = {} must be below model.encoder.latent = {} with model.context_encoder",
                self.context_dims, self.encoder.latent
            ));
        }
        if self.encoder.spatial_state > 0 {
            if self.encoder.kind != EncoderKind::Conv {
                return Err("model.encoder.spatial_state needs model.encoder.kind = Conv".into());
            }
            if self.context_encoder {
                return Err("model.encoder.spatial_state cannot be combined with model.context_encoder".into());
            }
            crate::require_counts(
                "model",
                &[("spatial_k", self.spatial_k), ("spatial_hidden", self.spatial_hidden)],
            )?;
        }
        if self.context_encoder && self.ema_momentum.is_some() {
            return Err(
                "model.context_encoder cannot be combined with model.ema_momentum (the EMA target copies one encoder)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Encoder, predictor and inverse-dynamics head.
#[derive(Module, Debug)]
pub struct Jepa {
    pub encoder: Encoder,
    pub predictor: Predictor,
    pub idm: InverseDynamics,
    /// The EMA target encoder, when the config asks for one (never trained by gradients).
    pub target: Option<Encoder>,
    /// The context encoder, when the config asks for one: its latents are the last
    /// `context_dims` dimensions.
    pub context: Option<Encoder>,
    /// The spatial predictor, when the encoder has a spatial state.
    pub spatial: Option<SpatialPredictor>,
}

/// Names of the loss terms, in the order of [`LossTerms::values`].
pub const LOSS_NAMES: [&str; 11] = [
    "total",
    "prediction",
    "variance",
    "covariance",
    "smoothness",
    "idm",
    "sigreg",
    "context",
    "context_contrast",
    "spatial",
    "spatial_variance",
];

/// The value of every loss term of one batch (unweighted, except `total`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossTerms {
    pub total: f32,
    pub prediction: f32,
    pub variance: f32,
    pub covariance: f32,
    pub smoothness: f32,
    pub idm: f32,
    pub sigreg: f32,
    pub context: f32,
    pub context_contrast: f32,
    pub spatial: f32,
    pub spatial_variance: f32,
}

impl LossTerms {
    pub fn values(&self) -> [f32; 11] {
        [
            self.total,
            self.prediction,
            self.variance,
            self.covariance,
            self.smoothness,
            self.idm,
            self.sigreg,
            self.context,
            self.context_contrast,
            self.spatial,
            self.spatial_variance,
        ]
    }
}

impl Jepa {
    /// Latents of frames `[n, c, h, w]` in `0..=1`: `[n, d]`.
    pub fn encode(&self, frames: Tensor<4>) -> Tensor<2> {
        match &self.context {
            Some(ctx) => Tensor::cat(vec![self.encoder.forward(frames.clone()), ctx.forward(frames)], 1),
            None => self.encoder.forward(frames),
        }
    }

    /// Width of the latent.
    pub fn latent(&self) -> usize {
        self.encoder.latent() + self.context.as_ref().map_or(0, |c| c.latent())
    }

    /// The loss of a batch: frames `[b, t, c, h, w]` in `0..=1`, actions `[b, t-1, 2]`.
    /// Returns the weighted total (to backpropagate) and every term's value.
    pub fn loss(&self, frames: Tensor<5>, actions: Tensor<3>, cfg: &JepaConfig) -> (Tensor<1>, LossTerms) {
        let (total, terms, _) = self.loss_with_negatives(frames, actions, cfg, None);
        (total, terms)
    }

    /// [`loss`](Self::loss) with earlier windows' context latents `[q, k]` (unit rows) as
    /// further negatives of the context contrast; also returns this batch's, unit rows without
    /// gradient (`None` without context dimensions), for the caller's queue.
    pub fn loss_with_negatives(
        &self,
        frames: Tensor<5>,
        actions: Tensor<3>,
        cfg: &JepaConfig,
        negatives: Option<Tensor<2>>,
    ) -> (Tensor<1>, LossTerms, Option<Tensor<2>>) {
        let [b, t, c, h, w] = frames.dims();
        let frames_flat = frames.reshape([b * t, c, h, w]);
        let (z, maps) = match (&self.spatial, &self.context) {
            (Some(_), None) => self.encoder.forward_with_map(frames_flat.clone()),
            _ => (self.encode(frames_flat.clone()), None),
        };
        let d = z.dims()[1]; // z: [b·t, d]
        let z3 = z.clone().reshape([b, t, d]);
        let target = match &self.target {
            // EMA targets: the target encoder on the next frames, never differentiated. It runs
            // outside autodiff altogether: a graph that is built but never backpropagated
            // would be kept alive step after step.
            Some(enc) => {
                let next = frames_next(&frames_flat, b, t).without_autodiff();
                let out = enc.valid().forward(next).reshape([b, t - 1, d]);
                if frames_flat.is_autodiff() {
                    out.autodiff()
                } else {
                    out
                }
            }
            None => {
                let target = z3.clone().slice([0..b, 1..t, 0..d]); // [b, t-1, d]
                if cfg.stop_grad_target {
                    target.detach()
                } else {
                    target
                }
            }
        };
        let z0 = z3.clone().slice([0..b, 0..1, 0..d]).reshape([b, d]);
        let predicted = self.predictor.rollout(z0, actions.clone()); // [b, t-1, d]
        let l_pred = mse(predicted, target);
        let l_var = variance(z.clone());
        let l_cov = covariance(z);
        let l_smooth = temporal_smoothness(z3.clone());
        let before = z3.clone().slice([0..b, 0..t - 1, 0..d]).reshape([b * (t - 1), d]);
        let after = z3.clone().slice([0..b, 1..t, 0..d]).reshape([b * (t - 1), d]);
        let l_idm = mse(
            self.idm.forward(before, after),
            actions.clone().reshape([b * (t - 1), 2]),
        );
        let wt = &cfg.weights;
        let l_sig = if wt.sigreg > 0.0 {
            // Fresh random directions each step, as LeJEPA does.
            let dirs = Tensor::<2>::random(
                [d, cfg.sigreg_directions],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &z3.device(),
            );
            // `sigreg` scales each slice to unit length.
            sigreg(z3.clone().reshape([b * t, d]), dirs)
        } else {
            Tensor::zeros([1], &z3.device())
        };
        let k = cfg.context_dims.min(d);
        let ctx = (k > 0).then(|| z3.clone().slice([0..b, 0..t, d - k..d]));
        let l_ctx = match &ctx {
            Some(c) => context_spread(c.clone()),
            None => Tensor::zeros([1], &z3.device()),
        };
        let last_ctx = ctx
            .as_ref()
            .map(|c| unit_rows(c.clone().slice([0..b, t - 1..t, 0..k]).reshape([b, k])).detach());
        let l_nce = match ctx {
            Some(c) if wt.context_contrast > 0.0 && t >= 2 => context_contrast(c, cfg.context_temperature, negatives),
            _ => Tensor::zeros([1], &z3.device()),
        };
        let (l_sp, l_spvar) = match (&self.spatial, maps) {
            (Some(sp), Some(maps)) if (t - 1) / sp.k > 0 => self.spatial_loss(sp, maps, z3.clone(), actions.clone()),
            _ => (Tensor::zeros([1], &z3.device()), Tensor::zeros([1], &z3.device())),
        };
        let total = l_sp.clone() * wt.spatial
            + l_spvar.clone() * wt.spatial_variance
            + l_sig.clone() * wt.sigreg
            + l_ctx.clone() * wt.context
            + l_nce.clone() * wt.context_contrast
            + l_pred.clone() * wt.prediction
            + l_var.clone() * wt.variance
            + l_cov.clone() * wt.covariance
            + l_smooth.clone() * wt.smoothness
            + l_idm.clone() * wt.idm;
        let v = |x: Tensor<1>| x.into_scalar::<f32>();
        let terms = LossTerms {
            total: v(total.clone()),
            prediction: v(l_pred),
            variance: v(l_var),
            covariance: v(l_cov),
            smoothness: v(l_smooth),
            idm: v(l_idm),
            sigreg: v(l_sig),
            context: v(l_ctx),
            context_contrast: v(l_nce),
            spatial: v(l_sp),
            spatial_variance: v(l_spvar),
        };
        (total, terms, last_ctx)
    }

    /// The spatial predictor's terms on a batch: `maps` `[b·t, c, s, s]` of every frame, their
    /// latents `z3` `[b, t, d]`, `actions` `[b, t-1, 2]`. The map of frame 0 is rolled forward
    /// `⌊(t−1)/k⌋` jumps; each predicted map is compared with the encoder's map of the frame it
    /// reaches, and its read-out with that frame's latent (both targets detached). Returns the
    /// prediction error and the variance term on the maps' channels.
    fn spatial_loss(
        &self,
        sp: &SpatialPredictor,
        maps: Tensor<4>,
        z3: Tensor<3>,
        actions: Tensor<3>,
    ) -> (Tensor<1>, Tensor<1>) {
        let [b, t, d] = z3.dims();
        let [_, c, s, _] = maps.dims();
        let k = sp.k;
        let jumps = (t - 1) / k;
        let device = maps.device();
        let m5 = maps.clone().reshape([b, t, c, s, s]);
        let m0 = m5.clone().slice([0..b, 0..1]).reshape([b, c, s, s]);
        let predicted = sp.rollout(m0, actions.slice([0..b, 0..jumps * k])); // [b, jumps, c, s, s]
        let idx: Vec<i64> = (1..=jumps).map(|j| (j * k) as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [jumps]), &device);
        let target_maps = m5.select(1, idx.clone()).detach();
        let target_z = z3.select(1, idx).reshape([b * jumps, d]).detach();
        let read = self.encoder.readout(predicted.clone().reshape([b * jumps, c, s, s]));
        let l_pred = mse(predicted, target_maps) + mse(read, target_z);
        // Each channel varies over samples and cells (the read-out alone would let the map shrink).
        let per_channel = maps.permute([0, 2, 3, 1]).reshape([b * t * s * s, c]);
        (l_pred, variance(per_channel))
    }
}

/// Frames 1.. of every window, from the flattened `[b·t, c, h, w]`.
fn frames_next(flat: &Tensor<4>, b: usize, t: usize) -> Tensor<4> {
    let [_, c, h, w] = flat.dims();
    flat.clone()
        .reshape([b, t, c, h, w])
        .slice([0..b, 1..t, 0..c, 0..h, 0..w])
        .reshape([b * (t - 1), c, h, w])
}

/// EMA momentum at `step` of `steps`: from `m0` to 1 on a cosine.
pub fn ema_momentum_at(m0: f64, step: usize, steps: usize) -> f64 {
    let p = (step as f64 / steps.max(1) as f64).min(1.0);
    1.0 - (1.0 - m0) * (1.0 + (std::f64::consts::PI * p).cos()) / 2.0
}

/// `target ← m·target + (1 − m)·online`, parameter by parameter, matched by their order in
/// the module tree (the two are built from one config, so they have the same structure; their
/// ids differ when they sit at different paths of one model).
pub fn ema_update<M: Module>(target: M, online: &M, m: f64) -> M {
    use burn::module::{ModuleMapper, ModuleVisitor, Param};
    struct Grab(Vec<Tensor<1>>);
    impl ModuleVisitor for Grab {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.val().detach().reshape([-1]));
        }
    }
    struct Ema {
        src: std::vec::IntoIter<Tensor<1>>,
        m: f32,
    }
    impl ModuleMapper for Ema {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let o = self.src.next().expect("the target has the online module's structure");
            let m = self.m;
            p.map(|t| {
                let dims = t.dims();
                assert_eq!(
                    o.dims()[0],
                    dims.iter().product::<usize>(),
                    "EMA: parameter shapes differ"
                );
                (t.detach() * m + o.reshape(dims) * (1.0 - m)).detach()
            })
        }
    }
    let mut grab = Grab(Vec::new());
    online.visit(&mut grab);
    target.map(&mut Ema {
        src: grab.0.into_iter(),
        m: m as f32,
    })
}

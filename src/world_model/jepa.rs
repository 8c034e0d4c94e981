//! The JEPA world model: perception encoder + level-1 predictor + inverse-dynamics head, and
//! its self-supervised loss (prediction in latent space over an open-loop rollout, with
//! anti-collapse terms).

use super::loss::{covariance, mse, temporal_smoothness, variance};
use super::{InverseDynamics, InverseDynamicsConfig, Predictor, PredictorConfig};
use crate::perception::{ConvEncoder, ConvEncoderConfig};
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
}

/// Settings of the whole world model.
#[derive(Config, Debug, PartialEq)]
pub struct JepaConfig {
    pub encoder: ConvEncoderConfig,
    #[config(default = 256)]
    pub predictor_hidden: usize,
    #[config(default = 128)]
    pub idm_hidden: usize,
    /// Stop the gradient through the targets (the encoder's latents of the next frames).
    #[config(default = true)]
    pub stop_grad_target: bool,
    pub weights: LossWeights,
}

impl JepaConfig {
    pub fn init(&self, device: &Device) -> Jepa {
        let latent = self.encoder.latent;
        Jepa {
            encoder: self.encoder.init(device),
            predictor: PredictorConfig::new(latent)
                .with_hidden(self.predictor_hidden)
                .init(device),
            idm: InverseDynamicsConfig::new(latent)
                .with_hidden(self.idm_hidden)
                .init(device),
        }
    }
}

impl PartialEq for ConvEncoderConfig {
    fn eq(&self, o: &Self) -> bool {
        (
            self.in_channels,
            self.resolution,
            &self.channels,
            &self.strides,
            self.res_blocks,
            self.latent,
        ) == (
            o.in_channels,
            o.resolution,
            &o.channels,
            &o.strides,
            o.res_blocks,
            o.latent,
        )
    }
}

/// Encoder, predictor and inverse-dynamics head.
#[derive(Module, Debug)]
pub struct Jepa {
    pub encoder: ConvEncoder,
    pub predictor: Predictor,
    pub idm: InverseDynamics,
}

/// Names of the loss terms, in the order of [`LossTerms::values`].
pub const LOSS_NAMES: [&str; 6] = ["total", "prediction", "variance", "covariance", "smoothness", "idm"];

/// The value of every loss term of one batch (unweighted, except `total`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossTerms {
    pub total: f32,
    pub prediction: f32,
    pub variance: f32,
    pub covariance: f32,
    pub smoothness: f32,
    pub idm: f32,
}

impl LossTerms {
    pub fn values(&self) -> [f32; 6] {
        [
            self.total,
            self.prediction,
            self.variance,
            self.covariance,
            self.smoothness,
            self.idm,
        ]
    }
}

impl Jepa {
    /// The loss of a batch: frames `[b, t, c, h, w]` in `0..=1`, actions `[b, t-1, 2]`.
    /// Returns the weighted total (to backpropagate) and every term's value.
    pub fn loss(&self, frames: Tensor<5>, actions: Tensor<3>, cfg: &JepaConfig) -> (Tensor<1>, LossTerms) {
        let [b, t, c, h, w] = frames.dims();
        let z = self.encoder.forward(frames.reshape([b * t, c, h, w])); // [b·t, d]
        let d = z.dims()[1];
        let z3 = z.clone().reshape([b, t, d]);
        let target = z3.clone().slice([0..b, 1..t, 0..d]); // [b, t-1, d]
        let target = if cfg.stop_grad_target { target.detach() } else { target };
        let z0 = z3.clone().slice([0..b, 0..1, 0..d]).reshape([b, d]);
        let predicted = self.predictor.rollout(z0, actions.clone()); // [b, t-1, d]
        let l_pred = mse(predicted, target);
        let l_var = variance(z.clone());
        let l_cov = covariance(z);
        let l_smooth = temporal_smoothness(z3.clone());
        let before = z3.clone().slice([0..b, 0..t - 1, 0..d]).reshape([b * (t - 1), d]);
        let after = z3.slice([0..b, 1..t, 0..d]).reshape([b * (t - 1), d]);
        let l_idm = mse(self.idm.forward(before, after), actions.reshape([b * (t - 1), 2]));
        let wt = &cfg.weights;
        let total = l_pred.clone() * wt.prediction
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
        };
        (total, terms)
    }
}

//! The level-2 world model of the hierarchy (the "H" in H-JEPA): a slower, more abstract level
//! that jumps `k` environment steps at a time.
//!
//! - State: `z2 = A(z1)`, a learned projection of the level-1 latent to `state` dimensions.
//! - Macro-action: `m = M(a[t..t+k])`, an encoder of the `k`-step action chunk to a 2-d latent
//!   in the disc of radius `macro_radius` (inferred from the chunk in training; optimised by
//!   the planner at test time).
//! - Predictor: `z2[t+k] = P2(z2[t], m)`, a residual MLP like the level-1 predictor.
//!
//! Trained after level 1, on the frozen encoder's latents of the same videos: the level-2
//! states of `jumps + 1` frames `k` apart, the predictor unrolled open-loop over the `jumps`
//! chunks from the first, each prediction compared with the (detached) state it jumps to;
//! VICReg variance and covariance on the states keep the projection from collapsing, and a
//! variance term on the macro-actions makes them fill the disc the planner samples from.

use super::loss::{covariance, mse, variance};
use super::{Predictor, PredictorConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Weights of the level-2 loss terms (0 turns a term off; it is still reported).
#[derive(Config, Debug, PartialEq)]
pub struct Level2Weights {
    #[config(default = 1.0)]
    pub prediction: f32,
    #[config(default = 1.0)]
    pub variance: f32,
    #[config(default = 0.04)]
    pub covariance: f32,
    /// VICReg variance on the macro-actions (each dimension's std pushed towards
    /// `macro_radius / 2`).
    #[config(default = 0.1)]
    pub macro_variance: f32,
}

/// Settings of the level-2 model (saved in its checkpoint).
#[derive(Config, Debug, PartialEq)]
pub struct Level2Config {
    /// The level-1 latent it reads.
    pub latent: usize,
    /// Environment steps per level-2 step.
    #[config(default = 8)]
    pub k: usize,
    /// Level-2 state dimensions.
    #[config(default = 32)]
    pub state: usize,
    #[config(default = 256)]
    pub hidden: usize,
    /// Macro-actions lie in the disc of this radius.
    #[config(default = 2.0)]
    pub macro_radius: f32,
    pub weights: Level2Weights,
}

/// Macro-actions are 2-d, like the actions they summarise (the planners sample 2-d actions).
pub const MACRO_DIMS: usize = 2;

impl Level2Config {
    pub fn init(&self, device: &Device) -> Level2 {
        Level2 {
            abstraction: LinearConfig::new(self.latent, self.state).init(device),
            macro1: LinearConfig::new(self.k * 2, self.hidden).init(device),
            macro2: LinearConfig::new(self.hidden, MACRO_DIMS).init(device),
            predictor: PredictorConfig::new(self.state)
                .with_action(MACRO_DIMS)
                .with_hidden(self.hidden)
                .init(device),
        }
    }

    /// Settings that cannot work, named by their config keys.
    pub fn validate(&self) -> Result<(), String> {
        crate::require_counts(
            "level2",
            &[
                ("latent", self.latent),
                ("k", self.k),
                ("state", self.state),
                ("hidden", self.hidden),
            ],
        )?;
        crate::require_positive("level2", &[("macro_radius", self.macro_radius)])
    }
}

#[derive(Module, Debug)]
pub struct Level2 {
    /// `A`: level-1 latent → level-2 state.
    pub abstraction: Linear,
    macro1: Linear,
    macro2: Linear,
    /// `P2`.
    pub predictor: Predictor,
}

/// Each level-2 loss term, unweighted, and the weighted total.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Level2Terms {
    pub total: f32,
    pub prediction: f32,
    pub variance: f32,
    pub covariance: f32,
    pub macro_variance: f32,
}

impl Level2Terms {
    pub const NAMES: [&'static str; 5] = ["total", "prediction", "variance", "covariance", "macro_variance"];

    pub fn values(&self) -> [f32; 5] {
        [
            self.total,
            self.prediction,
            self.variance,
            self.covariance,
            self.macro_variance,
        ]
    }
}

fn scalar(t: Tensor<1>) -> f32 {
    crate::values(t)[0]
}

/// The level-2 loss from its parts: `states` `[b, j+1, s]` (the targets, detached here),
/// `predicted` `[b, j, s]` (prediction `i` is of state `i + 1`), `macros` `[b, j, 2]`.
pub fn level2_loss(
    states: Tensor<3>,
    predicted: Tensor<3>,
    macros: Tensor<3>,
    w: &Level2Weights,
    macro_radius: f32,
) -> (Tensor<1>, Level2Terms) {
    let [b, j1, s] = states.dims();
    let targets = states.clone().slice([0..b, 1..j1, 0..s]).detach();
    let prediction = mse(predicted, targets);
    let flat = states.reshape([b * j1, s]);
    let var = variance(flat.clone());
    let cov = covariance(flat);
    let [_, j, md] = macros.dims();
    // Each macro dimension's std towards half the radius: the variance term at scale 1 of
    // `m / (radius / 2)`.
    let mvar = variance(macros.reshape([b * j, md]) / (macro_radius / 2.0));
    let total = prediction.clone() * w.prediction
        + var.clone() * w.variance
        + cov.clone() * w.covariance
        + mvar.clone() * w.macro_variance;
    let terms = Level2Terms {
        total: scalar(total.clone()),
        prediction: scalar(prediction),
        variance: scalar(var),
        covariance: scalar(cov),
        macro_variance: scalar(mvar),
    };
    (total, terms)
}

impl Level2 {
    /// Level-2 states of level-1 latents: `[n, latent]` → `[n, state]`.
    pub fn abstract_state(&self, z1: Tensor<2>) -> Tensor<2> {
        self.abstraction.forward(z1)
    }

    /// Level-2 states of rows of level-1 latents `[n, d]` (row-major values) → `[n, state]`.
    pub fn abstract_rows(&self, z1: &[f32], d: usize, device: &Device) -> Vec<f32> {
        let n = z1.len() / d;
        crate::values(self.abstract_state(Tensor::from_data(TensorData::new(z1.to_vec(), [n, d]), device)))
    }

    /// Macro-actions of action chunks: `[n, k, 2]` → `[n, 2]`, each of norm below `radius`
    /// (`m = radius · tanh(‖v‖) · v / ‖v‖`).
    pub fn encode_macro(&self, chunks: Tensor<3>, radius: f32) -> Tensor<2> {
        let [n, k, a] = chunks.dims();
        let v = self
            .macro2
            .forward(relu(self.macro1.forward(chunks.reshape([n, k * a]))));
        let norm = (v.clone().square().sum_dim(1) + 1e-8).sqrt(); // [n, 1]
        v * (norm.clone().tanh() / norm * radius)
    }

    /// The loss of a batch: `z1` `[b, j+1, latent]` (level-1 latents `k` steps apart, from the
    /// frozen encoder), `chunks` `[b, j, k, 2]` (the actions between them).
    pub fn loss(&self, z1: Tensor<3>, chunks: Tensor<4>, cfg: &Level2Config) -> (Tensor<1>, Level2Terms) {
        let [b, j1, d] = z1.dims();
        let j = j1 - 1;
        let [_, _, k, a] = chunks.dims();
        let states = self.abstract_state(z1.reshape([b * j1, d])).reshape([b, j1, cfg.state]);
        let macros = self
            .encode_macro(chunks.reshape([b * j, k, a]), cfg.macro_radius)
            .reshape([b, j, MACRO_DIMS]);
        let first = states.clone().slice([0..b, 0..1, 0..cfg.state]).reshape([b, cfg.state]);
        let predicted = self.predictor.rollout(first, macros.clone());
        level2_loss(states, predicted, macros, &cfg.weights, cfg.macro_radius)
    }

    /// The abstraction's weights as `(w [latent, state] row-major, b [state])`, for projecting
    /// latents outside burn.
    pub fn abstraction_weights(&self) -> (Vec<f32>, Vec<f32>) {
        (
            crate::values(self.abstraction.weight.val()), // [latent, state]
            super::linear_bias(&self.abstraction),
        )
    }
}

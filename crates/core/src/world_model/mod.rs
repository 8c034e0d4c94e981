//! The level-1 world model: an action-conditioned predictor in latent space,
//! `z[t+1] = P(z[t], a[t])`, plus the inverse-dynamics head used as an anti-collapse term.

pub mod jepa;
pub mod level2;
pub mod loss;
pub mod spatial;

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// A linear layer's bias, zeros where it has none.
pub fn linear_bias(l: &Linear) -> Vec<f32> {
    let n = l.weight.val().dims()[1];
    l.bias.as_ref().map(|b| crate::values(b.val())).unwrap_or(vec![0.0; n])
}

/// Settings of a [`Predictor`] (residual MLP, action by concatenation).
#[derive(Config, Debug)]
pub struct PredictorConfig {
    pub latent: usize,
    #[config(default = 2)]
    pub action: usize,
    #[config(default = 256)]
    pub hidden: usize,
    /// The last `held` latent dimensions pass through unchanged (the MLP's output covers the
    /// others only); 0 = every dimension is predicted.
    #[config(default = 0)]
    pub held: usize,
}

impl PredictorConfig {
    pub fn init(&self, device: &Device) -> Predictor {
        assert!(self.held < self.latent, "a predictor must move at least one dimension");
        Predictor {
            l1: LinearConfig::new(self.latent + self.action, self.hidden).init(device),
            l2: LinearConfig::new(self.hidden, self.hidden).init(device),
            l3: LinearConfig::new(self.hidden, self.latent - self.held).init(device),
        }
    }
}

/// `z[t+1] = z[t] + MLP([z[t], a[t]])`, where the MLP's output covers the first dimensions
/// only when the last ones are held (see [`PredictorConfig::held`]; the width of `l3`'s
/// output says which).
#[derive(Module, Debug)]
pub struct Predictor {
    l1: Linear,
    l2: Linear,
    l3: Linear,
}

impl Predictor {
    /// The three layers, input to output (for the planner's hand-written rollout).
    pub fn layers(&self) -> [&Linear; 3] {
        [&self.l1, &self.l2, &self.l3]
    }

    /// The latent dimensions the predictor moves: all, or the first ones when the last are
    /// held (see [`PredictorConfig::held`]).
    pub fn moved(&self) -> usize {
        self.l3.weight.dims()[1]
    }

    /// One step: `z` `[batch, latent]`, `a` `[batch, action]` → `[batch, latent]`.
    pub fn forward(&self, z: Tensor<2>, a: Tensor<2>) -> Tensor<2> {
        let h = relu(self.l1.forward(Tensor::cat(vec![z.clone(), a], 1))); // [batch, hidden]
        let h = relu(self.l2.forward(h));
        let delta = self.l3.forward(h);
        let [b, moved] = delta.dims();
        let d = z.dims()[1];
        if moved == d {
            z + delta
        } else {
            let held = z.clone().slice([0..b, moved..d]);
            Tensor::cat(vec![z.slice([0..b, 0..moved]) + delta, held], 1)
        }
    }

    /// Open-loop rollout from `z0` `[batch, latent]` with `actions` `[batch, steps, action]`;
    /// returns the predictions `[batch, steps, latent]` (step k predicts the latent after action k).
    pub fn rollout(&self, z0: Tensor<2>, actions: Tensor<3>) -> Tensor<3> {
        let [b, steps, na] = actions.dims();
        let mut z = z0;
        let mut out = Vec::with_capacity(steps);
        for k in 0..steps {
            let a = actions.clone().slice([0..b, k..k + 1, 0..na]).reshape([b, na]);
            z = self.forward(z, a);
            out.push(z.clone());
        }
        Tensor::stack(out, 1)
    }
}

/// Settings of an [`InverseDynamics`] head.
#[derive(Config, Debug)]
pub struct InverseDynamicsConfig {
    pub latent: usize,
    #[config(default = 2)]
    pub action: usize,
    #[config(default = 128)]
    pub hidden: usize,
}

impl InverseDynamicsConfig {
    pub fn init(&self, device: &Device) -> InverseDynamics {
        InverseDynamics {
            l1: LinearConfig::new(2 * self.latent, self.hidden).init(device),
            l2: LinearConfig::new(self.hidden, self.action).init(device),
        }
    }
}

/// Predicts the action taken between two consecutive latents.
#[derive(Module, Debug)]
pub struct InverseDynamics {
    l1: Linear,
    l2: Linear,
}

impl InverseDynamics {
    /// The two layers, input to output (for the planner's predicted-collision cost).
    pub fn layers(&self) -> [&Linear; 2] {
        [&self.l1, &self.l2]
    }

    /// `z0`, `z1` `[n, latent]` → action `[n, action]`.
    pub fn forward(&self, z0: Tensor<2>, z1: Tensor<2>) -> Tensor<2> {
        self.l2.forward(relu(self.l1.forward(Tensor::cat(vec![z0, z1], 1))))
    }
}

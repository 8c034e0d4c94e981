//! A goal-conditioned MLP `f(z, g)` over two latents: the network of the trained critic
//! (cost-to-go, [`crate::cost::critic`]) and of the mode-1 policy (an action,
//! [`crate::actor::mode1`]). Trained with burn; run in the planner's inner loop through a
//! hand-written copy ([`FastGoalNet`]) on the same matmul kernels as the predictor's rollout.
//!
//! Also the checkpoint file both are kept in: safetensors with the network's config, the kind
//! (`critic` or `mode1`), what its output means (scale, calibration) and the fingerprint of the
//! level-1 model whose latents it reads, written to a temporary file and renamed.

use crate::actor::model::matmul_acc;
use crate::checkpoint::{
    check_level1, level1_fingerprint, load_weights, read_with_metadata, save_module, stable_param_ids,
};
use crate::world_model::jepa::Jepa;
use crate::world_model::linear_bias;
use anyhow::{bail, Context, Result};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Shape of a [`GoalNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalNetShape {
    /// Size of `z` and of `g`.
    pub latent: usize,
    pub hidden: usize,
    pub out: usize,
}

impl GoalNetShape {
    pub fn init(&self, device: &Device) -> GoalNet {
        GoalNet {
            l1: LinearConfig::new(2 * self.latent, self.hidden).init(device),
            l2: LinearConfig::new(self.hidden, self.hidden).init(device),
            l3: LinearConfig::new(self.hidden, self.out).init(device),
        }
    }
}

/// `f(z, g) = W3·relu(W2·relu(W1·[z, g] + b1) + b2) + b3` (raw outputs; the critic and the
/// policy each squash them their own way).
#[derive(Module, Debug)]
pub struct GoalNet {
    l1: Linear,
    l2: Linear,
    l3: Linear,
}

impl GoalNet {
    /// `z`, `g` `[n, latent]` → `[n, out]`.
    pub fn forward(&self, z: Tensor<2>, g: Tensor<2>) -> Tensor<2> {
        let h = relu(self.l1.forward(Tensor::cat(vec![z, g], 1)));
        self.l3.forward(relu(self.l2.forward(h)))
    }
}

/// A [`GoalNet`]'s weights copied out of burn, for batched inference without per-op overhead.
#[derive(Debug, Clone)]
pub struct FastGoalNet {
    pub latent: usize,
    hidden: usize,
    pub out: usize,
    /// `W1` split into the rows of `z` and of `g`, each `[latent, hidden]`.
    w1z: Vec<f32>,
    w1g: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    w3: Vec<f32>,
    b3: Vec<f32>,
}

impl FastGoalNet {
    pub fn new(net: &GoalNet) -> FastGoalNet {
        let [inputs, hidden] = net.l1.weight.dims();
        let latent = inputs / 2;
        let out = net.l3.weight.dims()[1];
        let w1 = crate::values(net.l1.weight.val());
        FastGoalNet {
            latent,
            hidden,
            out,
            w1z: w1[..latent * hidden].to_vec(),
            w1g: w1[latent * hidden..].to_vec(),
            b1: linear_bias(&net.l1),
            w2: crate::values(net.l2.weight.val()),
            b2: linear_bias(&net.l2),
            w3: crate::values(net.l3.weight.val()),
            b3: linear_bias(&net.l3),
        }
    }

    /// Raw outputs of `m` rows: `z`, `g` `[m, latent]` → `[m, out]`.
    pub fn forward(&self, z: &[f32], g: &[f32], m: usize) -> Vec<f32> {
        let (d, h) = (self.latent, self.hidden);
        let rows = |b: &[f32]| -> Vec<f32> { (0..m).flat_map(|_| b.iter().copied()).collect() };
        let mut h1 = rows(&self.b1);
        matmul_acc(z, &self.w1z, &mut h1, m, d, h);
        matmul_acc(g, &self.w1g, &mut h1, m, d, h);
        h1.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut h2 = rows(&self.b2);
        matmul_acc(&h1, &self.w2, &mut h2, m, h, h);
        h2.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut out = rows(&self.b3);
        matmul_acc(&h2, &self.w3, &mut out, m, h, self.out);
        out
    }
}

/// `log(1 + e^x)`, stable for large `|x|`.
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// What a goal-net checkpoint holds besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalNetMeta {
    /// `critic` or `mode1`.
    pub kind: String,
    pub shape: GoalNetShape,
    /// What the raw output means: the critic's steps per unit of softplus output and its
    /// latent distance per step; the policy's largest action.
    pub scale: f32,
    #[serde(default)]
    pub distance_per_step: f32,
    /// The training run's resolved config.
    pub config: serde_json::Value,
    pub step: usize,
}

const FORMAT: &str = "amisim-goalnet-v1";

/// Writes `net` with `meta` to `path` atomically, tied to the level-1 model `level1`.
pub fn save_goal_net(path: &Path, net: &GoalNet, meta: &GoalNetMeta, level1: &Jepa) -> Result<()> {
    let meta = HashMap::from([
        ("amisim.format".to_string(), FORMAT.to_string()),
        ("amisim.goalnet".to_string(), serde_json::to_string(meta)?),
        ("amisim.level1".to_string(), level1_fingerprint(level1)),
    ]);
    save_module(path, net, meta)
}

/// Reads a goal-net checkpoint of kind `kind` (`critic`, `mode1`); with `level1`, it must have
/// been trained on that level-1 model's latents.
pub fn load_goal_net(
    path: &Path,
    kind: &str,
    level1: Option<&Jepa>,
    device: &Device,
) -> Result<(GoalNet, GoalNetMeta)> {
    let (bytes, meta) = read_with_metadata(path, kind)?;
    if meta.get("amisim.format").map(String::as_str) != Some(FORMAT) {
        bail!(
            "{}: not a critic or mode-1 checkpoint (amisim.format is {:?}, expected {FORMAT})",
            path.display(),
            meta.get("amisim.format")
        );
    }
    let m: GoalNetMeta = serde_json::from_str(meta.get("amisim.goalnet").map_or("", |s| s.as_str()))
        .with_context(|| format!("{}: amisim.goalnet does not parse", path.display()))?;
    if m.kind != kind {
        bail!("{}: holds a {} model, expected a {kind} model", path.display(), m.kind);
    }
    if let Some(l1) = level1 {
        let trained_on = meta.get("amisim.level1").map_or("", |s| s.as_str());
        check_level1(path, &format!("{kind} model"), m.shape.latent, trained_on, l1, kind)?;
    }
    let net = load_weights(stable_param_ids(m.shape.init(device)), bytes, path)?;
    Ok((net, m))
}

//! The cost module: the energy of an imagined trajectory.
//!
//! `E = distance(states, goal)` over the horizon (the terminal state, the mean over every
//! step, or the closest approach), plus task terms: the effort `mean ‖a‖²`. Distances are L2
//! (Euclidean) or L1. The same function scores latent trajectories of the world model
//! (against the goal latent, the encoder's view of the goal observation) and the true
//! simulator's states for the oracle. [`critic`]: the trained cost-to-go `C(z, z_goal)`.

pub mod critic;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The distance between a state and the goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distance {
    L1,
    L2,
}

/// Which steps of the horizon the goal distance counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Horizon {
    /// The last imagined state only: the plan may go around (through a door) first.
    Terminal,
    /// The mean over every imagined state: reach early and stay.
    Sum,
    /// The closest approach: the least distance along the trajectory, plus
    /// `CLOSEST_MEAN_WEIGHT` × the mean (reach early, stay). Unlike the mean, a detour that
    /// reaches the goal beats waiting next to it behind a wall, however long the detour.
    Closest,
}

/// Weight of the mean distance under [`Horizon::Closest`]: enough to prefer the shorter of two
/// paths that both reach the goal, small enough that reaching it at all dominates.
pub const CLOSEST_MEAN_WEIGHT: f32 = 0.1;

/// Settings of the cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostConfig {
    pub distance: Distance,
    pub horizon: Horizon,
    /// Weight of the effort term `mean ‖a‖²`.
    pub effort: f32,
    /// Weight of the predicted-collision term: `mean ‖a − â‖²`, where `â` is the action the
    /// inverse-dynamics head reads from consecutive imagined latents — what the model expects
    /// the action to achieve. Pushing into a wall the model knows of achieves little.
    #[serde(default)]
    pub collision: f32,
    /// Weight of the trained critic's cost-to-go from the last imagined state to the goal (a
    /// terminal cost: what lies beyond the horizon), in goal-distance units per step.
    #[serde(default)]
    pub critic: f32,
    /// Weight of the keypoints in the goal distance of rows that imagine with the spatial
    /// predictor (`predictor: Spatial`): each imagined state is the latent with the spatial state's
    /// soft-argmax keypoints (where each channel's activity lies, in `[-1, 1]`), times this
    /// weight, joined to it, and so is the goal. The latent's distance to the goal levels off
    /// a few steps away from it; the keypoints' keeps growing with how far what they track is
    /// from where the goal has it. 0: the latent alone.
    #[serde(default)]
    pub keypoints: f32,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            distance: Distance::L2,
            horizon: Horizon::Terminal,
            effort: 0.0,
            collision: 0.0,
            critic: 0.0,
            keypoints: 0.0,
        }
    }
}

impl CostConfig {
    /// The distance between two states (L2 or L1).
    pub fn dist(&self, a: &[f32], b: &[f32]) -> f32 {
        match self.distance {
            Distance::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt(),
            Distance::L1 => a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum(),
        }
    }

    /// Energy of one trajectory: `states` `[len, dim]`, `goal` `[dim]`, `actions` `[len, 2]`.
    pub fn energy(&self, states: &[f32], goal: &[f32], actions: &[f32]) -> f32 {
        let dim = goal.len();
        let len = states.len() / dim;
        let distance = match self.horizon {
            Horizon::Terminal => self.dist(&states[(len - 1) * dim..], goal),
            Horizon::Sum => states.chunks_exact(dim).map(|s| self.dist(s, goal)).sum::<f32>() / len as f32,
            Horizon::Closest => {
                // One pass, no allocation: this runs for every candidate of every iteration.
                let (least, sum) = states
                    .chunks_exact(dim)
                    .map(|s| self.dist(s, goal))
                    .fold((f32::INFINITY, 0.0f32), |(m, t), d| (m.min(d), t + d));
                least + CLOSEST_MEAN_WEIGHT * sum / len as f32
            }
        };
        let effort = if self.effort != 0.0 {
            self.effort * actions.iter().map(|a| a * a).sum::<f32>() / len as f32
        } else {
            0.0
        };
        distance + effort
    }

    /// Energies of `n` trajectories, `per_problem` consecutive ones per problem: `states`
    /// `[n, len, dim]`, `goals` `[problems, dim]`, `actions` `[n, len, 2]`.
    pub fn energies(&self, states: &[f32], goals: &[f32], per_problem: usize, actions: &[f32], len: usize) -> Vec<f32> {
        let n = actions.len() / (len * 2);
        let dim = states.len() / (n * len);
        (0..n)
            .map(|i| {
                let p = i / per_problem;
                self.energy(
                    &states[i * len * dim..(i + 1) * len * dim],
                    &goals[p * dim..(p + 1) * dim],
                    &actions[i * len * 2..(i + 1) * len * 2],
                )
            })
            .collect()
    }

    /// The same energy on tensors, differentiable: `states` `[n, len, dim]`, `goals` `[n, dim]`,
    /// `actions` `[n, len, 2]` → `[n]`.
    pub fn energy_tensor(&self, states: Tensor<3>, goals: Tensor<2>, actions: Tensor<3>) -> Tensor<1> {
        let [n, len, dim] = states.dims();
        let diff = match self.horizon {
            Horizon::Terminal => states.slice([0..n, len - 1..len, 0..dim]) - goals.reshape([n, 1, dim]),
            Horizon::Sum | Horizon::Closest => states - goals.reshape([n, 1, dim]),
        };
        let steps = diff.dims()[1];
        let d = match self.distance {
            // A small floor under the root keeps the gradient finite at the goal.
            Distance::L2 => (diff.square().sum_dim(2) + 1e-8).sqrt(),
            Distance::L1 => diff.abs().sum_dim(2),
        }; // [n, steps, 1]
        let mean = d.clone().sum_dim(1).reshape([n]) / steps as f32;
        let mut e = match self.horizon {
            Horizon::Closest => d.min_dim(1).reshape([n]) + mean * CLOSEST_MEAN_WEIGHT,
            _ => mean,
        };
        if self.effort != 0.0 {
            e = e + actions.square().sum_dim(2).sum_dim(1).reshape([n]) * (self.effort / len as f32);
        }
        e
    }
}

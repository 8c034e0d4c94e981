//! The trainable critic `C(z, z_goal)`: the cost-to-go, in environment steps, from the state
//! with latent `z` to the goal with latent `z_goal`. Learned without reward labels, by
//! hindsight goal relabelling on exploration videos (`amisim train --level critic`); the planner
//! adds it at the end of every imagined trajectory (a terminal cost), so a short horizon sees
//! as far as the critic does.

use crate::goal_net::{softplus, FastGoalNet, GoalNet};

/// A trained critic, ready for batched inference.
#[derive(Debug, Clone)]
pub struct Critic {
    pub net: FastGoalNet,
    /// Steps per unit of the network's (softplus) output.
    pub scale: f32,
    /// Median latent distance covered per environment step in the training data: converts the
    /// critic's steps into the goal distance's units, so one weight mixes the two.
    pub distance_per_step: f32,
}

impl Critic {
    pub fn new(net: &GoalNet, scale: f32, distance_per_step: f32) -> Critic {
        Critic {
            net: FastGoalNet::new(net),
            scale,
            distance_per_step,
        }
    }

    /// Cost-to-go in steps of `m` rows: `z`, `g` `[m, latent]` → `[m]`.
    pub fn steps(&self, z: &[f32], g: &[f32], m: usize) -> Vec<f32> {
        self.net
            .forward(z, g, m)
            .into_iter()
            .map(|x| self.scale * softplus(x))
            .collect()
    }

    /// The same in the goal distance's units (latent distance).
    pub fn energy(&self, z: &[f32], g: &[f32], m: usize) -> Vec<f32> {
        let k = self.distance_per_step;
        self.steps(z, g, m).into_iter().map(|s| s * k).collect()
    }
}

//! Mode 1: the fast reactive policy `π(z, z_goal) → action`, a small network distilled from
//! the deliberative planner's actions (`amisim train --level mode1`). One forward pass per step
//! instead of hundreds of imagined rollouts; the agent checks its proposal cheaply and falls
//! back to planning (mode 2) when the check fails.

use super::planner::project;
use crate::goal_net::{FastGoalNet, GoalNet};

/// A trained mode-1 policy, ready for batched inference.
#[derive(Debug, Clone)]
pub struct Mode1 {
    pub net: FastGoalNet,
    /// Actions are `max_action · tanh(output)`, then projected onto the ball of this radius.
    pub max_action: f32,
}

impl Mode1 {
    pub fn new(net: &GoalNet, max_action: f32) -> Mode1 {
        Mode1 {
            net: FastGoalNet::new(net),
            max_action,
        }
    }

    /// Actions of `m` rows: `z`, `g` `[m, latent]` → `[m, 2]`.
    pub fn act(&self, z: &[f32], g: &[f32], m: usize) -> Vec<f32> {
        let mut a: Vec<f32> = self
            .net
            .forward(z, g, m)
            .into_iter()
            .map(|x| self.max_action * x.tanh())
            .collect();
        project(&mut a, self.max_action);
        a
    }
}
